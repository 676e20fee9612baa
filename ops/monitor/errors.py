"""Errors of the monitor::

MonitorError
├── MonitorConfigError   a setting that cannot work (the message names the variable)
└── SourceUnavailable    Kafka or Redis did not answer a check (counted, retried next interval)
"""


class MonitorError(Exception):
    """Base of every monitor failure."""


class MonitorConfigError(MonitorError):
    """A setting that cannot work; the message names the variable."""


class SourceUnavailable(MonitorError):
    """A check could not read its source (Kafka or Redis); the next interval tries again."""
