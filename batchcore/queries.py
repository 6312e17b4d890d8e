"""Named SQL from sql/queries/*.sql, loaded once: blocks start with `-- name: <name>`."""

from __future__ import annotations

import re
from pathlib import Path

QUERIES_DIR = Path(__file__).resolve().parent.parent / "sql" / "queries"
_HEADER = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load(directory: Path = QUERIES_DIR) -> dict[str, str]:
    """Every named query in the directory; a name defined twice is an error."""
    found: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        parts = _HEADER.split(path.read_text())
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in found:
                raise ValueError(f"query {name!r} is defined twice (second in {path.name})")
            found[name] = body.strip()
    return found


Q = load()
