"""The soak run: a steady open-loop order rate for a long time, sampling memory, keyspace and outbox.

What it measures (`flashgate bench soak`, docs/benchmarks.md "Soak run"): against a gate and worker that
are already running, it opens its own sale (stock for the whole run), sends `rate_per_s` orders a
second of distinct buyers with fresh idempotency keys for `duration_s`, and every `sample_every_s`
records the RSS of every gate process (the server parent and its workers) and every worker, Redis
dbsize and used_memory, the SKU's outbox (XLEN, polled every second), units admitted against
rows in PostgreSQL, and the answers by status so far. Then it drains and checks the invariants as
`bench flash-sale` does, and judges the run (bench/soak_figures.py says what passes and why).

The load is open-loop: request i is due at start + i / rate whatever the answers do; it waits
for one of `connections` keep-alive connections (FIFO, so none idles into a server timeout),
and its latency counts from its due time. Only the generator's own event loop can make a
request late; the largest such delay is reported.

Run the gate with a short idempotency TTL, or the stored answers only grow for 24 h, and give
the soak the same TTL (the probe checks it):

    export FLASHGATE_IDEM_TTL_S=300
    FLASHGATE_GATE_AUTH=off flashgate gate --workers 2 --port 8000 &
    flashgate worker &
    flashgate bench soak --rate 200 --duration 1800 --sample-every 60
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import quantiles
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import psutil
import uvloop

from bench import procstat
from bench.flash_sale import ROWS, BenchError, create_sale, verify, wait_drained
from bench.http1 import order_request, read_answer
from bench.served import box_snapshot, run_header
from bench.soak_figures import Limits, checks_as_dicts, judge, passed, summarize
from flashgate import names, orderindex
from flashgate.redis_url import AnyRedis, connect, redis_now_ms

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(frozen=True)
class SoakSettings:
    """One soak run's knobs; the limits of the verdict are in `limits`."""

    gate_url: str
    redis_url: str
    database_url: str
    kafka_bootstrap: str | None = None  # finds the workers (procstat.worker_pids)
    rate_per_s: float = 200.0
    duration_s: int = 1800
    sample_every_s: int = 60
    connections: int = 32
    answer_timeout_s: float = 10.0
    drain_timeout_s: float = 300.0
    worker_pids: tuple[int, ...] = ()
    limits: Limits = field(default_factory=Limits)
    out_dir: Path = Path("bench/results")

    @property
    def orders(self) -> int:
        return int(self.rate_per_s * self.duration_s)

    @property
    def stock(self) -> int:
        """Enough that the sale never sells out: every order planned, the probe, and a margin."""
        return self.orders + self.orders // 10 + 1000


class Tally:
    """What the generator saw: answers by label (cumulative), latencies of the current interval, lateness."""

    def __init__(self) -> None:
        self.answers: Counter[str] = Counter()
        self.latencies_s: list[float] = []
        self.sent = 0
        self.late_max_s = 0.0

    def answer(self, status: int, body: bytes, latency_s: float) -> None:
        if status == 202:
            label = "202 queued" if b'"status":"queued"' in body else "202 accepted"
        else:
            try:
                label = f"{status} {json.loads(body).get('code', '')}".strip()
            except (ValueError, AttributeError):
                label = str(status)
        self.answers[label] += 1
        self.latencies_s.append(latency_s)

    def interval_latency_ms(self) -> dict[str, float | None]:
        """p50/p99/max of the answers since the last call (then forgets them)."""
        lat, self.latencies_s = self.latencies_s, []
        if len(lat) < 2:
            return {"p50": None, "p99": None, "max": max(lat) * 1e3 if lat else None}
        q = quantiles(lat, n=100)
        return {"p50": q[49] * 1e3, "p99": q[98] * 1e3, "max": max(lat) * 1e3}


