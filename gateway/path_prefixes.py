"""Path prefixes: URIs a job may read or write, checked against traversal and SSRF.

A prefix is checked as given and in every form it takes when percent-decoded repeatedly
and NFKC-normalized, so that '..' cannot hide as %2e%2e, %252e%252e, fullwidth dots,
'\\..\\' and the like. Rule names: `length`, `whitespace`, `control_character`, `encoding`,
`backslash`, `traversal` (a `..` segment in any encoding), `dot_segment` (a `.` segment),
`scheme_missing`, `scheme_not_allowed`, `userinfo`, `bucket_missing`, `file_host`,
`query_or_fragment`, `ip_host`, `internal_host` (localhost, cloud-metadata names), `port`;
between input and output prefix also `same_as_input` and `nested`.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

from .problems import Detail, json_type, problem, quoted, short_name

MAX_PATH_LENGTH = 1024

# Values this much longer than the limit only get the `length` problem: the deeper checks
# below are linear but run over several decoded forms, and the field is invalid anyway.
_DEEP_CHECK_LIMIT = 4 * MAX_PATH_LENGTH
# Percent-decoding (plus NFKC) is repeated until the value is stable; a value that is
# still changing after this many rounds (encoded more than four times over) is refused.
_MAX_DECODE_ROUNDS = 5

# Schemes whose authority is a bucket or container name that must be present.
BUCKET_SCHEMES = frozenset({"s3", "s3a", "s3n", "gs", "abfs", "abfss"})
# ABFS addresses a container inside a storage account as
# abfs[s]://<container>@<account>.dfs.core.windows.net/<path>. There the '@' is part of
# the address, not user-info, so for these schemes one '@' is allowed in the authority
# (but not two, and not a ':' before it, which would be a user:password pair).
CONTAINER_AT_ACCOUNT_SCHEMES = frozenset({"abfs", "abfss"})
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


def _is_control(ch: str) -> bool:
    """C0, DEL, C1, the Unicode line/paragraph separators, and format controls (Cf:
    bidirectional overrides, zero-width characters), which can hide what a path says."""
    code = ord(ch)
    if code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029):
        return True
    return code > 0x9F and unicodedata.category(ch) == "Cf"


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
                f"{shape}: the host must be empty or 'localhost', not {quoted(authority)}" + note,
            )
        elif not path.startswith("/"):
            add("file_host", shape + note)
        return

    if not rest.startswith("//"):
        if scheme in BUCKET_SCHEMES:
            add("bucket_missing", f"must have the form {scheme}://<bucket>/<path>" + note)
        return
    authority, _ = _split_authority(rest[2:])
    host = authority
    userinfo = "must not contain user information ('user@' or 'user:password@') before the host"
    if scheme in CONTAINER_AT_ACCOUNT_SCHEMES:
        # abfs://<container>@<account>...: see CONTAINER_AT_ACCOUNT_SCHEMES.
        container, at, host = authority.rpartition("@")
        if authority.count("@") > 1 or ":" in container:
            add("userinfo", userinfo + note)
        elif at and not container:
            add("bucket_missing", "must name a container before '@'" + note)
    elif "@" in authority:
        add("userinfo", userinfo + note)
        host = authority.rpartition("@")[2]
    if not host:
        if scheme in BUCKET_SCHEMES:
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
            f" such as localhost or metadata.google.internal; got {quoted(host)}" + note,
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
    """The problems of one path prefix (none when acceptable), one per rule, in all its forms."""
    if not isinstance(value, str):
        return [problem(field, "type", f"must be a string, not {json_type(value)}")]
    if not value:
        return [problem(field, "required", "must not be empty")]
    found: dict[str, str] = {}

    def add(rule: str, text: str) -> None:
        found.setdefault(rule, text)

    if len(value) > MAX_PATH_LENGTH:
        add(
            "length",
            f"must be at most {MAX_PATH_LENGTH} characters long, not {len(value)}",
        )
        if len(value) > _DEEP_CHECK_LIMIT:
            return [problem(field, rule, text) for rule, text in found.items()]
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
                f"scheme {short_name(scheme, 32)!r} is not allowed;"
                f" allowed schemes are {allowed_text}",
            )

    forms, encoding_problem = _decoded_forms(value)
    if encoding_problem:
        add("encoding", encoding_problem)
    for index, form in enumerate(forms):
        _check_form(form, scheme, add, decoded=index > 0)
    return [problem(field, rule, text) for rule, text in found.items()]


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


def relation_problems(input_value: str, output_value: str) -> list[Detail]:
    """The problems of two valid prefixes together: the same location, or one inside the other."""
    source = _comparable(input_value)
    target = _comparable(output_value)
    if source == target:
        return [
            problem(
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
            problem(
                "output_path_prefix",
                "nested",
                "must not lie inside input_path_prefix; the two must not contain each other",
            )
        ]
    if source_path[: len(target_path)] == target_path:
        return [
            problem(
                "output_path_prefix",
                "nested",
                "must not contain input_path_prefix; the two must not contain each other",
            )
        ]
    return []
