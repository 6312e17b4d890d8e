"""Hypothesis strategies of path prefixes the gateway must refuse, each in many encodings.

Shared by the properties of gateway.path_prefixes (tests/unit) and the properties of the
running gateway over HTTP (tests/e2e). Each strategy builds values that break exactly one
family of rules, around otherwise harmless parts, so a test can also say which rule.
"""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

# The stack's default ALLOWED_PATH_SCHEMES.
ALLOWED_SCHEMES = frozenset({"s3", "gs", "abfs", "file"})

# Heads of valid prefixes, one per allowed scheme, each followed by a path.
HEADS = ["s3://bucket/", "gs://b/", "abfs://c@acct.dfs.core.windows.net/", "file:///tmp/"]

SAFE_SEGMENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=10)
SAFE_PATH = st.lists(SAFE_SEGMENT, min_size=0, max_size=4).map("/".join)
SAFE_BUCKET = st.from_regex(r"[a-z0-9][a-z0-9-]{2,20}", fullmatch=True).filter(
    lambda name: name not in {"metadata", "localhost"}
)


def _percent(text: str, upper: bool) -> str:
    """Every byte of `text` percent-encoded (UTF-8)."""
    pattern = "%{:02X}" if upper else "%{:02x}"
    return "".join(pattern.format(byte) for byte in text.encode("utf-8"))


def _fullwidth(text: str) -> str:
    """ASCII punctuation, letters and digits as their fullwidth forms (NFKC maps them back)."""
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def encodings(text: str) -> st.SearchStrategy[str]:
    """`text` as given, percent-encoded (once, twice or three times), or fullwidth."""
    once = st.sampled_from([_percent(text, True), _percent(text, False)])
    return st.one_of(
        st.just(text),
        once,
        once.map(lambda encoded: encoded.replace("%", "%25")),
        once.map(lambda encoded: encoded.replace("%", "%2525")),
        st.just(_fullwidth(text)),
    )


# ------------------------------------------------------------------- rule families


DOT_DOT = st.one_of(
    encodings(".."),
    st.sampled_from(
        [
            ".%2e",
            "%2e.",
            "\u2025",  # two dot leader
            "\u2024\u2024",  # one dot leaders
            "\ufe52\ufe52",  # small full stops
            "\u3002\u3002",  # ideographic full stops
            "%c0%ae%c0%ae",  # overlong UTF-8
            "%e0%80%ae%e0%80%ae",
            "..;",
            "..;jsessionid=x",
            ".. ",
            "...",
        ]
    ),
)
SEPARATOR = st.one_of(st.just("/"), encodings("/"), encodings("\\"))


@st.composite
def traversals(draw) -> str:
    """A '..' segment, in any encoding and between any kind of separators."""
    value = draw(st.sampled_from(HEADS)) + draw(SAFE_PATH) + draw(SEPARATOR) + draw(DOT_DOT)
    if draw(st.booleans()):
        value += draw(SEPARATOR) + draw(SAFE_PATH)
    return value


BACKSLASH = st.one_of(encodings("\\"), st.sampled_from(["\ufe68", "%ef%bc%bc", "%EF%B9%A8"]))


@st.composite
def backslashes(draw) -> str:
    """A backslash anywhere after the scheme, literal or encoded."""
    return draw(st.sampled_from(HEADS)) + draw(SAFE_PATH) + draw(BACKSLASH) + draw(SAFE_PATH)


CONTROL_CHARACTERS = [chr(code) for code in [*range(0x20), *range(0x7F, 0xA0)]] + [
    "\u2028",  # line separator
    "\u2029",  # paragraph separator
    "\u200b",  # zero-width space
    "\u200e",  # left-to-right mark
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\ufeff",  # zero-width no-break space (byte order mark)
]


@st.composite
def control_characters(draw) -> str:
    """NUL and every other control character, literal or percent-encoded, anywhere."""
    control = draw(st.sampled_from(CONTROL_CHARACTERS))
    encoded = draw(
        st.one_of(
            st.just(control),
            st.sampled_from([_percent(control, True), _percent(control, False)]),
            st.just(_percent(control, True).replace("%", "%25")),
        )
    )
    head = draw(st.sampled_from(HEADS))
    where = draw(st.sampled_from(["path", "start", "end"]))
    if where == "start":
        return encoded + head + draw(SAFE_PATH)
    if where == "end":
        return head + draw(SAFE_PATH) + encoded
    return head + draw(SAFE_PATH) + encoded + draw(SAFE_PATH)


AT_SIGN = st.one_of(encodings("@"), st.just("\ufe6b"))  # small commercial at
USER = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=", max_size=12)


@st.composite
def user_infos(draw) -> str:
    """'user@' or 'user:password@' before the bucket, container or account."""
    user = draw(USER)
    password = draw(st.one_of(st.none(), USER))
    info = user if password is None else f"{user}:{password}"
    at = draw(AT_SIGN)
    path = draw(SAFE_PATH)
    scheme = draw(st.sampled_from(["s3", "gs", "abfs"]))
    if scheme != "abfs":
        return f"{scheme}://{info}{at}{draw(SAFE_BUCKET)}/{path}"
    # abfs://<container>@<account>: the one '@' is part of the address, so user-info
    # there is 'user:password@' or a second '@'.
    if password is None:
        return f"abfs://{info}{at}{draw(SAFE_BUCKET)}@acct.dfs.core.windows.net/{path}"
    return f"abfs://{info}{at}acct.dfs.core.windows.net/{path}"


