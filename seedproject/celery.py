"""The Celery application: one worker per Seed server, one beat per cluster (see runbeat)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "seedproject.settings.base")

app = Celery("seedproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
