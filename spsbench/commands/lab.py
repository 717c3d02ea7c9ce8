"""`spsbench lab`: the squeezing lab (squeeze: the mechanism, exactly; dynamics: RL runs on a tiny task).

Heavy imports (torch, transformers, TRL) happen inside `run`.
"""

from __future__ import annotations

import argparse
import time

from spsbench.commands import output_console
from spsbench.lab import record, squeeze
from spsbench.lab.dynamics import run_cli
from spsbench.lab.page import squeeze_markdown, write_page
from spsbench.lab.settings import apply_overrides

HELP = ("The squeezing lab: `squeeze` measures probability squeezing exactly (tens of seconds); `dynamics` trains "
        "GRPO/SPS/... from a tiny warmed-up base and measures Pass@k, squeezing and diversity (minutes); "
        "`page` rebuilds leaderboards/lab/ from the lab store.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", choices=("squeeze", "dynamics", "page"), help="What to run.")
    parser.add_argument("--store", metavar="PATH", help="Lab store (default results/lab.db or $SPSBENCH_LAB_STORE).")
    parser.add_argument("--out", metavar="DIR", default=None, help="Page folder (default leaderboards/lab).")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="squeeze: a squeeze setting (e.g. lr=1e-4); dynamics: a lab setting (lab.seeds=3) "
                             "or any recipe key (rl.learning_rate=1e-3). Repeatable.")
    parser.add_argument("--sweep", metavar="KEY=V1,V2,...", default=None,
                        help="dynamics: rerun every arm for each value of one recipe key, side by side "
                             "(e.g. sps.irl_learning_rate=1e-6,1e-5,1e-4).")
    parser.add_argument("--arms", default=None, help="dynamics: comma-separated arms (grpo,sps,dapo,gspo; "
                        "default grpo,sps).")
    parser.add_argument("--seeds", type=int, default=None, help="dynamics: seeds per arm (default 3).")
    parser.add_argument("--no-page", action="store_true", help="Do not rebuild the page afterwards.")


def run(args: argparse.Namespace) -> int:

    console = output_console()
    _one_thread()
    store = args.store or str(record.default_store())
    out = args.out or "leaderboards/lab"
    start = time.perf_counter()
    if args.experiment == "squeeze":
        _squeeze(console, store, args.overrides)
    elif args.experiment == "dynamics":

        run_cli(console, store, args)
    if not args.no_page or args.experiment == "page":

        files = write_page(store, out)
        console.print(f"wrote {len(files)} files to {out}/", highlight=False)
    console.print(f"[dim]lab {args.experiment} took {time.perf_counter() - start:.1f} s[/]")
    return 0


def _one_thread() -> None:
    """Tiny models gain nothing from a second thread; on shared cores OpenMP spin-waits made a squeeze run
    take 335 s of wall time for 152 s of CPU (2 threads, load ~5) against ~35 s with one. OMP_NUM_THREADS wins."""
    import os

    import torch

    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(1)


def _squeeze(console, store: str, overrides: list[str]) -> None:

    cfg = apply_overrides(squeeze.SqueezeConfig, overrides, prefix="squeeze")
    console.print(f"squeeze: vocab {cfg.vocab}, length {cfg.length}, SGD lr {cfg.lr:g}, seed {cfg.seed}",
                  highlight=False)
    result = squeeze.run(cfg)
    record.save_squeeze(store, result)

    console.print(squeeze_markdown(result), highlight=False, markup=False)
