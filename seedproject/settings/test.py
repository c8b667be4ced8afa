"""Test settings: the base settings, made fast and deterministic."""

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# A probe in a test must never leave the machine; tests that probe use a loopback server.
SEED_PROBE_TIMEOUT = 1.0
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
