"""`spsbench lab`: the squeezing lab (squeeze: the mechanism, exactly; dynamics: named arms x paired seeds
from peaked bases, probed exactly; page: leaderboards/lab/ from the committed data in results/lab/).

Heavy imports (torch, transformers, TRL) happen inside the lab modules' functions that need them.
"""

from __future__ import annotations

import argparse
import time

from spsbench.commands import output_console
from spsbench.errors import ConfigError
from spsbench.lab import record
from spsbench.lab.arms import available
from spsbench.lab.dynamics import DEFAULT_ARMS, run_cli
from spsbench.lab.page import write_page
from spsbench.lab.page_squeeze import squeeze_markdown
from spsbench.lab.settings import apply_overrides
from spsbench.validate import number

HELP = ("The squeezing lab: `squeeze` measures probability squeezing exactly over model seeds (about a minute); "
        "`dynamics` trains named arms (GRPO, SPS, slower RL, ...) x paired seeds from peaked bases and measures the "
        "Pass@1-Pass@k frontier exactly (minutes); `page` rebuilds leaderboards/lab/ from results/lab/.")
SQUEEZE_SEEDS = 5
ONLY_DYNAMICS = ("arms", "sweep", "tag")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", choices=("squeeze", "dynamics", "page"), help="What to run.")
    parser.add_argument("--data", metavar="DIR", default=None,
                        help="Lab data folder, read by `page` and written by the others (default results/lab, "
                             "or $SPSBENCH_LAB_DATA); commit it with the page.")
    parser.add_argument("--store", metavar="PATH", help="Store of the sampled cross-check evaluations (default "
                        "results/lab.db or $SPSBENCH_LAB_STORE).")
    parser.add_argument("--out", metavar="DIR", default=None, help="Page folder (default leaderboards/lab).")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="squeeze: a squeeze setting (e.g. lr=1e-4); dynamics: a lab setting (lab.probe_every=2), "
                             "a base setting (warmup.steps=300) or any recipe key (rl.learning_rate=1e-3). Repeatable.")
    parser.add_argument("--sweep", metavar="KEY=V1,V2,...", default=None,
                        help="dynamics: rerun every non-GRPO arm for each value of one recipe key (GRPO runs once "
                             "as the reference), e.g. sps.irl_learning_rate=1e-4,1e-3.")
    parser.add_argument("--arms", default=None,
                        help=f"dynamics: comma-separated arm names from recipes/lab/arms/ (default "
                             f"{','.join(DEFAULT_ARMS)}; GRPO, the reference, is always run).")
    parser.add_argument("--seeds", type=int, default=None,
                        help=f"squeeze: model seeds (default {SQUEEZE_SEEDS}); dynamics: paired seeds (default 6).")
    parser.add_argument("--tag", default=None, help="dynamics: the session's name in results/lab/ (default: main "
                        "for the default arms, else derived from the arms).")
    parser.add_argument("--workers", type=int, default=None, help="Processes running seeds side by side (default 2).")
    parser.add_argument("--no-page", action="store_true", help="Do not rebuild the page afterwards.")


def check_arguments(args: argparse.Namespace) -> None:
    """A flag the experiment would ignore is an error, not a silent no-op."""
    if args.experiment != "dynamics":
        given = [f"--{name}" for name in ONLY_DYNAMICS if getattr(args, name) is not None]
        if given:
            raise ConfigError(f"lab {args.experiment}: {', '.join(given)} applies to `lab dynamics` only "
                              f"(arms: {', '.join(available())})")
    if args.experiment == "page":
        given = [flag for flag, value in (("--set", args.overrides), ("--seeds", args.seeds),
                                          ("--workers", args.workers), ("--store", args.store)) if value]
        if given or args.no_page:
            raise ConfigError(f"lab page: {', '.join(given) or '--no-page'} does not apply (the page is built from "
                              "--data alone)")
    for name in ("seeds", "workers"):
        if getattr(args, name) is not None:
            number(f"--{name}", getattr(args, name), low=1, integer=True)


def run(args: argparse.Namespace) -> int:
    console = output_console()
    check_arguments(args)
    data = args.data or str(record.default_data())
    store = args.store or str(record.default_store())
    out = args.out or "leaderboards/lab"
    start = time.perf_counter()
    if args.experiment == "squeeze":
        _one_thread()
        _squeeze(console, data, args)
    elif args.experiment == "dynamics":
        _one_thread()
        run_cli(console, data, store, args)
    if not args.no_page or args.experiment == "page":
        files = write_page(data, out)
        console.print(f"wrote {len(files)} files to {out}/ from {data}/", highlight=False)
    console.print(f"[dim]lab {args.experiment} took {time.perf_counter() - start:.1f} s (load average "
                  f"{_load():.1f})[/]", highlight=False)
    return 0


def _load() -> float:
    import os

    return os.getloadavg()[0]


def _one_thread() -> None:
    """Tiny models gain nothing from a second thread; on shared cores OpenMP spin-waits made a squeeze run
    take 335 s of wall time for 152 s of CPU (2 threads, load ~5) against ~35 s with one. OMP_NUM_THREADS wins."""
    import os

    import torch

    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(1)


def _squeeze(console, data: str, args: argparse.Namespace) -> None:
    from spsbench.lab import squeeze

    cfg = apply_overrides(squeeze.SqueezeConfig, args.overrides, prefix="squeeze")
    seeds = args.seeds or SQUEEZE_SEEDS
    console.print(f"squeeze: vocab {cfg.vocab}, length {cfg.length}, SGD lr {cfg.lr:g}, model seeds "
                  f"{cfg.seed}..{cfg.seed + seeds - 1}", highlight=False)
    result = squeeze.run(cfg, seeds=seeds, workers=args.workers or 2)
    record.save_squeeze(data, result)
    console.print(squeeze_markdown(result), highlight=False, markup=False)
