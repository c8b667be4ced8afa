from django.db import models


class Row(models.Model):
    """One inserted row: what the insert floor writes per request."""

    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"row {self.pk}"
