"""Validation of what clients send to the gateway: run requests, list filters, `?wait=`.

Every parser collects *all* problems before it gives up, and raises one
`ValidationFailed` whose `details` hold one `{"field", "rule", "message"}` per
problem (at most one per rule and field), so a client learns every bad field at once.

Rule names (the stable, machine-readable part of each detail):

- any field: `required`, `type`, `unknown_field`
- `pipeline`: `length`, `pattern`; `mode`: `enum`
- `parameters`: `size`, `depth`, `not_finite` (NaN/Infinity, which PostgreSQL's JSONB
  refuses), `control_character` (NUL, which JSONB refuses), `encoding` (lone surrogates)
- path prefixes: `length`, `whitespace`, `control_character`, `encoding`, `backslash`,
  `traversal` (a `..` segment in any encoding), `dot_segment` (a `.` segment),
  `scheme_missing`, `scheme_not_allowed`, `userinfo`, `bucket_missing`, `file_host`,
  `query_or_fragment`, `ip_host`, `internal_host` (localhost, cloud-metadata names),
  `port`; on `output_path_prefix` also `same_as_input` and `nested`
- list filters: `enum` (status), `pattern`/`length` (pipeline), `type`/`range` (limit),
  `length` (cursor), `repeated` (a parameter given twice); `wait`: `type`, `range`

Only the shape of the input is checked here; whether the pipeline exists is the
database's question.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, NoReturn
from urllib.parse import unquote_to_bytes

from batchcore import statuses
from batchcore.errors import ValidationFailed

__all__ = [
    "DEFAULT_LIST_LIMIT",
    "LIST_QUERY_PARAMS",
    "MAX_CURSOR_LENGTH",
    "MAX_LIST_LIMIT",
    "MAX_PARAMETERS_BYTES",
    "MAX_PARAMETERS_DEPTH",
    "MAX_PATH_LENGTH",
    "MAX_PIPELINE_LENGTH",
    "MAX_WAIT_SECONDS",
    "PIPELINE_PATTERN",
    "RUN_MODES",
    "RUN_REQUEST_FIELDS",
    "ListFilters",
    "RunRequest",
    "parse_list_filters",
    "parse_run_request",
    "parse_wait",
    "validate_path_prefix",
]

Detail = dict[str, str]

RUN_REQUEST_FIELDS = ("pipeline", "mode", "input_path_prefix", "output_path_prefix", "parameters")
LIST_QUERY_PARAMS = ("status", "pipeline", "limit", "cursor")
RUN_MODES = ("BATCH",)

MAX_PIPELINE_LENGTH = 100
PIPELINE_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
# fullmatch with \Z semantics: `$` alone would also accept a trailing newline.
_PIPELINE_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*", re.ASCII)

MAX_PATH_LENGTH = 1024
MAX_PARAMETERS_BYTES = 64 * 1024  # of the compact UTF-8 JSON serialization
MAX_PARAMETERS_DEPTH = 32  # the parameters object itself is depth 1

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 200
MAX_CURSOR_LENGTH = 512
MAX_WAIT_SECONDS = 30.0

# Unknown fields beyond this many are reported as one summarising detail, so that a
# body of thousands of junk keys cannot produce a megabyte-sized error answer.
_MAX_UNKNOWN_REPORTED = 50
# Values this much longer than the limit only get the `length` problem: the deeper checks
# below are linear but run over several decoded forms, and the field is invalid anyway.
_DEEP_CHECK_LIMIT = 4 * MAX_PATH_LENGTH
# Percent-decoding (plus NFKC) is repeated until the value is stable; a value that is
# still changing after this many rounds (encoded more than four times over) is refused.
_MAX_DECODE_ROUNDS = 5

# Schemes whose authority is a bucket or container name that must be present.
_BUCKET_SCHEMES = frozenset({"s3", "s3a", "s3n", "gs", "abfs", "abfss"})
# ABFS addresses a container inside a storage account as
# abfs[s]://<container>@<account>.dfs.core.windows.net/<path>. There the '@' is part of
# the address, not user-info, so for these schemes one '@' is allowed in the authority
# (but not two, and not a ':' before it, which would be a user:password pair).
_CONTAINER_AT_ACCOUNT_SCHEMES = frozenset({"abfs", "abfss"})
# Schemes that name the same store, for the same/nested comparison.
_SAME_STORE = {"s3a": "s3", "s3n": "s3", "abfss": "abfs"}

# Host names that address this machine, a private network or a cloud metadata service
# rather than a bucket or storage account (IP literals are refused separately): a store
# that resolved them would read or write there (server-side request forgery).
_INTERNAL_HOSTS = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "ip6-localhost",
        "ip6-loopback",
        "metadata",
        "metadata.goog",
        "metadata.google.internal",
        "instance-data",
    }
)
# RFC 6761 (.localhost), RFC 6762 (.local), ICANN's private-use .internal, and the
# Debian/Red Hat convention .localdomain.
_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain")

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_MALFORMED_PERCENT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_SEGMENT_SEPARATOR_RE = re.compile(r"[/\\]")
_AUTHORITY_END_RE = re.compile(r"[/\\?#]")
# Dots that NFKC leaves alone but that IDNA and some tools treat as '.'.
_EXTRA_DOTS = str.maketrans({"\u3002": ".", "\uff61": ".", "\uff0e": "."})
_INET_PART_RE = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+", re.ASCII)
_LIMIT_RE = re.compile(r"-?[0-9]+", re.ASCII)
# A decimal number, with an exponent too: clients serialize small floats as 5.9e-08.
_WAIT_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


@dataclass(frozen=True)
class RunRequest:
    """A run request whose fields passed every check of `parse_run_request`."""

    pipeline: str
    mode: str
    input_path_prefix: str
    output_path_prefix: str
    parameters: dict[str, Any] = dataclass_field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ListFilters:
    """The filters of GET /api/v1/pipeline-runs; `cursor` is still opaque here."""

    statuses: tuple[str, ...] = ()
    pipeline: str | None = None
    limit: int = DEFAULT_LIST_LIMIT
    cursor: str | None = None


# ---------------------------------------------------------------------------- helpers


def _problem(field_name: str, rule: str, text: str) -> Detail:
    return {"field": field_name, "rule": rule, "message": f"{field_name}: {text}"}


def _json_type(value: object) -> str:
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


def _quoted(text: str, limit: int = 64) -> str:
    """`text` quoted and escaped for a message, cut to `limit` characters."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return json.dumps(text)


