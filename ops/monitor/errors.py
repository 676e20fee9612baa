"""Errors of the monitor::

MonitorError
└── SourceUnavailable    Kafka or Redis did not answer a check (counted, retried next interval)

A setting that cannot work (or a port it cannot listen on) is `flashgate.settings.ConfigError`.
"""


class MonitorError(Exception):
    """Base of every monitor failure."""


class SourceUnavailable(MonitorError):
    """A check could not read its source (Kafka or Redis); the next interval tries again."""
