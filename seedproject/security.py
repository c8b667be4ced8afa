"""Security rules that every app shares: tokens, loopback, the probe network allow-list. Pure Python."""

import hashlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Iterable

TOKEN_BYTES = 32

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def token_issue(kind: str) -> str:
    """A new bearer token, e.g. ``emp_…`` or ``ins_…``: the prefix tells an operator what it opens."""
    return f"{kind}_{secrets.token_urlsafe(TOKEN_BYTES)}"


def token_hash(token: str) -> str:
    """What is stored: SHA-256 of the token (tokens are long and random, so no salt or stretching)."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, expected: str) -> bool:
    """Constant-time comparison for a configured secret such as the enrollment token."""
    return bool(expected) and hmac.compare_digest(token.encode(), expected.encode())


def parse_bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8 and ::1 (and IPv4-mapped loopback)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def parse_networks(values: Iterable[str]) -> list[IPNetwork]:
    """CIDR strings -> networks; raises ValueError naming the bad entry."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not a network: {value!r}") from exc
    return networks


def address_allowed(address: str, networks: Iterable[IPNetwork]) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def resolve_allowed(host: str, port: int, networks: Iterable[IPNetwork]) -> tuple[list[str], list[str]]:
    """Resolve ``host`` and split its addresses into (allowed, refused) under the allow-list.

    The rule is checked before any connection is made; the caller then connects to an allowed
    address only (never re-resolving), so DNS cannot swap in another address in between.
    """
    networks = list(networks)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    allowed = [a for a in addresses if address_allowed(a, networks)]
    refused = [a for a in addresses if a not in allowed]
    return allowed, refused
