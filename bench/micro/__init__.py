"""pytest-benchmark micro-benchmarks (run explicitly, never by `make test`)."""
