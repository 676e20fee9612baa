# The two commands that matter: `make run` and `make test`. Everything sets itself up.
.PHONY: bootstrap run test chaos chaos-cluster check down status image test-image
.DEFAULT_GOAL := help

help:
	@echo "make run    - set up everything and run the pipeline locally"
	@echo "make test   - set up everything and run the whole test suite on an isolated stack"
	@echo "make chaos  - only the failure suite (tests/chaos), on its own stack"
	@echo "make chaos-cluster - only the cluster scenarios (tests/chaos/cluster): 3 Kafka brokers and a Redis Cluster"
	@echo "make check  - ruff and mypy --strict"
	@echo "make down   - stop the local stack started by make run"
	@echo "make image  - build the container image with podman (FLASHGATE_IMAGE, default localhost/flashgate:dev)"
	@echo "make test-image - build the image, then run its gate and worker against an isolated stack"

bootstrap:
	@scripts/bootstrap

run: bootstrap
	@scripts/run

test: bootstrap
	@scripts/test

chaos: bootstrap
	@scripts/test tests/chaos

chaos-cluster: bootstrap
	@scripts/test tests/chaos/cluster

check: bootstrap
	@scripts/check

image: bootstrap
	@scripts/image

test-image: image
	@FLASHGATE_TEST_IMAGE="$${FLASHGATE_IMAGE:-localhost/flashgate:dev}" scripts/test tests/image

down: bootstrap
	@.venv/bin/flashgate stack down

status: bootstrap
	@.venv/bin/flashgate stack status
