"""The floor: a minimal Django + DRF project served by gunicorn sync workers (one per core)."""
