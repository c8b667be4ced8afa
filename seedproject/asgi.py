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

import contextvars  # noqa: E402
import threading  # noqa: E402

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from seedproject import twisted_http  # noqa: E402, F401 - JSON answers to requests daphne cannot parse
from seedproject.routing import websocket_urlpatterns  # noqa: E402


class BrowserOriginValidator(OriginValidator):
    """Checks the Origin of browser sockets against ALLOWED_HOSTS; lets clients that send none through.

    Origin checking stops other web pages from opening sockets with a visitor's cookies. Browsers
    always send Origin, so a socket without one is a program (an agent, a monitor script): refusing it
    protects nobody, and it still has to pass authorization like any other client.
    """

    def valid_origin(self, parsed_origin) -> bool:
        return parsed_origin is None or self.validate_origin(parsed_origin)


_thread_state = threading.local()


def wsgi_in_thread_context(environ, start_response):
    """Run the WSGI app in one context per pool thread, kept from request to request (as under gunicorn).

    a2wsgi runs every request in a fresh copy of the event loop's context, and Django keeps its cache
    objects in a context-local: each request built a new RedisCache, hence a new connection pool and a
    Redis TCP connect + handshake per request - a third of a loadbalance pick (see bench/README.md).
    """
    context = getattr(_thread_state, "context", None)
    if context is None:
        context = _thread_state.context = contextvars.Context()
    return context.run(wsgi_application, environ, start_response)


application = ProtocolTypeRouter(
    {
        "http": WSGIMiddleware(wsgi_in_thread_context, workers=settings.SEED_HTTP_THREADS),
        # Sessions let staff open the dashboard's sockets; tokens and loopback are checked by each consumer.
        "websocket": BrowserOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), settings.ALLOWED_HOSTS
        ),
    }
)
