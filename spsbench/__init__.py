"""spsbench: evaluation-first benchmark harness for reasoning LMs, with an SPS/GRPO/DAPO/GSPO trainer.

Data flows one way: tasks -> generation (engines) -> grading -> metrics -> results store -> leaderboards.
The trainer reaches the evaluator only through a callback. Importing this package is cheap: heavy
backends (torch, transformers, vLLM, TRL) are imported lazily by the modules that need them.
"""

__version__ = "0.1.0"
