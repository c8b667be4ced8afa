"""REST routes under /api/v1/ (filled in by the app)."""

urlpatterns: list = []
