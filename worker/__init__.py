"""The worker: persists admitted orders from Kafka to PostgreSQL, exactly once in effect."""
