"""All WebSocket routes, gathered from the apps that own them."""

from collaboration.routing import websocket_urlpatterns as collaboration_ws
from instances.routing import websocket_urlpatterns as instances_ws

websocket_urlpatterns = [*instances_ws, *collaboration_ws]
