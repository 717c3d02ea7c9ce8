"""The `spsbench` command line: one subcommand per module in `spsbench.commands`.

Each command module is light to import; it exposes HELP, `add_arguments(parser)` and `run(args) -> int`
and imports heavy libraries inside `run`. A SpsbenchError becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Iterator

from spsbench import __version__, quiet
from spsbench.errors import SpsbenchError, one_line
from spsbench.validate import locale_hint, no_empty_arguments, utf8_arguments

# Explicit registry: subcommand -> module. Order is the order shown in --help.
COMMANDS: dict[str, str] = {
    "eval": "spsbench.commands.eval",
    "train": "spsbench.commands.train",
    "leaderboard": "spsbench.commands.leaderboard",
    "tasks": "spsbench.commands.tasks",
    "grade": "spsbench.commands.grade",
    "results": "spsbench.commands.results",
    "diagnose": "spsbench.commands.diagnose",
    "serve": "spsbench.commands.serve",
    "publish": "spsbench.commands.publish",
    "import": "spsbench.commands.import_",
    "crosscheck": "spsbench.commands.crosscheck",
    "lab": "spsbench.commands.lab",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spsbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"spsbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop), handled like Ctrl-C: work in flight is committed on the way out."""


def _terminate(signum: int, frame: object) -> None:  # noqa: ARG001 - signal handler signature
    raise Terminated


@contextlib.contextmanager
def _sigterm_like_sigint() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet.install()           # the spsbench loggers' warnings on the terminal, as `spsbench: warning:` lines
    if not hasattr(args, "_run"):
        parser.print_help()
        return 1
    try:
        with _sigterm_like_sigint():
            no_empty_arguments(args)             # `--store ""` is a mistake, never "the default"
            utf8_arguments(args)
            return int(args._run(args) or 0)
    except SpsbenchError as exc:
        print(f"spsbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:      # the environment (a full disk, a file-size limit, a folder that cannot be
        # entered) where no check above turned it into a sentence: still one line, never a traceback
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"spsbench {args.command}: error: {exc.strerror or one_line(exc)}{where}", file=sys.stderr)
        return 2
    except UnicodeEncodeError as exc:    # a path found on disk whose name is not UTF-8 text
        print(f"spsbench {args.command}: error: a path or text holds bytes that are not UTF-8 text "
              f"({exc.object[exc.start:exc.end].encode('utf-8', 'backslashreplace').decode()!r}){locale_hint()}",
              file=sys.stderr)
        return 2
    except Terminated:
        print(f"spsbench {args.command}: terminated (SIGTERM); finished work is in the store", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"spsbench {args.command}: interrupted; finished work is in the store", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
