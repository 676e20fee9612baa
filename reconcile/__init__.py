"""The reconciler: what Redis must hold, from PostgreSQL + the Kafka backlog + the outbox; drift and repair."""
