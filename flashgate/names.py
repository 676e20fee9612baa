"""Every Kafka topic, consumer group and Redis key name in one place."""

ORDERS_TOPIC = "orders"
DLQ_TOPIC = "orders.dlq"
WRITERS_GROUP = "flashgate-writers"
