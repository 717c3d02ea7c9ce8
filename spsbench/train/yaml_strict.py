"""YAML as recipes are read: `yaml.safe_load`, except that a key given twice in one mapping is an error.

PyYAML keeps the last of two equal keys without a word, so a recipe with `learning_rate` twice trained with
whichever came last. Merge keys (`<<: *base`) still work: a key a merge brings in and the mapping then sets
is an override, not a duplicate.
"""

from __future__ import annotations

from typing import Any

import yaml

MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names one key twice (message: where both are)."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a repeated mapping key."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:         # an unhashable key: SafeLoader's own error says so
            continue
        if first is not None:
            raise DuplicateKeyError(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice (first at "
                                    f"line {first}); YAML would silently keep the last one")
        seen[key] = key_node.start_mark.line + 1
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                              lambda loader, node: _construct_mapping(loader, node, deep=True))


def load(text: str) -> Any:
    """`yaml.safe_load(text)` with repeated keys refused (DuplicateKeyError, a yaml.YAMLError)."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
