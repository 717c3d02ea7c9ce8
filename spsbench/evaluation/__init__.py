"""Evaluation: one model on some tasks, end to end. `records` holds the typed request/identity/scores,
`evaluate` asks the store what is missing, generates only that, grades it and commits it, `scan` does it for
every checkpoint of a training run, `budget` and `identity` settle what exactly is being evaluated.
"""
