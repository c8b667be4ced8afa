"""WSGI entry point: ``runseed`` serves the REST API through it with gunicorn (any WSGI server can).

Under ``runseed`` gunicorn also hands WebSocket upgrades over to daphne (``SEED_WS_HANDOFF``, see
``seedproject.handoff``); without that variable this is Django's plain WSGI application.
"""

import os

from django.core.wsgi import get_wsgi_application

from seedproject.handoff import WebSocketHandoff

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "seedproject.settings.base")

application = WebSocketHandoff.wrap_from_environment(get_wsgi_application())
