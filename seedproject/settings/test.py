"""Test settings: the base settings, made fast and deterministic."""

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# A probe in a test must never leave the machine; tests that probe use a loopback server.
SEED_PROBE_TIMEOUT = 1.0
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
# The API tests act as a loopback client in local anonymous mode on every database; the tests of
# authentication and authorization turn it off where they need to.
SEED_ALLOW_LOCAL_ANONYMOUS = True
SEED_ENROLLMENT_TOKEN = "test-enrollment-token"  # noqa: S105 - test-only secret
SEED_THROTTLE_RATE = ""
# Heartbeats send their least-connections figure before they answer (instances.load_reports is tested
# with its delay on where it is the subject).
SEED_LEAST_LOADED_REPORT_DELAY = 0