DANGEROUS_SCHEMES = [
    "http",
    "https",
    "ftp",
    "sftp",
    "gopher",
    "dict",
    "ldap",
    "jar",
    "netdoc",
    "smb",
    "hdfs",
    "s3a",
    "wasb",
    "javascript",
    "data",
    "jdbc",
    "php",
    "expect",
    "glob",
]
OTHER_SCHEME = st.one_of(
    st.sampled_from(DANGEROUS_SCHEMES),
    st.from_regex(r"[A-Za-z][A-Za-z0-9+.-]{0,15}", fullmatch=True),
).filter(lambda scheme: scheme.lower() not in ALLOWED_SCHEMES)


def _random_case(draw, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(ch.upper() if flip else ch for ch, flip in zip(text, flips, strict=True))


@st.composite
def disallowed_schemes(draw) -> str:
    """A scheme outside ALLOWED_PATH_SCHEMES, in any case, or no scheme at all."""
    path = draw(SAFE_PATH)
    if draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from(["/", "//", "./", "~/", "bucket/", "C:/"])) + path
    scheme = _random_case(draw, draw(OTHER_SCHEME))
    return f"{scheme}://{draw(SAFE_BUCKET)}/{path}"


METADATA_ADDRESSES = [
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, Oracle
    ipaddress.ip_address("169.254.170.2"),  # ECS task metadata
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("::ffff:169.254.169.254"),
    ipaddress.ip_address("127.0.0.1"),
    ipaddress.ip_address("::1"),
    ipaddress.ip_address("0.0.0.0"),
]
INTERNAL_NAMES = [
    "localhost",
    "localhost.localdomain",
    "ip6-localhost",
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
]


def _ipv4_forms(address: ipaddress.IPv4Address) -> list[str]:
    """The spellings inet_aton and browsers accept for one IPv4 address."""
    number = int(address)
    octets = [int(part) for part in str(address).split(".")]
    return [
        str(address),
        str(number),  # 2852039166
        hex(number),  # 0xa9fea9fe
        ".".join(f"0{octet:o}" for octet in octets),  # 0251.0376.0251.0376
        ".".join(hex(octet) for octet in octets),  # 0xa9.0xfe.0xa9.0xfe
        f"{octets[0]}.{number & 0xFFFFFF}",  # 169.16689662
        f"{octets[0]}.{octets[1]}.{number & 0xFFFF}",  # 169.254.43518
        str(address) + ".",
    ]


@st.composite
def internal_hosts(draw) -> tuple[str, str]:
    """(host, host as sent): an IP literal (every one is refused), localhost, or a
    cloud-metadata host name, possibly with a port, possibly encoded."""
    # Names twice as often: IP literals were refused long before host names were.
    kind = draw(st.sampled_from(["ipv4", "ipv6", "name", "name"]))
    if kind == "name":
        name = draw(
            st.one_of(
                st.sampled_from(INTERNAL_NAMES),
                st.tuples(SAFE_BUCKET, st.sampled_from([".localhost", ".internal", ".local"])).map(
                    "".join
                ),
            )
        )
        host = _random_case(draw, name) + draw(st.sampled_from(["", "."]))
    else:
        address = draw(
            st.one_of(
                st.sampled_from([a for a in METADATA_ADDRESSES if a.version == int(kind[-1])]),
                st.ip_addresses(v=int(kind[-1])),
            )
        )
        if kind == "ipv4":
            host = draw(st.sampled_from(_ipv4_forms(address)))
        else:
            host = f"[{draw(st.sampled_from([address.compressed, address.exploded]))}]"
    if draw(st.integers(0, 3)) == 0:  # a port breaks a rule of its own
        host += draw(st.sampled_from([":80", ":443", ":9000"]))
    return host, (draw(encodings(host)) if draw(st.integers(0, 3)) == 0 else host)


@st.composite
def internal_addresses(draw) -> str:
    """A prefix whose bucket, container account or file host is an internal address."""
    host, sent = draw(internal_hosts())
    path = draw(SAFE_PATH)
    scheme = draw(st.sampled_from(["s3", "gs", "abfs", "file"]))
    if scheme == "abfs":
        return f"abfs://container@{sent}/{path}"
    if scheme == "file":
        # file:// may name localhost (this machine, which is what file:// means), but no
        # other host: an IP or a metadata name there is refused too.
        return f"file://{sent if host.lower() != 'localhost' else '169.254.169.254'}/tmp/{path}"
    return f"{scheme}://{sent}/{path}"


# Each family with the rules of which at least one must be broken.
FAMILIES = {
    "traversal": (traversals(), {"traversal", "encoding"}),
    "backslash": (backslashes(), {"backslash"}),
    "control_character": (control_characters(), {"control_character", "whitespace"}),
    "userinfo": (user_infos(), {"userinfo"}),
    "scheme": (disallowed_schemes(), {"scheme_not_allowed", "scheme_missing"}),
    "internal_address": (internal_addresses(), {"ip_host", "internal_host", "file_host"}),
}


def refused_prefixes() -> st.SearchStrategy[tuple[str, str]]:
    """(family, value) for a prefix that must be refused, from every family above."""
    return st.one_of(
        *(
            strategy.map(lambda value, name=name: (name, value))
            for name, (strategy, _) in FAMILIES.items()
        )
    )
