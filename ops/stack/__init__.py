"""The local stack: Redis, PostgreSQL and Apache Kafka as real processes under one state folder."""
