"""ASGI entry point: WebSockets through Channels, plain HTTP through Django's WSGI handler.

Django's own ASGI handler costs about 3 ms per request on these machines against 0.12 ms for WSGI
(ARCHITECTURE.md, "Serving HTTP"): every sync middleware and request signal hops between the event
loop and a fresh thread. So HTTP requests are handed to the WSGI application on a thread pool
(a2wsgi) and only WebSockets go through Channels - one port, both protocols.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "seedproject.settings.base")

from django.core.wsgi import get_wsgi_application

wsgi_application = get_wsgi_application()  # sets Django up before consumers are imported

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from seedproject.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": WSGIMiddleware(wsgi_application, workers=settings.SEED_HTTP_THREADS),
        "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)