def _short_name(name: str, limit: int = 64) -> str:
    return name if len(name) <= limit else name[:limit] + "..."


def _raise_if_any(details: list[Detail], subject: str, noun: str) -> None:
    """Raise ValidationFailed summarising `details`, naming every bad field (sorted)."""
    if not details:
        return
    names = sorted({detail["field"] for detail in details})
    shown = ", ".join(_short_name(name) for name in names[:10])
    if len(names) > 10:
        shown += f" and {len(names) - 10} more"
    plural = "" if len(names) == 1 else "s"
    raise ValidationFailed(
        f"The {subject} has {len(names)} invalid {noun}{plural}: {shown}.", details=details
    )


def _fail(details: list[Detail], subject: str, noun: str) -> NoReturn:
    _raise_if_any(details, subject, noun)
    raise AssertionError("unreachable: _fail needs at least one detail")


def _is_control(ch: str) -> bool:
    """C0, DEL, C1, the Unicode line/paragraph separators, and format controls (Cf:
    bidirectional overrides, zero-width characters), which can hide what a path says."""
    code = ord(ch)
    if code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029):
        return True
    return code > 0x9F and unicodedata.category(ch) == "Cf"


def _pipeline_problems(value: object, field_name: str) -> list[Detail]:
    if not isinstance(value, str):
        return [_problem(field_name, "type", f"must be a string, not {_json_type(value)}")]
    if not 1 <= len(value) <= MAX_PIPELINE_LENGTH:
        return [
            _problem(
                field_name,
                "length",
                f"must be 1 to {MAX_PIPELINE_LENGTH} characters long, not {len(value)}",
            )
        ]
    if not _PIPELINE_RE.fullmatch(value):
        return [
            _problem(
                field_name,
                "pattern",
                f"must match {PIPELINE_PATTERN}: lowercase letters, digits, '_', '.' and '-',"
                " starting with a letter or digit",
            )
        ]
    return []


