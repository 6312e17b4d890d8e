"""The rules of a notify_url: its shape on POST, and the addresses it may reach at delivery."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
# Cloud metadata services beyond the link-local and private ranges that hold most of them.
_METADATA_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack
        "fd00:ec2::254/128",  # AWS over IPv6
        "100.100.100.200/32",  # Alibaba Cloud
        "168.63.129.16/32",  # Azure's host agent
        "100.64.0.0/10",  # carrier-grade NAT: never a public receiver
    )
)
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029]")

# Names that always mean this machine or a private network, refused without resolving.
_LOCAL_NAMES = ("localhost", "metadata", "metadata.google.internal")
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain")


def normalise_hosts(hosts: Iterable[str]) -> frozenset[str]:
    """WEBHOOK_ALLOWED_HOSTS as the lowercase host names (or addresses) it lists."""
    return frozenset(h.strip().lower().strip("[]") for h in hosts if h.strip())


def url_problems(value: object, allowed_hosts: frozenset[str]) -> list[tuple[str, str]]:
    """(rule, text) for each way `value` breaks the rules; [] for an acceptable notify_url."""
    if not isinstance(value, str):
        return [("type", "must be a string")]
    if not 1 <= len(value) <= MAX_URL_LENGTH:
        return [("length", f"must be 1 to {MAX_URL_LENGTH} characters long, not {len(value)}")]
    if _CONTROL_OR_SPACE.search(value):
        return [("control_character", "must not contain spaces or control characters")]
    try:
        parts = urlsplit(value)
        port = parts.port
        host = (parts.hostname or "").lower()
    except ValueError:
        return [("format", "must be an absolute http(s) URL with a valid host and port")]
    problems = []
    allowed = host in allowed_hosts
    if parts.scheme == "http" and not allowed:
        problems.append(
            ("scheme", "must use https (http only for a host in WEBHOOK_ALLOWED_HOSTS)")
        )
    elif parts.scheme not in ("https", "http"):
        problems.append(("scheme", "must be an https URL"))
    if not host:
        problems.append(("format", "must name a host"))
    if "@" in parts.netloc:
        problems.append(("user_info", "must not carry user-info (name:password@)"))
    if parts.fragment or value.endswith("#"):
        problems.append(("fragment", "must not have a #fragment"))
    if port == 0:
        problems.append(("format", "must not use port 0"))
    if host and not allowed and is_local_host(host):
        problems.append(
            (
                "private_address",
                "must not point at a loopback, private, link-local or metadata address"
                " (unless its host is in WEBHOOK_ALLOWED_HOSTS)",
            )
        )
    return problems


def is_local_host(host: str) -> bool:
    """True for an address in a refused range, or a name that always means a local one."""
    address = parse_address(host)
    if address is not None:
        return is_refused_address(address)
    name = host.rstrip(".").lower()
    return name in _LOCAL_NAMES or name.endswith(_LOCAL_SUFFIXES)


def parse_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a host literally is (brackets and zone ids dropped), or None."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_refused_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True when a receiver must not be reached at `address`: loopback, private, link-local,
    metadata, reserved, multicast or unspecified (IPv4 inside IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return is_refused_address(embedded)
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or any(address in network for network in _METADATA_NETWORKS)
    )
