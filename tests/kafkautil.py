"""Reading a topic from tests: up to `count` messages from the beginning, within a deadline."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Message


def consume(bootstrap: str, topic: str, count: int, *, timeout_s: float = 30) -> list[Message]:
    """The first `count` messages of `topic` (fewer if the deadline passes), via a fresh group."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([topic])
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                got.append(msg)
    finally:
        consumer.close()
    return got
