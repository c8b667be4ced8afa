"""WSGI entry point (gunicorn or any WSGI server serves the REST API this way)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "seedproject.settings.base")

application = get_wsgi_application()
