"""Problem details of invalid input, and the one ValidationFailed that lists them.

A problem is `{"field", "rule", "message"}`; `rule` is the stable, machine-readable part.
Every parser of client input collects all of its problems before raising, so a client
learns every bad field, header and query parameter at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from batchcore.errors import ValidationFailed

Detail = dict[str, str]

# Unknown names beyond this many are reported as one summarising detail, so that a body
# or query of thousands of junk keys cannot produce a megabyte-sized error answer.
MAX_UNKNOWN_REPORTED = 50


def problem(field_name: str, rule: str, text: str) -> Detail:
    """One problem; its message starts with the field's name."""
    return {"field": field_name, "rule": rule, "message": f"{field_name}: {text}"}


def json_type(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def quoted(text: str, limit: int = 64) -> str:
    """`text` quoted and escaped for a message, cut to `limit` characters."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return json.dumps(text)


def short_name(name: str, limit: int = 64) -> str:
    """`name` cut to `limit` characters, marked when cut."""
    return name if len(name) <= limit else name[:limit] + "..."


def unknown_problems(
    names: Iterable[object], allowed: tuple[str, ...], kind: str, where: str
) -> list[Detail]:
    """One `unknown_field` problem per name not in `allowed`; `kind` is what a name is
    ("field", "query parameter"), `where` names the summary of those not listed."""
    unknown = [str(name) for name in names if name not in allowed]
    hint = f"allowed {kind}s are {', '.join(allowed)}" if allowed else "this route takes none"
    details = [
        {
            "field": short_name(name, 200),
            "rule": "unknown_field",
            "message": f"{quoted(name)} is not a known {kind}; {hint}",
        }
        for name in unknown[:MAX_UNKNOWN_REPORTED]
    ]
    if len(unknown) > MAX_UNKNOWN_REPORTED:
        extra = len(unknown) - MAX_UNKNOWN_REPORTED
        details.append(
            problem(where, "unknown_field", f"has {extra} more unknown {kind}s not listed here")
        )
    return details


def raise_if_any(details: list[Detail], subject: str = "request", noun: str = "field") -> None:
    """Raise ValidationFailed summarising `details`, naming every bad field (sorted)."""
    if not details:
        return
    names = sorted({str(detail["field"]) for detail in details})
    shown = ", ".join(short_name(name) for name in names[:10])
    if len(names) > 10:
        shown += f" and {len(names) - 10} more"
    plural = "" if len(names) == 1 else "s"
    raise ValidationFailed(
        f"The {subject} has {len(names)} invalid {noun}{plural}: {shown}.", details=details
    )
