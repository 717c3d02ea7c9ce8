"""Leaderboards: Markdown pages and PNG plots built deterministically from the results store (and the
committed export in results/published/) only. `refresh` is the entry point; see docs/leaderboards.md.
"""