# ----------------------------------------------------------------------- path prefixes


def _decoded_forms(value: str) -> tuple[list[str], str | None]:
    """The value and every form it takes under repeated percent-decoding and NFKC
    normalization (raw first, most decoded last), and an encoding problem if any."""
    if _SURROGATE_RE.search(value):
        return [value], "contains an unpaired surrogate code point, which is not valid text"
    problem = None
    if _MALFORMED_PERCENT_RE.search(value):
        problem = "has a '%' that does not start a percent-encoded byte (%XX)"
    forms = [value]

    def remember(form: str) -> None:
        if form not in forms:
            forms.append(form)

    remember(unicodedata.normalize("NFKC", value))
    current = value
    for _ in range(_MAX_DECODE_ROUNDS):
        try:
            decoded = unquote_to_bytes(current).decode("utf-8")
        except UnicodeDecodeError:
            return forms, problem or (
                "has percent-encoded bytes that are not valid UTF-8"
                " (such as the overlong encoding %c0%ae)"
            )
        remember(decoded)
        normalized = unicodedata.normalize("NFKC", decoded)
        remember(normalized)
        if normalized == current:
            return forms, problem
        current = normalized
    return forms, problem or (f"is percent-encoded more than {_MAX_DECODE_ROUNDS - 1} times over")


def _fully_decoded(value: str) -> str:
    forms, _ = _decoded_forms(value)
    return forms[-1]


def _dot_segment_kind(segment: str) -> str | None:
    """'traversal' for '..' (and '...', '.. ', '..;x'), 'dot' for '.', else None.

    Everything after ';' is dropped (servlet containers read '..;x' as '..') and so are
    trailing spaces (Windows reads '.. ' as '..'); any run of dots counts as traversal.
    """
    core = segment.split(";", 1)[0].rstrip(" ").translate(_EXTRA_DOTS)
    if not core or core.strip("."):
        return None
    return "dot" if len(core) == 1 else "traversal"


def _split_authority(text: str) -> tuple[str, str]:
    """Split what follows '//' into the authority and the rest."""
    end = _AUTHORITY_END_RE.search(text)
    if end is None:
        return text, ""
    return text[: end.start()], text[end.start() :]


