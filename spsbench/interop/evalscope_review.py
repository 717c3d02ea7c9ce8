"""EvalScope's own review of a prediction tree, run INSIDE EvalScope's venv (`make setup-evalscope`) by
`spsbench crosscheck evalscope`; it imports only EvalScope and the standard library, never spsbench.

Usage: `python evalscope_review.py JOB.json RESULT.json`. The job names the tree (`work_dir`, holding
`predictions/<model>/<bench>_<subset>.jsonl`), the model folder name, repeats, benchmarks and their
`dataset_args` (local data). EvalScope reuses every prediction (`use_cache`) and grades them again
(`rerun_review`), offline; the API URL is a closed port, so a missing prediction fails instead of
generating. Its Pass@k comes from its own `mean_and_pass_at_k` aggregator applied to its review rows
(asking the run for that aggregation crashes its report step when no primary metric is declared).
"""

from __future__ import annotations

import glob
import json
import os
import sys


def review(job: dict) -> dict:
    from evalscope import TaskConfig, run_task
    from evalscope.version import __version__

    config = TaskConfig(model=job["model"], api_url="http://127.0.0.1:9/v1", eval_type="openai_api",
                        datasets=job["datasets"], dataset_args=job["dataset_args"], repeats=job["repeats"],
                        use_cache=job["work_dir"], rerun_review=True, generation_config={"temperature": 0.7},
                        eval_batch_size=1)
    run_task(config)
    return {"evalscope_version": __version__,
            "benchmarks": {bench: _bench(job["work_dir"], job["model"], bench) for bench in job["datasets"]}}


def _bench(work_dir: str, model: str, bench: str) -> dict:
    from evalscope.api.evaluator.cache import ReviewResult
    from evalscope.metrics.aggregators.aggregators import MeanPassAtK

    rows, scores = [], []
    for path in sorted(glob.glob(os.path.join(work_dir, "reviews", model, f"{bench}_*.jsonl"))):
        subset = os.path.basename(path)[len(bench) + 1:-len(".jsonl")]
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                result = ReviewResult.from_cache_item(json.loads(line))
                score = result.to_sample_score()
                scores.append(score)
                rows.append({"subset": subset, "index": result.index, "value": score.score.value,
                             "status": str(getattr(score.score.status, "value", score.score.status)),
                             "extracted": score.score.extracted_prediction})
    passk = {}
    for agg in MeanPassAtK()(scores):
        if agg.aggregation == "pass_at_k":
            passk[str(agg.dimensions["k"])] = agg.score
    return {"reviews": rows, "pass_at_k": passk}


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as fh:
        job = json.load(fh)
    result = review(job)
    with open(sys.argv[2], "w", encoding="utf-8") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main()
