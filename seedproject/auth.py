"""Who is calling: bearer tokens, staff sessions, and local anonymous mode, for HTTP and WebSockets.

A caller is one ``Principal``:
- ``employee`` — an AI employee's token (``emp_…``), issued at registration; it may act for that employee only;
- ``instance`` — a Seed instance's token (``ins_…``), issued at registration; heartbeats and updates itself;
- ``enrollment`` — the cluster's ``SEED_ENROLLMENT_TOKEN``: may register employees and instances;
- ``staff`` — a Django staff account (session): operators may do anything;
- ``local`` — no credentials, from a loopback address, with ``SEED_ALLOW_LOCAL_ANONYMOUS`` on (the
  embedded default's `make run`, so the seed's examples work unchanged).
"""

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from seedproject.counters import throttle_tally
from seedproject.security import is_loopback, parse_bearer, token_hash, token_matches

# Prefixes tell an operator what a leaked token opens; they are not secrets.
EMPLOYEE_TOKEN_PREFIX = "emp"  # noqa: S105
INSTANCE_TOKEN_PREFIX = "ins"  # noqa: S105


@dataclass(frozen=True)
class Principal:
    """An authenticated caller (see the module docstring for the kinds)."""

    kind: str
    employee_id: str | None = None
    instance_id: str | None = None
    key: str = ""  # what throttling counts per

    @property
    def is_operator(self) -> bool:
        return self.kind in {"staff", "local"}

    def acts_for_employee(self, employee_id: str) -> bool:
        return self.is_operator or (self.kind == "employee" and self.employee_id == employee_id)

    def acts_for_instance(self, instance_id: Any) -> bool:
        return self.is_operator or (self.kind == "instance" and self.instance_id == str(instance_id))


STAFF = "staff"
LOCAL = Principal("local")


def principal_from_token(token: str) -> Principal | None:
    """The principal a bearer token stands for, or None when it is unknown or revoked."""
    if token_matches(token, settings.SEED_ENROLLMENT_TOKEN):
        return Principal("enrollment", key="enrollment")
    prefix = token.partition("_")[0]
    digest = token_hash(token)
    if prefix == EMPLOYEE_TOKEN_PREFIX:
        from collaboration.selectors import employee_id_for_token

        employee_id = employee_id_for_token(token_hash=digest)
        return Principal("employee", employee_id=employee_id, key=digest) if employee_id else None
    if prefix == INSTANCE_TOKEN_PREFIX:
        from instances.selectors import instance_id_for_token

        instance_id = instance_id_for_token(token_hash=digest)
        return Principal("instance", instance_id=str(instance_id), key=digest) if instance_id else None
    return None


def principal_for(*, token: str | None, user: Any, client_address: str | None) -> Principal | None:
    """Resolve a caller from what it presented. A bad token never falls back to anonymous access."""
    if token is not None:
        return principal_from_token(token)
    if user is not None and getattr(user, "is_authenticated", False) and getattr(user, "is_staff", False):
        return Principal(STAFF, key=f"user:{user.pk}")
    if settings.SEED_ALLOW_LOCAL_ANONYMOUS and is_loopback(client_address):
        return LOCAL
    return None


class SeedTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <token>`` -> ``request.auth`` is the Principal; a bad token is a 401."""

    def authenticate(self, request: Request) -> tuple[AnonymousUser, Principal] | None:
        header = request.META.get("HTTP_AUTHORIZATION")
        if not header:
            return None
        token = parse_bearer(header)
        if token is None:  # credentials of another kind never fall back to anonymous access
            raise AuthenticationFailed("Use Authorization: Bearer <token>.")
        principal = principal_from_token(token)
        if principal is None:
            raise AuthenticationFailed("Unknown or revoked token.")
        return AnonymousUser(), principal

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="seed"'


def request_principal(request: Request) -> Principal | None:
    """The principal of a DRF request (after authentication ran)."""
    if isinstance(request.auth, Principal):
        return request.auth
    return principal_for(token=None, user=request.user, client_address=request.META.get("REMOTE_ADDR"))


def scope_principal(scope: dict[str, Any]) -> Principal | bool | None:
    """The principal of a WebSocket scope: ``?token=`` or ``Authorization`` header, session, loopback.

    Returns False when a token was presented but is invalid (the socket is refused, never downgraded).
    """
    token = None
    for name, value in scope.get("headers") or []:
        if name == b"authorization":
            token = parse_bearer(value.decode("latin-1"))
    query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
    if query.get("token"):
        token = query["token"][0]
    client = scope.get("client")
    principal = principal_for(token=token, user=scope.get("user"), client_address=client[0] if client else None)
    if token is not None and principal is None:
        return False
    return principal


class PrincipalRateThrottle(BaseThrottle):
    """A courtesy limit per token / staff account / address (SEED_THROTTLE_RATE); not a security boundary.

    A fixed window counted in the shared counter (every server sees it through Redis), in batches while
    far below the limit (``WindowTally``): DRF's sliding-window throttle stores every request's
    timestamp, which at thousands of requests a minute makes each request read and write a list of
    thousands of floats.
    """

    def __init__(self) -> None:
        self.retry_after: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        rate = settings.SEED_THROTTLE_RATE
        if not rate:
            return True
        allowed, period = SimpleRateThrottle.parse_rate(None, rate)
        now = time.time()
        principal = request_principal(request)
        ident = principal.key if principal and principal.key else self.get_ident(request)
        key = f"throttle:{ident}:{int(now // period)}"
        if throttle_tally.hit(key, limit=allowed, timeout=period + 1) <= allowed:
            return True
        self.retry_after = period - (now % period)
        return False

    def wait(self) -> float | None:
        return self.retry_after


CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


async def socket_authorized(consumer: Any, allows: Any) -> bool:
    """Authorize a WebSocket before it joins any group; refused sockets are closed with 4401 / 4403.

    ``allows`` is a predicate over the Principal. The socket is accepted first so that browsers see the
    close code rather than a failed handshake.
    """
    from channels.db import database_sync_to_async

    principal = await database_sync_to_async(scope_principal)(consumer.scope)
    if principal and allows(principal):
        consumer.scope["principal"] = principal
        return True
    await consumer.accept()
    await consumer.close(code=CLOSE_FORBIDDEN if principal else CLOSE_NOT_AUTHENTICATED)
    return False
