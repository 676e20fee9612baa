"""The worker's errors::

    WorkerError
    ├── RetryableError     transient (database or Kafka unavailable): retry, never commit past it
    └── DeliveryFailed     the DLQ did not confirm a message in time (retryable)

Bad settings are `flashgate.settings.ConfigError`, as in every process: the worker exits with its message.
Poison messages are not exceptions here: `flashgate.events.EventDecodeError` marks them during
batch planning and they are routed to the DLQ.
"""


class WorkerError(Exception):
    """Base of the worker's own failures."""


class RetryableError(WorkerError):
    """A transient failure: the batch is retried with backoff and its offsets are not committed."""


class DeliveryFailed(RetryableError):
    """The dead-letter topic did not acknowledge a message."""
