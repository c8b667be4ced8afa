"""Celery beat schedules whose interval is read live, so operators can change it without a restart."""

from datetime import timedelta

from celery import schedules
from django.utils.module_loading import import_string


class LiveInterval(schedules.schedule):
    """Run every N seconds, where N comes from a function (e.g. the cluster's heartbeat_interval).

    Beat asks ``is_due`` on every tick, so a new interval applies from the next run on.
    """

    def __init__(self, seconds_from: str, **kwargs) -> None:
        self.seconds_from = seconds_from
        super().__init__(run_every=timedelta(seconds=1), **kwargs)

    @property
    def run_every(self) -> timedelta:  # type: ignore[override]
        try:
            seconds = float(import_string(self.seconds_from)())
        except Exception:  # noqa: BLE001 - a broken lookup must not stop beat; fall back to 10 s
            seconds = 10.0
        return timedelta(seconds=max(seconds, 0.5))

    @run_every.setter
    def run_every(self, value: timedelta) -> None:  # the base class assigns it in __init__
        pass

    def __reduce__(self):
        return (self.__class__, (self.seconds_from,), {})

    def __repr__(self) -> str:
        return f"<LiveInterval {self.seconds_from}>"
