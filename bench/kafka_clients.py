"""The bench's own Kafka clients take the pipeline's security settings (FLASHGATE_KAFKA_*), as every process does.

The gate and worker the bench starts read them themselves; this is for the clients the bench
makes: `bench ab`'s group watcher and `bench drain`'s topic admin and pre-fill producer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flashgate.kafka_client import KafkaSecurity, client_config


def kafka_config(
    bootstrap: str, role: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A client config for `bootstrap` with the environment's TLS/SASL settings, then `role`'s keys."""
    return client_config(bootstrap, KafkaSecurity.from_env(os.environ if env is None else env), role)
