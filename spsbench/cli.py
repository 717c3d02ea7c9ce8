"""The `spsbench` command line: one subcommand per module in `spsbench.commands`.

Each command module is light to import; it exposes HELP, `add_arguments(parser)` and `run(args) -> int`
and imports heavy libraries inside `run`. A SpsbenchError becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from spsbench import __version__
from spsbench.errors import SpsbenchError

# Explicit registry: subcommand -> module. Order is the order shown in --help.
COMMANDS: dict[str, str] = {
    "eval": "spsbench.commands.eval",
    "train": "spsbench.commands.train",
    "leaderboard": "spsbench.commands.leaderboard",
    "tasks": "spsbench.commands.tasks",
    "grade": "spsbench.commands.grade",
    "results": "spsbench.commands.results",
    "diagnose": "spsbench.commands.diagnose",
    "lab": "spsbench.commands.lab",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spsbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"spsbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a command still being built must not break the others
            if exc.name != module_name:
                raise
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
        return 1
    try:
        return int(args._run(args) or 0)
    except SpsbenchError as exc:
        print(f"spsbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"spsbench {args.command}: interrupted; finished work is in the store", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
