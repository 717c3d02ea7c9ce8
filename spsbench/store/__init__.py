"""The results store: one crash-safe SQLite file with every sample, every score and their provenance.
`db` holds the Store and its row records, `schema` the SQL. See docs/store.md.
"""

from spsbench.store.db import EvalRow, ModelRow, SampleRow, ScoreRow, SessionRow, Store, now, store_error
from spsbench.store.schema import SCHEMA, SCHEMA_VERSION

__all__ = ["SCHEMA", "SCHEMA_VERSION", "EvalRow", "ModelRow", "SampleRow", "ScoreRow", "SessionRow", "Store", "now",
           "store_error"]
