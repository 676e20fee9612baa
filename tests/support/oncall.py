"""Run the on-call commands (`flashgate sale …`, `flashgate reconcile …`) against the test stack."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from typing import Any

import httpx

from tests.support.pipeline import Topics
from tests.support.stackctl import FLASHGATE, StackHandle


def oncall(
    stack: StackHandle,
    *args: str,
    topics: Topics | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`flashgate <args>` with the stack's URLs (and the test's topic and writer group)."""
    full = {**os.environ, **stack.env, **(env or {})}
    if topics is not None:
        full |= {"FLASHGATE_TOPIC": topics.orders, "FLASHGATE_GROUP": topics.group}
    return subprocess.run(
        [FLASHGATE, *args], input=stdin, capture_output=True, text=True, timeout=120, env=full, check=False
    )


async def reconcile_json(stack: StackHandle, topics: Topics, *args: str) -> tuple[int, dict[str, Any]]:
    """`flashgate reconcile <args> --json` in a thread (the test's loop keeps serving its gate)."""
    done = await asyncio.to_thread(oncall, stack, "reconcile", *args, "--json", topics=topics)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


async def verify(stack: StackHandle, topics: Topics, sku: str, accepted: list[str]) -> subprocess.CompletedProcess[str]:
    """`flashgate reconcile verify --sku S --accepted -` with the given order ids on stdin."""
    args = ("reconcile", "verify", "--sku", sku, "--accepted", "-")
    return await asyncio.to_thread(oncall, stack, *args, topics=topics, stdin="\n".join(accepted))


async def buy(client: httpx.AsyncClient, sku: str, user: str, key: str, headers: Any) -> httpx.Response:
    return await client.post("/v1/orders", json={"sku": sku, "qty": 1}, headers=headers(user, key))