def _is_legacy_ipv4(text: str) -> bool:
    """inet_aton's forms: 1-4 dot-separated decimal/octal/hex parts (127.1, 0x7f.1,
    2130706433, 0177.0.0.1), with inet_aton's range rules."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return False
    values = []
    for part in parts:
        if not _INET_PART_RE.fullmatch(part):
            return False
        if part[:2].lower() == "0x":
            digits, base = part[2:], 16
        elif len(part) > 1 and part[0] == "0":
            digits, base = part[1:], 8
            if any(ch in "89" for ch in digits):
                return False
        else:
            digits, base = part, 10
        significant = digits.lstrip("0")
        if len(significant) > 12:  # far above 2**32 in any of these bases
            return False
        values.append(int(significant or "0", base))
    *leading, last = values
    if any(number > 255 for number in leading):
        return False
    return last < 256 ** (5 - len(values))


def _is_ip_literal(host: str) -> bool:
    if host.startswith("[") or host.endswith("]"):
        return True
    candidate = host.partition(":")[0] if host.count(":") == 1 else host
    candidate = candidate.removesuffix(".")
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return _is_legacy_ipv4(candidate)
    return True


def _is_internal_host(host: str) -> bool:
    """True for localhost, cloud metadata names and private-use domains (see above)."""
    name = host.partition(":")[0] if host.count(":") == 1 else host
    name = name.translate(_EXTRA_DOTS).lower().rstrip(".")
    return name in _INTERNAL_HOSTS or name.endswith(_INTERNAL_SUFFIXES)


def _check_authority(scheme: str, rest: str, add, note: str) -> None:
    """Checks of what follows 'scheme:' in one form of the value."""
    if scheme == "file":
        shape = "must have the form file:///absolute/path"
        if not rest.startswith("//"):
            add("file_host", shape + note)
            return
        authority, path = _split_authority(rest[2:])
        if authority.lower() not in ("", "localhost"):
            add(
                "file_host",
                f"{shape}: the host must be empty or 'localhost', not {_quoted(authority)}" + note,
            )
        elif not path.startswith("/"):
            add("file_host", shape + note)
        return

    if not rest.startswith("//"):
        if scheme in _BUCKET_SCHEMES:
            add("bucket_missing", f"must have the form {scheme}://<bucket>/<path>" + note)
        return
    authority, _ = _split_authority(rest[2:])
    host = authority
    userinfo = "must not contain user information ('user@' or 'user:password@') before the host"
    if scheme in _CONTAINER_AT_ACCOUNT_SCHEMES:
        # abfs://<container>@<account>...: see _CONTAINER_AT_ACCOUNT_SCHEMES.
        container, at, host = authority.rpartition("@")
        if authority.count("@") > 1 or ":" in container:
            add("userinfo", userinfo + note)
        elif at and not container:
            add("bucket_missing", "must name a container before '@'" + note)
    elif "@" in authority:
        add("userinfo", userinfo + note)
        host = authority.rpartition("@")[2]
    if not host:
        if scheme in _BUCKET_SCHEMES:
            add("bucket_missing", f"must name a bucket: {scheme}://<bucket>/<path>" + note)
        return
    if _is_ip_literal(host):
        add(
            "ip_host",
            "must name a bucket or account, not an IP address (IP literals are refused)" + note,
        )
        return
    if _is_internal_host(host):
        add(
            "internal_host",
            "must name a bucket or account, not a local or cloud-metadata host"
            f" such as localhost or metadata.google.internal; got {_quoted(host)}" + note,
        )
    if ":" in host:
        add("port", "must not contain a port number" + note)


def _check_form(form: str, scheme: str | None, add, decoded: bool) -> None:
    """The checks that apply to the raw value and to each of its decoded forms."""
    note = " (after decoding)" if decoded else ""
    for position, ch in enumerate(form):
        if _is_control(ch):
            add(
                "control_character",
                f"must not contain control characters; found U+{ord(ch):04X}"
                f" at character {position + 1}{note}",
            )
            break
    if "\\" in form:
        add("backslash", "must not contain a backslash; segments are separated by '/'" + note)
    if "?" in form or "#" in form:
        add("query_or_fragment", "must not contain '?' or '#' (a query or fragment)" + note)
    for segment in _SEGMENT_SEPARATOR_RE.split(form):
        kind = _dot_segment_kind(segment)
        if kind == "traversal":
            add("traversal", "must not contain a '..' segment, in any encoding" + note)
        elif kind == "dot":
            add("dot_segment", "must not contain a '.' segment, in any encoding" + note)
    if scheme is not None and form[: len(scheme) + 1].lower() == scheme + ":":
        _check_authority(scheme, form[len(scheme) + 1 :], add, note)


def validate_path_prefix(value: object, field: str, allowed_schemes: Iterable[str]) -> list[Detail]:
    """The problems of one path prefix (empty when it is acceptable), one per rule.

    The value is checked as given and in every form it takes when percent-decoded
    repeatedly and NFKC-normalized, so '..' cannot hide as %2e%2e, %252e%252e, fullwidth
    dots, '\\..\\' and the like. Scheme names compare case-insensitively.
    """
    if not isinstance(value, str):
        return [_problem(field, "type", f"must be a string, not {_json_type(value)}")]
    if not value:
        return [_problem(field, "required", "must not be empty")]
    found: dict[str, str] = {}

    def add(rule: str, text: str) -> None:
        found.setdefault(rule, text)

    if len(value) > MAX_PATH_LENGTH:
        add(
            "length",
            f"must be at most {MAX_PATH_LENGTH} characters long, not {len(value)}",
        )
        if len(value) > _DEEP_CHECK_LIMIT:
            return [_problem(field, rule, text) for rule, text in found.items()]
    if value != value.strip():
        add("whitespace", "must not start or end with whitespace")

    allowed = sorted({scheme.lower() for scheme in allowed_schemes})
    allowed_text = ", ".join(allowed) if allowed else "(none)"
    match = _SCHEME_RE.match(value)
    scheme = None
    if match is None:
        add(
            "scheme_missing",
            f"must be a URI that starts with a scheme (such as s3://);"
            f" allowed schemes are {allowed_text}",
        )
    else:
        scheme = match.group(1).lower()
        if scheme not in allowed:
            add(
                "scheme_not_allowed",
                f"scheme {_short_name(scheme, 32)!r} is not allowed;"
                f" allowed schemes are {allowed_text}",
            )

    forms, encoding_problem = _decoded_forms(value)
    if encoding_problem:
        add("encoding", encoding_problem)
    for index, form in enumerate(forms):
        _check_form(form, scheme, add, decoded=index > 0)
    return [_problem(field, rule, text) for rule, text in found.items()]


def _comparable(value: str) -> tuple[str, str, tuple[str, ...]]:
    """(store, authority, path segments) of a valid prefix, for the same/nested rules:
    fully decoded, scheme and host lowercased, empty segments and trailing '/' dropped."""
    text = _fully_decoded(value)
    match = _SCHEME_RE.match(text)
    if match is None:  # not reached for valid values; compare the text as a whole
        return "", "", (text,)
    scheme = match.group(1).lower()
    rest = text[match.end() :]
    if rest.startswith("//"):
        authority, path = _split_authority(rest[2:])
    else:
        authority, path = "", rest
    authority = authority.lower()
    if scheme == "file" and authority == "localhost":
        authority = ""
    segments = tuple(segment for segment in path.split("/") if segment)
    return _SAME_STORE.get(scheme, scheme), authority, segments


def _relation_problems(input_value: str, output_value: str) -> list[Detail]:
    source = _comparable(input_value)
    target = _comparable(output_value)
    if source == target:
        return [
            _problem(
                "output_path_prefix",
                "same_as_input",
                "must differ from input_path_prefix (they name the same location)",
            )
        ]
    if source[:2] != target[:2]:
        return []
    source_path, target_path = source[2], target[2]
    if target_path[: len(source_path)] == source_path:
        return [
            _problem(
                "output_path_prefix",
                "nested",
                "must not lie inside input_path_prefix; the two must not contain each other",
            )
        ]
    if source_path[: len(target_path)] == target_path:
        return [
            _problem(
                "output_path_prefix",
                "nested",
                "must not contain input_path_prefix; the two must not contain each other",
            )
        ]
    return []


# --------------------------------------------------------------------------- parameters


def _parameters_problems(value: object) -> list[Detail]:
    name = "parameters"
    if not isinstance(value, dict):
        return [_problem(name, "type", f"must be a JSON object, not {_json_type(value)}")]
    found: dict[str, str] = {}

    def add(rule: str, text: str) -> None:
        found.setdefault(rule, text)

    def check_text(text: str, where: str) -> None:
        if "\x00" in text:
            add("control_character", f"must not contain NUL characters (at {where})")
        if _SURROGATE_RE.search(text):
            add("encoding", f"must not contain unpaired surrogates (at {where})")

    # Iterative walk: depth is bounded by the limit, not by Python's recursion limit.
    stack: list[tuple[object, int, str]] = [(value, 1, name)]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_PARAMETERS_DEPTH:
                add(
                    "depth",
                    f"must be nested at most {MAX_PARAMETERS_DEPTH} levels deep"
                    f" (exceeded at {_short_name(where, 200)})",
                )
                continue
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        add("type", f"must have string keys (at {_short_name(where, 200)})")
                        continue
                    child_where = f"{where}.{_short_name(key, 40)}"
                    check_text(key, _short_name(child_where, 200))
                    stack.append((child, depth + 1, child_where))
            else:
                for index, child in enumerate(item):
                    stack.append((child, depth + 1, f"{where}[{index}]"))
        elif isinstance(item, str):
            check_text(item, _short_name(where, 200))
        elif isinstance(item, float):
            if not math.isfinite(item):
                add(
                    "not_finite",
                    f"must not contain NaN or Infinity (at {_short_name(where, 200)})",
                )
        elif item is not None and not isinstance(item, bool | int):
            add(
                "type",
                f"must contain only JSON values, not {_json_type(item)}"
                f" (at {_short_name(where, 200)})",
            )

    if not found.keys() & {"type", "not_finite", "encoding"}:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except (ValueError, TypeError, RecursionError):  # pragma: no cover - walk caught it
            text = ""
        size = len(text.encode("utf-8"))
        if size > MAX_PARAMETERS_BYTES:
            add(
                "size",
                f"must serialize to at most {MAX_PARAMETERS_BYTES} bytes of JSON, not {size}",
            )
    return [_problem(name, rule, text) for rule, text in found.items()]


# ----------------------------------------------------------------------- run requests


def parse_run_request(body: object, allowed_schemes: frozenset[str]) -> RunRequest:
    """The body of POST /api/v1/pipeline-runs as a RunRequest, or ValidationFailed
    naming every bad field. `allowed_schemes` comes from ALLOWED_PATH_SCHEMES."""
    if not isinstance(body, dict):
        raise ValidationFailed(
            f"The request body must be a JSON object, not {_json_type(body)}.",
            details=[_problem("body", "type", f"must be a JSON object, not {_json_type(body)}")],
        )
    details: list[Detail] = []

    def required(name: str) -> bool:
        if name in body:
            return True
        details.append(_problem(name, "required", "is required"))
        return False

    if required("pipeline"):
        details.extend(_pipeline_problems(body["pipeline"], "pipeline"))

    if required("mode"):
        mode = body["mode"]
        if not isinstance(mode, str):
            details.append(_problem("mode", "type", f"must be a string, not {_json_type(mode)}"))
        elif mode not in RUN_MODES:
            details.append(
                _problem(
                    "mode",
                    "enum",
                    f"must be one of {', '.join(RUN_MODES)}, not {_quoted(mode)}",
                )
            )

    paths_valid = True
    for name in ("input_path_prefix", "output_path_prefix"):
        if required(name):
            problems = validate_path_prefix(body[name], name, allowed_schemes)
            details.extend(problems)
            paths_valid = paths_valid and not problems
        else:
            paths_valid = False
    if paths_valid:
        details.extend(_relation_problems(body["input_path_prefix"], body["output_path_prefix"]))

    parameters = body.get("parameters", {})
    if "parameters" in body:
        details.extend(_parameters_problems(parameters))

    unknown = [key for key in body if key not in RUN_REQUEST_FIELDS]
    for key in unknown[:_MAX_UNKNOWN_REPORTED]:
        name = _short_name(str(key), 200)
        details.append(
            {
                "field": name,
                "rule": "unknown_field",
                "message": f"{_quoted(str(key))} is not a known field; allowed fields are "
                + ", ".join(RUN_REQUEST_FIELDS),
            }
        )
    if len(unknown) > _MAX_UNKNOWN_REPORTED:
        extra = len(unknown) - _MAX_UNKNOWN_REPORTED
        details.append(
            _problem("body", "unknown_field", f"has {extra} more unknown fields not listed here")
        )

    _raise_if_any(details, "request", "field")
    return RunRequest(
        pipeline=body["pipeline"],
        mode=body["mode"],
        input_path_prefix=body["input_path_prefix"],
        output_path_prefix=body["output_path_prefix"],
        parameters=parameters,
    )


# ------------------------------------------------------------------------ query strings


def _query_values(args: Mapping[str, str], name: str) -> list[object]:
    """Every value of a query parameter; Werkzeug's MultiDict keeps repeats in getlist."""
    getlist = getattr(args, "getlist", None)
    if callable(getlist):
        return list(getlist(name))
    return [args[name]] if name in args else []


