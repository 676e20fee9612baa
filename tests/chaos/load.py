"""The chaos load driver: concurrent buyers posting orders to a served gate, every answer recorded.

Each buyer is one (user, Idempotency-Key) asking for one unit. A buyer that gets 503, 429 or no
answer at all retries with the same key (as a real client should: the gate's answer to a retry
of an admitted order is the stored 202), until it gets a final answer or the load is stopped.
`timeout_s` bounds every attempt: an attempt the gate did not answer in time is recorded as
`status=None`, so a test can assert that the gate never hung.

The client is a minimal HTTP/1.1 keep-alive client on asyncio streams (as in bench/gate_load.py):
httpx took 34 s for the 1,000-connection race that this client sends in about 1 s, and on a
2-core box every cycle the load generator burns is taken from the gate.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

from tests.support.poll import until

RETRIED = frozenset({429, 503, None})


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP attempt: status (None = transport error or timeout), body fields, seconds taken."""

    buyer: int
    status: int | None
    order_id: str | None
    state: str | None  # 202: "accepted" (in Kafka) or "queued" (in the outbox)
    code: str | None  # problem code of an error answer
    latency_s: float
    error: str | None = None


@dataclass
class Load:
    """Buyers `0..buyers-1` (or `only` these) of `sku` at `base_url`, `concurrency` at a time, at most `rate_per_s`."""

    base_url: str
    sku: str
    buyers: int
    concurrency: int = 32
    rate_per_s: float = 0.0  # 0 = as fast as the gate answers
    timeout_s: float = 10.0
    retry: bool = True
    retry_pause_s: float = 0.05
    user_prefix: str = "u"
    only: Sequence[int] = ()  # these buyer numbers instead of 0..buyers-1 (e.g. to retry some)
    attempts: list[Attempt] = field(default_factory=list)
    final: dict[int, Attempt] = field(default_factory=dict)
    _next: int = 0
    _stopped: bool = False
    _abandon: bool = False
    _task: asyncio.Task[None] | None = None

    # --- running -------------------------------------------------------------------------------

    def start(self) -> None:
        """Run in the background of the current event loop; `await finish()` or `stop()` later."""
        self._task = asyncio.create_task(self.run())

    async def flowing(self, accepted: int = 100, *, what: str = "orders flowing before the fault") -> None:
        """`start()`, then return once `accepted` orders were admitted (the load keeps running)."""
        self.start()
        await until(lambda: self.accepted >= accepted, what=what)

    async def run(self) -> None:
        started = time.monotonic()
        await asyncio.gather(*(self._buyer_loop(_Connection(self.base_url), started) for _ in range(self.concurrency)))

    async def stop(self, *, abandon: bool = False) -> None:
        """No new buyers; buyers under way retry to a final answer (unless `abandon`). Waits for them."""
        self._stopped = True
        self._abandon = abandon
        await self.finish()

    async def finish(self, timeout_s: float = 120) -> None:
        """Wait until every buyer has a final answer (or the load was stopped)."""
        assert self._task is not None, "start() first"
        await asyncio.wait_for(self._task, timeout_s)

    async def _buyer_loop(self, conn: _Connection, started: float) -> None:
        try:
            while not self._stopped and self._next < (len(self.only) or self.buyers):
                turn = self._next
                self._next += 1
                if self.rate_per_s:
                    await asyncio.sleep(max(0.0, started + turn / self.rate_per_s - time.monotonic()))
                await self._buy(conn, self.only[turn] if self.only else turn)
        finally:
            conn.close()

    async def _buy(self, conn: _Connection, buyer: int) -> None:
        while True:
            attempt = await self._post(conn, buyer)
            self.attempts.append(attempt)
            self.final[buyer] = attempt
            if attempt.status not in RETRIED or not self.retry or self._abandon:
                return
            await asyncio.sleep(self.retry_pause_s)

    async def _post(self, conn: _Connection, buyer: int) -> Attempt:
        headers = {"X-User-Id": self.user(buyer), "Idempotency-Key": f"k{buyer}"}
        body = orjson.dumps({"sku": self.sku, "qty": 1})
        began = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                status, raw = await conn.post("/v1/orders", headers, body)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
            conn.close()
            return Attempt(buyer, None, None, None, None, time.monotonic() - began, f"{type(e).__name__}: {e}")
        took = time.monotonic() - began
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = {}
        return Attempt(buyer, status, answer.get("order_id"), answer.get("status"), answer.get("code"), took)

    # --- what happened -------------------------------------------------------------------------

    def user(self, buyer: int) -> str:
        """The X-User-Id buyer number `buyer` sends."""
        return f"{self.user_prefix}{buyer}"

    @property
    def sent(self) -> int:
        """HTTP attempts made (retries included)."""
        return len(self.attempts)

    def accepted_ids(self) -> set[str]:
        """Order ids of every 202 any attempt saw (a replayed 202 repeats its order id)."""
        return {a.order_id for a in self.attempts if a.status == 202 and a.order_id}

    @property
    def accepted(self) -> int:
        return len(self.accepted_ids())

    def statuses_since(self, mark: int) -> Counter[tuple[int | None, str | None]]:
        """(status, problem code or error) of the attempts made after the first `mark`."""
        return Counter((a.status, a.code or (a.error or "")[:60] or None) for a in self.attempts[mark:])

    def statuses(self) -> Counter[int | None]:
        """Status of every attempt (None = no answer)."""
        return Counter(a.status for a in self.attempts)

    def final_statuses(self) -> Counter[int | None]:
        """Status of each buyer's last attempt."""
        return Counter(a.status for a in self.final.values())

    def codes(self) -> Counter[str | None]:
        return Counter(a.code for a in self.attempts if a.status != 202)

    def unanswered(self) -> list[Attempt]:
        """Attempts that got no HTTP answer within `timeout_s` (a hang, or the gate was gone)."""
        return [a for a in self.attempts if a.status is None]


class _Connection:
    """One keep-alive HTTP/1.1 connection to the gate, (re)opened on demand."""

    def __init__(self, base_url: str) -> None:
        url = urlsplit(base_url)
        assert url.hostname is not None
        assert url.port is not None
        self.host, self.port = url.hostname, url.port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """Send one request and read its answer: (status, body). Raises OSError & co. on a broken connection."""
        fresh = self._streams is None
        try:
            return await self._exchange(path, headers, body)
        except (OSError, asyncio.IncompleteReadError):
            if fresh:
                raise
        # A kept-alive connection the server had closed: say it again on a new one (the
        # Idempotency-Key makes a repeat harmless even if the first copy did arrive).
        self.close()
        return await self._exchange(path, headers, body)

    async def _exchange(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head = f"POST {path} HTTP/1.1\r\nHost: gate\r\nContent-Type: application/json\r\n{lines}"
        writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        answer = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(answer[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in answer[1:] if line)}
        raw = await reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, raw

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None
