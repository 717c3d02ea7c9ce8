"""The results store: one crash-safe SQLite file with every sample, every score and their provenance.
`db` holds the Store, `rows` its rows, `records` the records every layer above hands it whole (`EvalKey`,
`ModelTags`, `Scores`, `Interval`), `schema` the SQL. See docs/store.md.
"""

from spsbench.store.db import Store, now, store_error
from spsbench.store.records import EvalKey, Interval, Scores
from spsbench.store.rows import EvalRow, ModelRow, ModelTags, RunFailureRow, SampleRow, ScoreRow, SessionRow
from spsbench.store.schema import SCHEMA, SCHEMA_VERSION

__all__ = ["SCHEMA", "SCHEMA_VERSION", "EvalKey", "EvalRow", "Interval", "ModelRow", "ModelTags", "RunFailureRow",
           "SampleRow", "ScoreRow", "Scores", "SessionRow", "Store", "now", "store_error"]
