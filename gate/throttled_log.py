"""One log line per kind of failure per interval: an outage's cause stays in the log, its rate does not."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any


class ThrottledLog:
    """Log a kind of failure at most once per `every_s`, saying how many were left out since.

    During an outage every round trip fails; one line per kind per interval keeps the cause in
    the log without the log becoming the load.
    """

    def __init__(self, logger: logging.Logger, every_s: float, clock: Callable[[], float]) -> None:
        self._logger = logger
        self._every_s = every_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def warning(self, kind: str, msg: str, *args: Any) -> None:
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._every_s:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return
        self._last[kind] = now
        skipped = self._skipped.pop(kind, 0)
        if skipped:
            msg += f" ({skipped} more like it in the last {self._every_s:.0f} s)"
        self._logger.warning(msg, *args)
