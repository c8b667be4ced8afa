"""The active health probe: one HTTP GET, kept apart from the pure rules in health.py.

Probes only reach SEED_PROBE_ALLOWED_NETWORKS (SSRF): the host is resolved first, the rule is checked
on every address before any connection, and the GET goes to an allowed address itself (with the
original Host header), so DNS cannot swap in another address between the check and the connection.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from django.conf import settings

from seedproject.security import parse_networks, resolve_allowed

_ERRNO_PREFIX = re.compile(r"^\[Errno -?\d+\]\s*")


@dataclass(frozen=True)
class ProbeResult:
    """What a probe found: ``ok`` only for a 2xx answer; ``cause`` says why not (e.g. "Connection refused")."""

    ok: bool
    cause: str = ""
    status_code: int | None = None


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "Timed out"
    text = _ERRNO_PREFIX.sub("", str(exc).strip())
    if isinstance(exc, httpx.ConnectError) and not text:
        text = "Connection failed"
    return text[:300] or type(exc).__name__


class AddressNotAllowed(ValueError):
    """The host resolves to no address inside SEED_PROBE_ALLOWED_NETWORKS."""


def allowed_address(host: str, port: int) -> str:
    """The first address of ``host`` that the probe network rule allows; raises AddressNotAllowed."""
    try:
        allowed, refused = resolve_allowed(host, port, parse_networks(settings.SEED_PROBE_ALLOWED_NETWORKS))
    except OSError as exc:
        raise AddressNotAllowed(f"cannot resolve {host!r}: {_describe(exc)}") from exc
    if not allowed:
        shown = ", ".join(refused) or host
        raise AddressNotAllowed(
            f"{shown} is outside the networks health probes may reach (SEED_PROBE_ALLOWED_NETWORKS)"
        )
    return allowed[0]


def target_url(host: str, port: int, path: str) -> tuple[str, dict[str, str]]:
    """The URL to GET (an allowed address, never a name) and the Host header naming the instance."""
    address = allowed_address(host, port)
    shown = f"[{address}]" if ":" in address else address
    host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"http://{shown}:{port}{path}", {"Host": host_header}


def probe_address(
    host: str, port: int, path: str, *, timeout: float, client: httpx.Client | None = None
) -> ProbeResult:
    """Probe ``http://host:port{path}`` under the network rule (checked before connecting)."""
    try:
        url, headers = target_url(host, port, path)
    except AddressNotAllowed as exc:
        return ProbeResult(ok=False, cause=str(exc))
    return probe(url, timeout=timeout, client=client, headers=headers)


def probe(
    url: str, *, timeout: float, client: httpx.Client | None = None, headers: dict[str, str] | None = None
) -> ProbeResult:
    """GET ``url`` once: 2xx passes; redirects are reported, never followed; the body is not read."""
    own_client = client is None
    # trust_env=False: a proxy from the environment must not stand between us and the instance.
    client = client or httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)
    try:
        with client.stream("GET", url, headers=headers) as response:
            code = response.status_code
            if 200 <= code < 300:
                return ProbeResult(ok=True, status_code=code)
            if response.is_redirect:
                location = response.headers.get("location", "")
                return ProbeResult(False, f"HTTP {code} redirect to {location!r} (redirects are not followed)", code)
            return ProbeResult(ok=False, cause=f"HTTP {code}", status_code=code)
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        return ProbeResult(ok=False, cause=_describe(exc))
    finally:
        if own_client:
            client.close()


def probe_many(targets: Sequence[tuple[str, int, str]], *, timeout: float, max_workers: int = 16) -> list[ProbeResult]:
    """Probe every (host, port, path) concurrently (one short timeout each), in the order given."""
    if not targets:
        return []
    limits = httpx.Limits(max_connections=max_workers, max_keepalive_connections=0)
    with (
        httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, limits=limits) as client,
        ThreadPoolExecutor(max_workers=min(max_workers, len(targets)), thread_name_prefix="probe") as pool,
    ):
        return list(pool.map(lambda t: probe_address(*t, timeout=timeout, client=client), targets))
