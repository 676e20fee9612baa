"""Load generators and benchmarks: they print figures, they are not tests."""
