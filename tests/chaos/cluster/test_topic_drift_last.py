"""Last in this folder (pytest runs its files in name order): the cluster stack's `up` refuses topic drift it
must not fix. It leaves `orders` with more partitions than the spec, which a gate and a worker already running
would only see after their next metadata refresh (5 minutes), so no scenario may run after it.
"""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, NewPartitions  # type: ignore[attr-defined]

from flashgate import names
from ops.stack.errors import ServiceFailed
from tests.chaos.cluster.kraft import launcher
from tests.support.stackctl import StackHandle

pytestmark = pytest.mark.chaos


def test_stack_up_refuses_topic_drift_it_must_not_fix(stack: StackHandle) -> None:
    """`up` on a stack whose `orders` has more partitions than the spec fails in one line."""
    # log_level 0: the traceback pytest keeps holds this client past the stack's end, when its
    # brokers are gone and it would report every refused reconnect.
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap, "log_level": 0})
    admin.create_partitions([NewPartitions(names.ORDERS_TOPIC, 8)])[names.ORDERS_TOPIC].result(timeout=30)
    with pytest.raises(ServiceFailed) as refused:
        launcher(stack).up()
    assert str(refused.value).startswith("kafka topics: orders: 8 partitions, the spec says 6; Kafka cannot remove")
