"""The active health probe: one HTTP GET, kept apart from the pure rules in health.py."""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

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


def probe(url: str, *, timeout: float, client: httpx.Client | None = None) -> ProbeResult:
    """GET ``url`` once: 2xx passes; redirects are reported, never followed; the body is not read."""
    own_client = client is None
    # trust_env=False: a proxy from the environment must not stand between us and the instance.
    client = client or httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)
    try:
        with client.stream("GET", url) as response:
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


def probe_many(urls: Sequence[str], *, timeout: float, max_workers: int = 16) -> list[ProbeResult]:
    """Probe every url concurrently (one short timeout each); results are in the order of ``urls``."""
    if not urls:
        return []
    limits = httpx.Limits(max_connections=max_workers, max_keepalive_connections=0)
    with (
        httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, limits=limits) as client,
        ThreadPoolExecutor(max_workers=min(max_workers, len(urls)), thread_name_prefix="probe") as pool,
    ):
        return list(pool.map(lambda url: probe(url, timeout=timeout, client=client), urls))
