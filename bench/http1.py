"""The load generators' wire: one POST /v1/orders on a keep-alive HTTP/1.1 connection (asyncio streams).

A minimal client on purpose: a request is one preformatted write and an answer is a status line,
headers and a Content-Length body, so a Python generator costs ~30 µs of CPU per request
(docs/benchmarks.md, Running them) where a general client costs several times that. The gate answers with
Content-Length; chunked bodies are not read.
"""

from __future__ import annotations

import asyncio

_LENGTH = b"content-length:"


def order_request(sku: str, user: str, key: str, qty: int = 1) -> bytes:
    """POST /v1/orders of `qty` units for buyer `user` (X-User-Id: auth off) under Idempotency-Key `key`."""
    body = b'{"sku":"%s","qty":%d}' % (sku.encode(), qty)
    return (
        b"POST /v1/orders HTTP/1.1\r\nHost: gate\r\nContent-Type: application/json\r\n"
        b"X-User-Id: %s\r\nIdempotency-Key: %s\r\nContent-Length: %d\r\n\r\n%s"
    ) % (user.encode(), key.encode(), len(body), body)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(status, body) of the next answer; asyncio.IncompleteReadError if the server closed first."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == _LENGTH:
            length = int(line[15:])
    return int(head[9:12]), await reader.readexactly(length)
