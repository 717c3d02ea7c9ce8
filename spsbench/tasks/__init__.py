"""Tasks: benchmarks as data. `spec` says what a task file may contain, `sources` reads its rows (local
files, the built-in generator, the hub cache), `registry` finds tasks by name, `arith` is the built-in
offline generator. Nothing here imports torch or executes anything a task file says.
"""

from spsbench.tasks.registry import list_specs, load_spec, load_task, parse_data_args
from spsbench.tasks.spec import Problem, Task, TaskSpec, fill_template, schema

__all__ = ["Problem", "Task", "TaskSpec", "fill_template", "list_specs", "load_spec", "load_task",
           "parse_data_args", "schema"]
