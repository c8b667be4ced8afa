"""WebSocket routes (filled in by the app)."""

websocket_urlpatterns: list = []
