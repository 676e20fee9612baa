"""The Kafka topic spec and `flashgate topics ensure`."""
