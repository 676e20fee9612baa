"""The HTTP gate: admission in one Redis Lua call, Kafka handoff, the relay, HTTP mapping."""
