"""Named SQL from sql/queries/*.sql, loaded once: blocks start with `-- name: <name>`."""

from __future__ import annotations

import re
from importlib.resources import files
from importlib.resources.abc import Traversable

# sql/ ships inside the package as batchcore._sql (setup.cfg): found from any directory.
QUERIES_DIR = files("batchcore._sql") / "queries"
_HEADER = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load(directory: Traversable = QUERIES_DIR) -> dict[str, str]:
    """Every named query in the directory; a name defined twice, or none at all, is an error."""
    found: dict[str, str] = {}
    paths = directory.iterdir() if directory.is_dir() else []
    for path in sorted((p for p in paths if p.name.endswith(".sql")), key=lambda p: p.name):
        parts = _HEADER.split(path.read_text(encoding="utf-8"))
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in found:
                raise ValueError(f"query {name!r} is defined twice (second in {path.name})")
            found[name] = body.strip()
    if not found:
        raise ValueError(f"no named queries found in {directory}")
    return found


Q = load()
