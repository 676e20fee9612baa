"""The served gate's connection limits (issue 13): idle and slowloris sockets never lock buyers out.

Real `flashgate gate` processes on the test stack, raw sockets against them. What the server
answers by itself, before the app sees a request (431, 400), is pinned here too: granian has no
hook to make those answers problem+json (docs/http-api.md, "Connection limits").
"""

from __future__ import annotations

import asyncio
import resource
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import psutil
import pytest

from tests.support.gatekit import create_topic, redis_client
from tests.support.poll import until
from tests.support.procs import GateProcess
from tests.support.sales import Sale, put_sale
from tests.support.stackctl import StackHandle

IDLE, SLOWLORIS = 3000, 50
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def allow_open_files(needed: int) -> None:
    """Raise this test process's soft RLIMIT_NOFILE to `needed` (the gates it spawns inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} open files, the hard limit is {hard} (ulimit -Hn)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def port_of(gate: GateProcess) -> int:
    return int(urlsplit(gate.base_url).port or 0)


def server_pids(gate: GateProcess) -> set[int]:
    """The gate's process and its server processes."""
    main = psutil.Process(gate.proc.pid)
    return {main.pid, *(p.pid for p in main.children(recursive=True))}


def held(gate: GateProcess) -> int:
    """Connections the gate's processes have accepted and still hold (not those in the listen queue)."""
    port, count = port_of(gate), 0
    for pid in server_pids(gate):
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        count += sum(1 for c in conns if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)
    return count


async def open_silent(port: int, n: int) -> list[Conn]:
    """`n` connections that send nothing, opened 500 at a time."""
    conns: list[Conn] = []
    while len(conns) < n:
        batch = min(500, n - len(conns))
        conns += await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(batch)))
    return conns


async def slowloris(port: int, interval_s: float, stop: asyncio.Event) -> float:
    """Send an order's head a byte at a time until `stop`; return when the server closed it (or 0.0)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    head = b"POST /v1/orders HTTP/1.1\r\nHost: gate\r\nX-User-Id: slow\r\nX-Pad: " + b"a" * 10_000
    try:
        for i in range(len(head)):
            writer.write(head[i : i + 1])
            try:
                await asyncio.wait_for(reader.read(1), interval_s)  # b"": closed by the server
                return time.monotonic() - started
            except TimeoutError:
                if stop.is_set():
                    return 0.0
        return 0.0
    except ConnectionError:
        return time.monotonic() - started
    finally:
        writer.close()


async def closed_after(conn: Conn, limit_s: float) -> tuple[float, bytes]:
    """Seconds until the server closes `conn`, and what it sent before closing."""
    started = time.monotonic()
    data = await asyncio.wait_for(conn[0].read(), limit_s)
    return time.monotonic() - started, data


async def exchange(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send raw bytes; read the server's answer until it closes: status line, headers, body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    return status, headers, body


async def test_idle_and_slowloris_connections_leave_buyers_served(
    stack: StackHandle, name: str, tmp_path: Path
) -> None:
    """3,000 silent and 50 slowloris sockets held by the gate; a buyer's order is answered within 1 s.

    The header-read timeout is 30 s here, so every attacking socket is surely still held when the
    buyer orders: this proves the connection limit (the default `max_connections`, two processes);
    the next test proves the timeout. Then the attackers leave and the same processes serve on.
    """
    allow_open_files(IDLE + SLOWLORIS + 512)
    create_topic(stack, name)
    r = redis_client(stack)
    await put_sale(r, Sale(sku=name, units=10))
    gate = GateProcess.start(
        stack,
        tmp_path / "gate.log",
        workers=2,
        settings={"topic": name, "relay_discover_ms": 0, "header_read_timeout_ms": 30_000},
    )
    stop = asyncio.Event()
    idle: list[Conn] = []
    try:
        port, pids = port_of(gate), server_pids(gate)
        idle = await open_silent(port, IDLE)
        slow = [asyncio.create_task(slowloris(port, 0.05, stop)) for _ in range(SLOWLORIS)]

        async def all_held() -> bool:
            return await asyncio.to_thread(held, gate) >= IDLE + SLOWLORIS

        await until(all_held, timeout_s=30, what=f"the gate holds {IDLE + SLOWLORIS} connections")

        async with httpx.AsyncClient(base_url=gate.base_url) as client:
            body = {"sku": name, "qty": 1}
            started = time.monotonic()
            res = await client.post(
                "/v1/orders", json=body, headers={"X-User-Id": "buyer", "Idempotency-Key": "k"}, timeout=1.0
            )
            elapsed = time.monotonic() - started
            assert res.status_code == 202, res.text
            assert elapsed < 1.0
            assert not any(t.done() for t in slow), "the server closed a slowloris socket within 30 s"
            assert await asyncio.to_thread(held, gate) >= IDLE + SLOWLORIS

            stop.set()
            await asyncio.gather(*slow)
            for _, writer in idle:
                writer.close()

            async def released() -> bool:
                return await asyncio.to_thread(held, gate) < 10

            await until(released, timeout_s=30, what="the gate let the closed connections go")
            again = await client.post(
                "/v1/orders", json=body, headers={"X-User-Id": "buyer2", "Idempotency-Key": "k"}, timeout=5.0
            )
            assert again.status_code == 202, again.text
        assert gate.proc.poll() is None
        assert server_pids(gate) == pids, "a server process was replaced"
    finally:
        stop.set()
        for _, writer in idle:
            writer.close()
        gate.close()
        await r.aclose()


@pytest.fixture(scope="module")
def quick_gate(stack: StackHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateProcess]:
    """One gate process with 1 s header-read and body timeouts (and so a 1 s keep-alive idle timeout)."""
    topic = f"t{uuid.uuid4().hex[:12]}"
    create_topic(stack, topic)
    gate = GateProcess.start(
        stack,
        tmp_path_factory.mktemp("quick") / "gate.log",
        workers=1,
        settings={"topic": topic, "relay_discover_ms": 0, "header_read_timeout_ms": 1000, "body_timeout_ms": 1000},
    )
    try:
        yield gate
    finally:
        gate.close()


@pytest.fixture
async def keepalive_conn(quick_gate: GateProcess) -> AsyncIterator[Conn]:
    """A connection that has had one answer and is kept alive, waiting for its next request."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(quick_gate))
    writer.write(b"GET /health/live HTTP/1.1\r\nHost: gate\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = next(int(ln.split(b":")[1]) for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length"))
    await reader.readexactly(length)
    yield reader, writer
    writer.close()


