"""HTTP to the Seed cluster: instance discovery through ``loadbalance``, failover, retries with backoff."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import httpx

from collaboration.client.errors import SeedAPIError, SeedUnavailable

logger = logging.getLogger("collaboration.client")

LOADBALANCE_PATH = "/api/v1/multi-instance/instances/loadbalance"
INSTANCES_PATH = "/api/v1/multi-instance/instances"
# Errors after which the request may not have reached a live server: switch instance and retry.
CONNECTION_ERRORS = (httpx.TransportError,)
# How long a dead instance stays excluded from loadbalance picks (it is marked unhealthy by then).
DEAD_FOR_SECONDS = 60.0


def _strip(url: str) -> str:
    return url.rstrip("/")


class Backoff:
    """Exponential backoff with jitter: ``base * 2**attempt`` capped at ``cap``, times a random 0.5..1."""

    def __init__(self, *, base: float = 0.2, cap: float = 5.0, attempts: int = 6) -> None:
        self.base = base
        self.cap = cap
        self.attempts = attempts

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before retry number ``attempt + 1`` (a server's Retry-After wins when longer)."""
        delay = min(self.cap, self.base * (2**attempt)) * random.uniform(0.5, 1.0)
        return max(delay, min(retry_after or 0.0, self.cap))


class SeedTransport:
    """One agent's way to the cluster: a current Seed URL, known peers, and retrying JSON requests.

    ``seed_urls`` are entry points. With ``discover=True`` the transport asks an entry point's
    ``loadbalance`` for an instance and talks to that one; when it stops answering, it asks again
    (``?exclude=<dead ids>``) on any URL it knows, learning peers from the registry as it goes.
    """

    def __init__(
        self,
        seed_urls: Iterable[str],
        *,
        discover: bool = True,
        backoff: Backoff | None = None,
        timeout: float = 10.0,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.seed_urls = [_strip(u) for u in seed_urls]
        if not self.seed_urls:
            raise ValueError("give at least one Seed URL, e.g. http://localhost:8000")
        self.discover = discover
        self.backoff = backoff or Backoff()
        self.timeout = timeout
        self.current_url: str | None = None
        self.peers: dict[str, str | None] = {u: None for u in self.seed_urls}  # url -> instance id when known
        self._dead: dict[str, float] = {}  # url -> when it failed
        self._lock = asyncio.Lock()
        self._client = httpx.AsyncClient(timeout=timeout, transport=http_transport)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()

    # --- choosing a server -------------------------------------------------------------------------

    def _alive(self, url: str) -> bool:
        failed = self._dead.get(url)
        return failed is None or time.monotonic() - failed > DEAD_FOR_SECONDS

    def mark_dead(self, url: str) -> None:
        """Forget ``url`` as the current server and keep it out of picks for a while."""
        self._dead[url] = time.monotonic()
        if self.current_url == url:
            self.current_url = None

    async def base_url(self) -> str:
        """The Seed URL to talk to, discovering one when there is none (raises SeedUnavailable)."""
        if self.current_url is not None:
            return self.current_url
        async with self._lock:
            if self.current_url is None:
                self.current_url = await self._choose()
                logger.info("using Seed server %s", self.current_url)
        return self.current_url

    def _entry_points(self) -> list[str]:
        known = list(dict.fromkeys([*self.seed_urls, *self.peers]))
        alive = [u for u in known if self._alive(u)]
        return alive or known  # everything failed recently: try them all again rather than give up

    async def _choose(self) -> str:
        entry_points = self._entry_points()
        if not self.discover:
            return entry_points[0]
        excluded = [self.peers[u] for u in self._dead if self.peers.get(u) and not self._alive(u)]
        for url in entry_points:
            try:
                return await self._loadbalance(url, excluded)
            except CONNECTION_ERRORS:
                self._dead[url] = time.monotonic()
            except SeedAPIError as exc:
                # A live server whose registry has nothing for us: it can serve us itself.
                logger.warning("loadbalance on %s failed (%s); using it directly", url, exc)
                return url
        raise SeedUnavailable(f"No Seed server reachable (tried {', '.join(entry_points)}).")

    async def _loadbalance(self, url: str, exclude: list[str]) -> str:
        query = f"?exclude={quote(','.join(exclude))}" if exclude else ""
        response = await self._client.get(f"{url}{LOADBALANCE_PATH}{query}")
        body = _body(response)
        if response.status_code == 503 and exclude:
            # Everything else is unhealthy too: the excluded ones may be back; ask without exclusions.
            return await self._loadbalance(url, [])
        _raise_for(response, body)
        picked = _strip(body["url"])
        self.peers[picked] = str(body["instance"]["id"])
        self._dead.pop(picked, None)
        return picked

    async def refresh_peers(self) -> None:
        """Learn every active instance from the registry, so a failover has somewhere to go."""
        url = await self.base_url()
        try:
            response = await self._client.get(f"{url}{INSTANCES_PATH}?status=active&limit=100")
            body = _body(response)
            _raise_for(response, body)
        except (*CONNECTION_ERRORS, SeedAPIError) as exc:
            logger.debug("peer refresh on %s failed: %s", url, exc)
            return
        for instance in body.get("instances", []):
            if instance.get("url"):
                self.peers[_strip(instance["url"])] = str(instance.get("id"))

    # --- requests ----------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        token: str | None = None,
        timeout: float | None = None,
        retry: bool = True,
    ) -> dict[str, Any]:
        """Send a JSON request to the current server; returns the success body or raises SeedAPIError.

        Retried with backoff (when ``retry``): connection errors (after switching server), 5xx and
        429 ``queue_full``. Every SDK write is idempotent (client message ids, re-registration, acks),
        so a retry after a lost answer does no harm.
        """
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        attempts = self.backoff.attempts if retry else 1
        last: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self.backoff.delay(attempt - 1, _retry_after(last)))
            try:
                url = await self.base_url()
            except SeedUnavailable as exc:
                last = exc
                continue
            try:
                response = await self._client.request(
                    method, f"{url}{path}", json=json, headers=headers, timeout=timeout or self.timeout
                )
            except CONNECTION_ERRORS as exc:
                logger.warning("%s %s on %s failed: %r; switching server", method, path, url, exc)
                self.mark_dead(url)
                last = SeedUnavailable(f"{url}: {exc!r}")
                continue
            body = _body(response)
            try:
                _raise_for(response, body)
            except SeedAPIError as exc:
                if exc.status >= 500 or exc.code == "queue_full":
                    exc.retry_after = response.headers.get("Retry-After")  # type: ignore[attr-defined]
                    last = exc
                    continue
                raise
            return body
        assert last is not None
        raise last


def _retry_after(error: Exception | None) -> float | None:
    try:
        return float(getattr(error, "retry_after", None) or 0) or None
    except ValueError:
        return None


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _raise_for(response: httpx.Response, body: dict[str, Any]) -> None:
    if response.is_success and body.get("success", True) is not False:
        return
    raise SeedAPIError(
        response.status_code,
        str(body.get("code") or ("server_error" if response.status_code >= 500 else "error")),
        str(body.get("error") or response.reason_phrase or "request failed"),
        body.get("details") if isinstance(body.get("details"), dict) else {},
    )
