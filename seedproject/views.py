"""Service routes that belong to the server, not to an app: ``/health``."""

import os
import time
from functools import lru_cache

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@lru_cache(maxsize=1)
def _redis_client():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


def _check_database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported in the body
        return {"ok": False, "vendor": connection.vendor, "error": str(exc).strip()[:300]}
    return {"ok": True, "vendor": connection.vendor, "ms": round((time.perf_counter() - started) * 1000, 2)}


def _check_redis(kind: str) -> dict:
    try:
        _redis_client().ping()
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "backend": kind, "error": str(exc)[:300]}
    return {"ok": True, "backend": kind}


def _check_channel_layer() -> dict:
    if settings.REDIS_URL:
        return _check_redis("redis")
    return {"ok": True, "backend": "in-memory"}


def _check_broker() -> dict:
    if settings.REDIS_URL:
        return _check_redis("redis")
    writable = os.access(settings.BROKER_DIR, os.W_OK)
    return {"ok": writable, "backend": "filesystem", "path": str(settings.BROKER_DIR)}


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Liveness + readiness: 200 when the database answers, 503 when it does not."""
    checks = {"database": _check_database(), "channel_layer": _check_channel_layer(), "broker": _check_broker()}
    healthy = checks["database"]["ok"]
    body = {"success": healthy, "status": "ok" if all(c["ok"] for c in checks.values()) else "degraded", **checks}
    if not healthy:
        body.update(status="unavailable", error="The database is unreachable.", code="unavailable")
    return JsonResponse(body, status=200 if healthy else 503)
