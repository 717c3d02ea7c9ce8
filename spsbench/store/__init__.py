"""The results store: one crash-safe SQLite file with every sample, every score and their provenance.
`db` holds the Store, `rows` its typed records, `schema` the SQL. See docs/store.md.
"""

from spsbench.store.db import Store, now, store_error
from spsbench.store.rows import EvalRow, ModelRow, RunFailureRow, SampleRow, ScoreRow, SessionRow
from spsbench.store.schema import SCHEMA, SCHEMA_VERSION

__all__ = ["SCHEMA", "SCHEMA_VERSION", "EvalRow", "ModelRow", "RunFailureRow", "SampleRow", "ScoreRow", "SessionRow", "Store", "now",
           "store_error"]
