"""Kept for importers outside the runs package: the store lives in batchcore.runs."""

from batchcore.runs.model import NewRun, Transition  # noqa: F401
from batchcore.runs.paging import decode_cursor, encode_cursor  # noqa: F401
from batchcore.runs.rows import (  # noqa: F401
    create_run,
    get_history,
    get_pipeline,
    get_run,
    transition,
)
from batchcore.runs.store import RunStore  # noqa: F401
