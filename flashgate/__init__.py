"""Shared by gate and worker: the event contract and the names of keys, topics and scripts."""
