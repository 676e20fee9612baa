"""Schemathesis hooks for tests/e2e/test_gate_openapi.py (loaded through SCHEMATHESIS_HOOKS).

- `problem_json`: every answer carries X-Request-Id; every 4xx/5xx is an RFC 9457 problem whose
  `status` is the HTTP status, whose `type` ends in `#<code>` and whose `instance` is the request id.
- Generated orders are steered onto the test's sales (FLASHGATE_ST_SKUS), a few buyers and a few
  Idempotency-Keys, so that the run reaches 202, every 409, 422 and 429, not only 404 unknown_sku.
  Only values that are already valid are replaced, by other valid values: a negative case stays
  negative. The choice is a CRC of the generated value, so a seed still replays the same run.
  Buyers: the run sends `Authorization: Bearer <first token>` (st -H); that exact header becomes
  one of the tokens of FLASHGATE_ST_TOKENS. Any other Authorization (schemathesis trying a missing
  or forged one, expecting 401) is left as it is.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from typing import Any

import schemathesis

SKUS = [s for s in os.environ.get("FLASHGATE_ST_SKUS", "").split(",") if s]
TOKENS = [t for t in os.environ.get("FLASHGATE_ST_TOKENS", "").split(",") if t]
KEYS = [f"k{i}" for i in range(6)]
_SKU = re.compile(r"\A[A-Za-z0-9._-]{1,64}\Z")
_PRINTABLE = re.compile(r"\A[\x21-\x7e]{1,128}\Z")


def _pick(value: str, choices: list[str], out_of: int) -> str:
    """One of `choices` for most values (all but 1 in `out_of`), else the value itself."""
    n = zlib.crc32(value.encode("utf-8", "surrogatepass"))
    return value if n % out_of == 0 or not choices else choices[n % len(choices)]


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("sku"), str) and _SKU.match(body["sku"]):
        return {**body, "sku": _pick(body["sku"], SKUS, 5)}
    return body


@schemathesis.hook
def map_headers(context: Any, headers: Any) -> Any:
    if not isinstance(headers, dict):
        return headers
    headers = dict(headers)
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and _PRINTABLE.match(key):
        headers["Idempotency-Key"] = _pick(key, KEYS, 6)
        if TOKENS and headers.get("Authorization") == f"Bearer {TOKENS[0]}":
            headers["Authorization"] = f"Bearer {TOKENS[zlib.crc32(key.encode()) % len(TOKENS)]}"
    return headers


@schemathesis.check
def problem_json(ctx: Any, response: Any, case: Any) -> bool | None:
    rid = response.headers.get("x-request-id")
    assert rid, "no X-Request-Id header"
    rid = rid[0] if isinstance(rid, list) else rid
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type")
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    assert content_type == "application/problem+json", f"{response.status_code} answered as {content_type}"
    doc = json.loads(response.content)
    assert isinstance(doc, dict), doc
    assert doc.get("status") == response.status_code, doc
    assert isinstance(doc.get("title"), str), doc
    assert isinstance(doc.get("code"), str), doc
    assert str(doc.get("type", "")).endswith("#" + doc["code"]), doc
    assert doc.get("instance") == rid, (doc, rid)
    return None
