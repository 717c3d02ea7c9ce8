"""Interoperation with other evaluators' results: reading their run folders into the results store and
checking their verdicts against ours (EvalScope: `evalscope_parse`, `evalscope_map`, `evalscope_ingest`,
`evalscope_compare`, `evalscope_crosscheck`)."""

from spsbench.errors import SpsbenchError


class InteropError(SpsbenchError):
    """Another evaluator's output cannot be read or imported (message names the file and the problem)."""


__all__ = ["InteropError"]
