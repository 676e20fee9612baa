"""FLASHGATE_OTLP_ENDPOINT: refused in one line when it cannot work, before any process starts."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import pytest

from flashgate import otel
from flashgate.settings import ConfigError
from gate.settings import GateSettings
from worker.settings import WorkerSettings

ENV = {
    "REDIS_URL": "redis://x",
    "KAFKA_BOOTSTRAP": "k:1",
    "FLASHGATE_GATE_AUTH": "off",
    "DATABASE_URL": "postgresql://x",
}


LOADERS: list[Callable[[dict[str, str]], GateSettings | WorkerSettings]] = [
    lambda env: GateSettings.from_env(env),
    lambda env: WorkerSettings.from_env(env=env),
]


@pytest.mark.parametrize("load", LOADERS, ids=["gate", "worker"])
def test_an_endpoint_that_is_not_http_is_refused_naming_the_variable(
    load: Callable[[dict[str, str]], GateSettings | WorkerSettings],
) -> None:
    with pytest.raises(ConfigError, match="FLASHGATE_OTLP_ENDPOINT must be an http:// or https:// URL"):
        load({**ENV, "FLASHGATE_OTLP_ENDPOINT": "collector:4317"})
    assert load(ENV).otlp_endpoint == ""  # unset: export off
    assert load({**ENV, "FLASHGATE_OTLP_ENDPOINT": "http://c:4318"}).otlp_endpoint == "http://c:4318"


def test_an_endpoint_without_the_otel_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install 'flashgate\[otel\]'"):
        otel.check_endpoint("http://collector:4318")
    otel.check_endpoint("")  # off: nothing to install
