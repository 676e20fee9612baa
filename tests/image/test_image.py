"""The container image against the test stack: migrate, sale, worker and gate from the image, one order.

Run by `make test-image` (FLASHGATE_TEST_IMAGE names the image `make image` built), not by
`make test`: docs/deploy.md (Building) gives the cost. Containers share the host's network, since the
test stack listens on loopback; runc and the explicit ulimits are what podman needs on this box.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ops.stack.ports import free_port
from tests.support.pipeline import create_topics, new_database, one_order_persisted
from tests.support.poll import eventually
from tests.support.stackctl import StackHandle

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PODMAN = ["podman", "--runtime", "runc"]
RUN = [*PODMAN, "run", "--network", "host", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]


@pytest.fixture(scope="module")
def image() -> str:
    return os.environ["FLASHGATE_TEST_IMAGE"]


def env_args(env: dict[str, str]) -> list[str]:
    return [arg for k, v in env.items() for arg in ("--env", f"{k}={v}")]


def once(image: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`flashgate <args>` in a throwaway container."""
    return subprocess.run(
        [*RUN, "--rm", *env_args(env), image, *args], capture_output=True, text=True, timeout=120, check=False
    )


class Container:
    """A detached container, removed (with a 5 s SIGTERM grace) by `close()`."""

    def __init__(self, image: str, env: dict[str, str], *args: str) -> None:
        self.name = f"flashgate-test-{uuid.uuid4().hex[:10]}"
        cmd = [*RUN, "--detach", "--name", self.name, *env_args(env), image, *args]
        subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)

    def running(self) -> bool:
        cmd = [*PODMAN, "inspect", "--format", "{{.State.Running}}", self.name]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        return done.stdout.strip() == "true"

    def logs(self) -> str:
        done = subprocess.run([*PODMAN, "logs", self.name], capture_output=True, text=True, timeout=30, check=False)
        return done.stdout + done.stderr

    def close(self) -> None:
        cmd = [*PODMAN, "rm", "--force", "--time", "5", self.name]
        subprocess.run(cmd, capture_output=True, timeout=60, check=False)


@pytest.fixture
def containers() -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for c in started:
        c.close()


def test_runs_as_a_non_root_user(image: str) -> None:
    done = subprocess.run([*RUN, "--rm", "--entrypoint", "id", image, "-u"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "10001"


def test_gate_and_worker_from_the_image_persist_an_order(
    image: str, stack: StackHandle, name: str, containers: list[Container]
) -> None:
    began = time.monotonic()
    with new_database(stack, name) as database:
        urls = {**stack.env, "DATABASE_URL": database}
        migrated = once(image, urls, "migrate")
        assert (migrated.returncode, migrated.stdout.startswith("applied ")) == (0, True), migrated.stderr
        assert "applied 0" not in migrated.stdout
        created = once(image, urls, "sale", "create", "--sku", name, "--name", "Shoe", "--stock", "3")
        assert created.returncode == 0, created.stderr

        topics = create_topics(stack, name, partitions=1)
        worker_env = {
            **urls, "FLASHGATE_TOPIC": topics.orders, "FLASHGATE_WORKER_DLQ_TOPIC": topics.dlq,
            "FLASHGATE_GROUP": topics.group,
        }  # fmt: skip
        worker = Container(image, worker_env, "worker")
        containers.append(worker)
        port = free_port()
        # Relay off: another test's leftover outbox entries must not be republished to this test's topic.
        gate_env = {
            **urls,
            "FLASHGATE_GATE_AUTH": "off",
            "FLASHGATE_TOPIC": topics.orders,
            "FLASHGATE_GATE_RELAY": "off",
        }
        gate = Container(image, gate_env, "gate", "--port", str(port), "--workers", "1")
        containers.append(gate)
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert gate.running(), gate.logs()[-2000:]
            try:
                return httpx.get(f"{base}/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(ready, timeout_s=60, interval_s=0.2)
        one_order_persisted(base, database, name, worker.logs)
        for c in containers:
            c.close()
    print(f"image round trip in {time.monotonic() - began:.1f} s")