def parse_list_filters(
    args: Mapping[str, str],
    *,
    default_limit: int = DEFAULT_LIST_LIMIT,
    max_limit: int = MAX_LIST_LIMIT,
) -> ListFilters:
    """The query of GET /api/v1/pipeline-runs as ListFilters, or ValidationFailed naming
    every bad parameter. `status` takes several statuses, comma-separated or repeated."""
    details: list[Detail] = []

    unknown = [key for key in args if key not in LIST_QUERY_PARAMS]
    for key in unknown[:_MAX_UNKNOWN_REPORTED]:
        details.append(
            {
                "field": _short_name(str(key), 200),
                "rule": "unknown_field",
                "message": f"{_quoted(str(key))} is not a known query parameter;"
                f" allowed are {', '.join(LIST_QUERY_PARAMS)}",
            }
        )

    wanted: list[str] = []
    for raw in _query_values(args, "status"):
        if not isinstance(raw, str):
            details.append(_problem("status", "type", "must be a string"))
            continue
        for item in raw.split(","):
            status = item.strip()
            if status not in statuses.ALL:
                details.append(
                    _problem(
                        "status",
                        "enum",
                        f"must be one or more of {', '.join(statuses.ALL)}"
                        f" (comma-separated), not {_quoted(status)}",
                    )
                )
                break
            if status not in wanted:
                wanted.append(status)

    def single(name: str) -> object | None:
        values = _query_values(args, name)
        if len(values) > 1:
            details.append(_problem(name, "repeated", "must be given at most once"))
            return None
        return values[0] if values else None

    pipeline = single("pipeline")
    if pipeline is not None:
        problems = _pipeline_problems(pipeline, "pipeline")
        details.extend(problems)
        if problems:
            pipeline = None

    limit = default_limit
    raw_limit = single("limit")
    if raw_limit is not None:
        if not isinstance(raw_limit, str) or not _LIMIT_RE.fullmatch(raw_limit):
            details.append(
                _problem("limit", "type", f"must be a whole number from 1 to {max_limit}")
            )
        else:
            digits = raw_limit.lstrip("-").lstrip("0")
            number = int(raw_limit) if len(digits) <= 9 else max_limit + 1
            if not 1 <= number <= max_limit:
                details.append(
                    _problem("limit", "range", f"must be from 1 to {max_limit}, not {raw_limit}")
                )
            else:
                limit = number

    cursor = single("cursor")
    if cursor is not None:
        if not isinstance(cursor, str):
            details.append(_problem("cursor", "type", "must be a string"))
            cursor = None
        elif not 1 <= len(cursor) <= MAX_CURSOR_LENGTH:
            details.append(
                _problem(
                    "cursor",
                    "length",
                    f"must be 1 to {MAX_CURSOR_LENGTH} characters long, not {len(cursor)}",
                )
            )
            cursor = None

    _raise_if_any(details, "query", "parameter")
    return ListFilters(statuses=tuple(wanted), pipeline=pipeline, limit=limit, cursor=cursor)


def parse_wait(value: str | None) -> float:
    """Seconds from `?wait=` (0 to 30, fractions and exponents allowed); 0 when absent."""
    if value is None:
        return 0.0
    if not isinstance(value, str) or len(value) > 32 or not _WAIT_RE.fullmatch(value):
        _fail(
            [
                _problem(
                    "wait", "type", f"must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}"
                )
            ],
            "query",
            "parameter",
        )
    seconds = float(value)
    if not 0.0 <= seconds <= MAX_WAIT_SECONDS:
        _fail(
            [
                _problem(
                    "wait",
                    "range",
                    f"must be from 0 to {MAX_WAIT_SECONDS:g} seconds, not {_quoted(value)}",
                )
            ],
            "query",
            "parameter",
        )
    return seconds
