"""Errors of the topic tools, each one line; the CLI maps them to exit codes::

TopicsError                      exit 2: nothing could be judged or changed
├── SpecError                    a spec that cannot work (min.insync.replicas above the replication factor)
├── KafkaUnavailable             Kafka did not answer, or refused a change
└── DriftRefused                 exit 1: a topic differs from its spec in a way flashgate will not fix
"""


class TopicsError(Exception):
    """Base of every topic-tool failure; `str()` is the one-line message."""


class SpecError(TopicsError):
    """The spec itself cannot work, or not on this cluster (more replicas than brokers)."""


class KafkaUnavailable(TopicsError):
    """Kafka did not answer in time, or refused a request."""


class DriftRefused(TopicsError):
    """Drift that needs a person: fewer partitions than exist, another replication factor."""
