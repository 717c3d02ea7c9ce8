"""`spsbench tasks`: list the task registry, show one task (spec + first rendered prompt), or the schema."""

from __future__ import annotations

import argparse

from spsbench import tasks
from spsbench.commands import output_console
from spsbench.errors import TaskError
from spsbench.tasks import schema
from spsbench.tasks.sources import known_count

HELP = "List the task registry (tasks/*.yaml), or show one task with --show NAME."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show", metavar="NAME_OR_FILE",
                        help="Show one task's spec and its first rendered prompt (if its data is available).")
    parser.add_argument("--data", action="append", default=[], metavar="NAME=PATH",
                        help="Local JSONL/JSON/Parquet copy of a task's data (repeatable).")
    parser.add_argument("--schema", action="store_true", help="List every key a task file may contain.")


def run(args: argparse.Namespace) -> int:
    console = output_console()
    data = tasks.parse_data_args(args.data)
    if args.schema:
        console.print(_schema_table())
    elif args.show:
        _show(console, args.show, data)
    else:
        console.print(_registry_table(tasks.list_specs()))
    return 0


def _registry_table(specs):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="spsbench task registry", title_justify="left")
    for column in ("name", "source", "#problems", "grader", "n", "k", "version"):
        table.add_column(column, justify="right" if column in ("#problems", "n") else "left")
    for spec in specs:
        count = known_count(spec)
        table.add_row(escape(spec.name), escape(spec.source_label()), "-" if count is None else str(count), spec.grader,
                      str(spec.n), ",".join(map(str, spec.k)), spec.version)
    if not specs:
        table.caption = "no task files found"
    else:
        table.caption = "#problems '-' = not cached yet (needs the hub once, or --data NAME=PATH)"
    return table


def _show(console, name_or_path: str, data: dict[str, str]) -> None:
    from rich.markup import escape

    spec = tasks.load_spec(name_or_path)
    console.print(f"[bold]{escape(spec.name)}[/bold]  version {escape(spec.version)}  ({spec.path})")
    if spec.description:
        console.print(escape(spec.description))
    for key, value in _spec_items(spec):
        console.print(f"  [cyan]{key}[/cyan]: {escape(value)}")
    if spec.name not in data and known_count(spec) is None:
        console.print(f"\n(no data available offline: pass --data {escape(spec.name)}=path/to/file.jsonl "
                      "to see a rendered prompt)")
        return
    try:
        task = tasks.load_task(name_or_path, data=data.get(spec.name), limit=1)
    except TaskError as exc:
        console.print(f"\n[red]cannot render a prompt:[/red] {escape(str(exc))}")
        return
    first = task.problems[0]
    console.print(f"\n[bold]first prompt[/bold] (id {escape(first.id)}, gold {escape(first.answer)}):")
    console.print(escape(first.prompt), highlight=False)


def _spec_items(spec) -> list[tuple[str, str]]:
    items = [("grader", spec.grader), ("source", spec.source_label())]
    if spec.source_kind == "hub":
        items.append(("revision", str(spec.source.get("revision"))))
    items.append(("columns", ", ".join(f"{k}={v}" for k, v in spec.columns.items())))
    optional = {"answer_regex": spec.answer_regex, "answer_remove": list(spec.answer_remove) or None,
                "answer_format": spec.answer_format if spec.grader == "mc" else None,
                "shuffle_choices": spec.shuffle_choices if spec.grader == "mc" else None,
                "distractor_columns": ", ".join(spec.distractor_columns) or None,
                "meta_columns": ", ".join(spec.meta_columns) or None}
    items += [(key, str(value)) for key, value in optional.items() if value is not None]
    items += [("n", str(spec.n)), ("k", ", ".join(map(str, spec.k)))]
    return items


def _schema_table():
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="task file keys (YAML, data only)", title_justify="left")
    for column in ("key", "type", "required", "meaning"):
        table.add_column(column)
    for key, yaml_type, required, help_text in schema():
        table.add_row(key, escape(yaml_type), "yes" if required else "", escape(help_text))
    return table