async def test_header_read_timeout_closes_silent_slow_and_idle_connections(
    quick_gate: GateProcess, keepalive_conn: Conn
) -> None:
    """Each is closed ~1 s after it last had a complete exchange, without an answer (no 408)."""
    port = port_of(quick_gate)
    silent = await asyncio.open_connection("127.0.0.1", port)
    silent_s, slow_s, idle_s = await asyncio.gather(
        closed_after(silent, 10),
        slowloris(port, 0.1, asyncio.Event()),  # a byte every 100 ms: the deadline is for the whole head
        closed_after(keepalive_conn, 10),
    )
    silent[1].close()
    for what, (seconds, sent) in {"silent": silent_s, "kept alive": idle_s}.items():
        assert 0.8 <= seconds <= 3.0, f"{what}: closed after {seconds:.2f} s"
        assert sent == b"", f"{what}: the server answered {sent!r}"
    assert 0.8 <= slow_s <= 3.0, f"slowloris: closed after {slow_s:.2f} s"


async def test_an_order_body_that_never_completes_is_answered_408_and_frees_its_slot(quick_gate: GateProcess) -> None:
    """The head arrives, the body never does: 408 body_timeout after ~1 s, not an admission slot held for good."""
    head = (
        b"POST /v1/orders HTTP/1.1\r\nHost: g\r\nX-User-Id: slow\r\nIdempotency-Key: k\r\n"
        b'Content-Type: application/json\r\nContent-Length: 23\r\n\r\n{"sku"'
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(quick_gate))
    started = time.monotonic()
    try:
        writer.write(head)
        answer = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1")
        took = time.monotonic() - started
        length = next(int(ln.split(":")[1]) for ln in answer.split("\r\n") if ln.lower().startswith("content-length"))
        body = await reader.readexactly(length)
    finally:
        writer.close()
    assert answer.startswith("HTTP/1.1 408 Request Timeout"), answer
    assert "content-type: application/problem+json" in answer.lower()
    assert orjson.loads(body)["code"] == "body_timeout"
    assert 0.8 <= took <= 3.0, took
    async with httpx.AsyncClient(base_url=quick_gate.base_url) as client:
        metrics = (await client.get("/metrics")).text
    assert 'flashgate_gate_requests_total{outcome="body_timeout",status="408"}' in metrics


async def test_server_answers_before_the_app_are_bare(quick_gate: GateProcess) -> None:
    """Today's answers of granian (hyper) itself: status only, empty body, connection closed."""
    port = port_of(quick_gate)
    fields = [f"X-H{i}: v\r\n".encode() for i in range(99)]

    status, _, body = await exchange(port, b"GET /health/live HTTP/1.1\r\nHost: g\r\n" + b"".join(fields) + b"\r\n")
    assert status == "HTTP/1.1 200 OK", "100 header fields reach the app"
    assert body.startswith(b"{")

    too_many = b"GET /health/live HTTP/1.1\r\nHost: g\r\nX-H99: v\r\n" + b"".join(fields) + b"\r\n"
    too_long = b"GET /health/live HTTP/1.1\r\nHost: g\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    for request, expected in [
        (too_many, "HTTP/1.1 431 Request Header Fields Too Large"),  # 101 header fields
        (too_long, "HTTP/1.1 431 Request Header Fields Too Large"),  # over FLASHGATE_GATE_HEAD_LIMIT_BYTES
        (b"HELLO\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"GET / HTTP/2.0\r\nHost: g\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    ]:
        status, headers, body = await exchange(port, request)
        assert (status, body) == (expected, b"")
        assert (headers.get("content-length"), headers.get("connection")) == ("0", "close")
        assert "content-type" not in headers
