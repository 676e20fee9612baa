"""A circuit breaker for Redis: pure state, time passed in, no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Breaker:
    """Opens after `failures_to_open` consecutive failures; after `cooldown_s` lets one probe through.

    closed → (N failures) → open → (cooldown elapsed, one caller allowed) → half-open
    half-open → success → closed;  half-open → failure → open (cooldown restarts)
    """

    failures_to_open: int
    cooldown_s: float
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def allow(self, now: float) -> bool:
        """May a call go to Redis now? In half-open state only the first caller may (the probe)."""
        if self.opened_at is None:
            return True
        if self.probing or now - self.opened_at < self.cooldown_s:
            return False
        self.probing = True
        return True

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def failure(self, now: float) -> None:
        self.failures += 1
        if self.probing or self.failures >= self.failures_to_open:
            self.opened_at = now
        self.probing = False