class OpenLoop:
    """Sends order i of distinct buyer `s<i>` with key `k<i>` at start + i / rate, over a FIFO pool of connections."""

    def __init__(self, s: SoakSettings, sku: str, tally: Tally) -> None:
        url = urlsplit(s.gate_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 80
        self._s, self._sku, self._tally = s, sku, tally
        self._pool: asyncio.Queue[Conn | None] = asyncio.Queue()
        for _ in range(s.connections):
            self._pool.put_nowait(None)  # connected on first use

    async def run(self) -> None:
        # perf_counter, not loop.time(): uvloop's clock moves in whole milliseconds.
        start, rate = time.perf_counter(), self._s.rate_per_s
        inflight: set[asyncio.Task[tuple[int, bytes] | None]] = set()
        for i in range(self._s.orders):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self._tally.late_max_s = max(self._tally.late_max_s, -delay)
            task = asyncio.create_task(self.one(f"s{i}", f"k{i}", due))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            self._tally.sent += 1
        await asyncio.gather(*inflight)
        self.close()

    def close(self) -> None:
        """Close the pool's connections (call when no order is in flight)."""
        while not self._pool.empty():
            conn = self._pool.get_nowait()
            if conn is not None:
                conn[1].close()

    async def one(self, user: str, key: str, due: float) -> tuple[int, bytes] | None:
        """One order; its answer (also tallied), or None after a transport error (tallied by exception name)."""
        conn = await self._pool.get()
        try:
            if conn is None:
                conn = await asyncio.open_connection(self._host, self._port)
            conn[1].write(order_request(self._sku, user, key))
            async with asyncio.timeout(self._s.answer_timeout_s):
                status, body = await read_answer(conn[0])
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            self._tally.answers[f"transport {type(e).__name__}"] += 1
            if conn is not None:
                conn[1].close()
            conn = None
            return None
        finally:
            self._pool.put_nowait(conn)
        self._tally.answer(status, body, time.perf_counter() - due)
        return status, body


def find_processes(gate_port: int, kafka_bootstrap: str | None, worker_pids: tuple[int, ...]) -> dict[int, str]:
    """pid → role: "gate" (the server parent), "gate worker" (its children), "worker" (and its children)."""
    stats = procstat.read_stats()
    roots = procstat.port_roots(gate_port)
    roles = {pid: "gate worker" for pid in procstat.descendants(roots, stats)}
    roles.update({pid: "gate" for pid in roots if pid in stats})
    workers = list(worker_pids) or procstat.worker_pids(kafka_bootstrap)
    roles.update({pid: "worker" for pid in procstat.descendants(workers, stats)})
    return roles


def rss(roles: dict[int, str]) -> dict[str, dict[str, Any]]:
    out = {}
    for pid, role in roles.items():
        try:
            out[str(pid)] = {"role": role, "rss": psutil.Process(pid).memory_info().rss}
        except psutil.Error:
            continue  # exited between finding and reading
    return out


class Sampler:
    """Polls the outbox every second and takes a full sample (module docstring) when asked."""

    def __init__(self, s: SoakSettings, sku: str, index_key: str, r: AnyRedis, pg: asyncpg.Connection) -> None:
        self._s, self._sku, self._index_key, self._r, self._pg = s, sku, index_key, r, pg
        self._port = urlsplit(s.gate_url).port or 80
        self.outbox_max = 0

    async def poll_outbox(self) -> int:
        n = int(await self._r.xlen(names.outbox_key(self._sku)))
        self.outbox_max = max(self.outbox_max, n)
        return n

    def _procs(self) -> dict[str, dict[str, Any]]:
        return rss(find_processes(self._port, self._s.kafka_bootstrap, self._s.worker_pids))

    async def sample(self, t_s: float, tally: Tally) -> dict[str, Any]:
        # /proc and the socket table take a while on a busy box: off the loop, so no order is sent late.
        procs = await asyncio.to_thread(self._procs)
        info = await self._r.info("memory")
        keyspace = (await self._r.info("keyspace")).get("db0", {})
        left = int(await self._r.get(names.stock_key(self._sku)) or 0)
        outbox_now = await self.poll_outbox()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        sample = {
            "t_s": round(t_s, 3),
            "procs": procs,
            "redis": {
                "dbsize": int(await self._r.dbsize()),
                "expires": int(keyspace.get("expires", 0)),
                "used_memory": int(info["used_memory"]),
                "used_memory_rss": int(info["used_memory_rss"]),
                "bought_bytes": int(await self._r.memory_usage(names.bought_key(self._sku)) or 0),
                "index_bytes": int(await self._r.memory_usage(self._index_key) or 0),
            },
            "outbox": {"now": outbox_now, "max": self.outbox_max},
            "admitted": self._s.stock - left,
            "rows": int(await self._pg.fetchval(ROWS, self._sku)),
            "sent": tally.sent,
            "answers": dict(tally.answers),
            "latency_ms": tally.interval_latency_ms(),
            "generator": {"cpu_s": usage.ru_utime + usage.ru_stime, "late_max_ms": tally.late_max_s * 1e3},
            "loadavg_1m": os.getloadavg()[0],  # the box is shared: a stall of everything shows here
        }
        self.outbox_max = outbox_now
        return sample


async def probe(s: SoakSettings, sku: str, r: AnyRedis) -> tuple[int, str]:
    """One order before the load: the gate's idempotency TTL (s) and the probe's order id.

    The TTL is FLASHGATE_IDEM_TTL_S as this process sees it, checked against Redis: the probe's
    answer must sit in the answer hash admit.lua writes for that TTL (`names.idem_bucket`).
    """
    loop = OpenLoop(s, sku, Tally())
    answer = await loop.one("probe", "probe", time.perf_counter())
    loop.close()
    if answer is None or answer[0] != 202:
        raise BenchError(f"the probe order was not accepted: {answer}")
    ttl_s = int(os.environ.get("FLASHGATE_IDEM_TTL_S", "86400"))
    now_ms = await redis_now_ms(r)
    field = names.idem_field("probe", "probe")
    buckets = (names.idem_bucket(sku, ttl_s, now_ms), names.idem_bucket(sku, ttl_s, now_ms - ttl_s * 1000))
    if not any([await r.hexists(bucket, field) for bucket in buckets]):
        raise BenchError(f"the probe's answer is not where FLASHGATE_IDEM_TTL_S={ttl_s} puts it: "
                         "give the soak the gate's idempotency TTL")  # fmt: skip
    order_id: str = json.loads(answer[1])["order_id"]
    return ttl_s, order_id


async def drive(s: SoakSettings, sku: str) -> dict[str, Any]:
    """Probe, then load and sample until the end, then drain; returns what the result needs."""
    r = connect(s.redis_url)
    pg = await asyncpg.connect(s.database_url)
    try:
        ttl_s, order_id = await probe(s, sku, r)
        sampler = Sampler(s, sku, orderindex.index_key(uuid.UUID(order_id)), r, pg)
        tally = Tally()
        samples = [await sampler.sample(0.0, tally)]
        loop = asyncio.get_running_loop()
        start = loop.time()
        load = asyncio.create_task(OpenLoop(s, sku, tally).run())
        next_sample = s.sample_every_s
        while not load.done():
            await asyncio.wait({load}, timeout=1.0)
            await sampler.poll_outbox()
            if loop.time() - start >= next_sample or (load.done() and samples[-1]["t_s"] < s.duration_s):
                samples.append(await sampler.sample(loop.time() - start, tally))
                print(_progress(samples[-1]), flush=True)
                next_sample += s.sample_every_s
        await load
        left = int(await r.get(names.stock_key(sku)) or 0)
    finally:
        await pg.close()
        await r.aclose()
    return {"idem_ttl_s": ttl_s, "samples": samples, "admitted": s.stock - left}


def _progress(sample: dict[str, Any]) -> str:
    rss_mib = sum(p["rss"] for p in sample["procs"].values()) / (1 << 20)
    return (f"t {sample['t_s']:6.0f} s  sent {sample['sent']:,}  answers {sample['answers']}  RSS {rss_mib:.0f} MiB "
            f"dbsize {sample['redis']['dbsize']:,}  outbox max {sample['outbox']['max']}  "
            f"rows {sample['rows']:,}/{sample['admitted']:,}  load {sample['loadavg_1m']:.1f}")  # fmt: skip


def _drained(s: SoakSettings, sku: str, admitted: int) -> dict[str, Any]:
    try:
        persistence = asyncio.run(wait_drained(s.redis_url, s.database_url, sku, admitted, s.drain_timeout_s))
    except BenchError as e:
        return {"ok": False, "detail": str(e), "verify": None}
    v = verify(sku)
    detail = f"{persistence['rows']:,} rows for {admitted:,} admitted, outbox 0; reconcile verify " + (
        "ok" if v["ok"] else f"FAILED (exit {v['exit']}) {v['stderr']}"
    )
    return {"ok": v["ok"], "detail": detail, "persistence": persistence, "verify": v}


def soak(s: SoakSettings) -> dict[str, Any]:
    """Run everything; the result is also written as bench/results/soak-<timestamp>.json beside its PNG."""
    sku = f"soak-{uuid.uuid4().hex[:10]}"
    s.out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = run_header(sku, asdict(s) | {"stock": s.stock})
    create_sale(sku, s.stock)
    result |= uvloop.run(drive(s, sku))  # as the gate runs: uvloop costs the generator ~20 % less CPU
    result["drained"] = _drained(s, sku, result["admitted"])
    result["summary"] = summarize(result["samples"], rate_per_s=s.rate_per_s, idem_ttl_s=result["idem_ttl_s"],
                                  duration_s=s.duration_s, limits=s.limits)  # fmt: skip
    checks = judge(result["summary"], result["drained"], rate_per_s=s.rate_per_s, limits=s.limits)
    result["checks"], result["passed"] = checks_as_dicts(checks), passed(checks)
    result["box_after"] = box_snapshot()
    stem = s.out_dir / f"soak-{time.strftime('%Y%m%d-%H%M%S')}"
    result["files"] = {"json": str(stem.with_suffix(".json")), "png": str(stem.with_suffix(".png"))}
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str))
    from bench.chart import draw_soak  # matplotlib is slow to import; only needed here

    draw_soak(result, stem.with_suffix(".png"))
    return result
