"""Open-loop load at a constant arrival rate (vegeta), with corrected percentiles and thresholds that fail the run.

What it measures (`flashgate bench open-loop`, docs/benchmarks.md): buyers arrive at `rate` per
second whatever the gate does, as in a flash sale, for `duration_s`. Each one is one
`POST /v1/orders` with its own buyer (X-User-Id, so the gate runs with auth off) and
Idempotency-Key, written lazily to vegeta's `attack` (vegeta v12, pinned and built by
`make bootstrap` into .tools/bin; it sends on schedule and opens more connections when answers
are slow, up to `max_workers`). Every result comes back through `vegeta encode --to csv`.

Coordinated omission: a request vegeta could only send late (every worker busy) would hide the
wait before it. Each result's latency is therefore taken from when it was *due*, `start +
seq / rate`, not from when it left: corrected = latency + (sent − due) when sent late. The
percentiles reported are the corrected ones (the uncorrected p99 is shown beside them).

Live: one line per second of the run with answers that second, 202s that second, and the p99
so far. Per-second figures count whole seconds only: the last, partial second is left out of
every rate. Thresholds (`max_p99_ms`, `min_accepted_per_s`) make `run_open_loop`'s verdict list
what was missed; the CLI exits 1 when it is not empty.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
VEGETA_ENV = "FLASHGATE_VEGETA"


class OpenLoopError(RuntimeError):
    """The run could not measure (no vegeta, vegeta failed, no answers)."""


@dataclass(frozen=True)
class OpenLoopSettings:
    gate_url: str
    sku: str
    rate: int  # arrivals per second
    duration_s: int
    users: int = 100_000
    max_workers: int = 4096  # vegeta's cap on concurrent requests (connections)
    timeout_s: int = 30
    max_p99_ms: float | None = None
    min_accepted_per_s: float | None = None


@dataclass(frozen=True)
class Hit:
    seq: int
    sent_ns: int
    latency_ns: int
    code: int  # 0: no answer (connection error, timeout)


def vegeta() -> str:
    """The vegeta binary: $FLASHGATE_VEGETA, .tools/bin/vegeta (make bootstrap), or on PATH."""
    for candidate in (os.environ.get(VEGETA_ENV), str(REPO / ".tools" / "bin" / "vegeta"), shutil.which("vegeta")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise OpenLoopError("vegeta not found: run make bootstrap (it builds vegeta into .tools/bin)")


def targets(s: OpenLoopSettings, run: str) -> Iterator[bytes]:
    """vegeta's JSON targets, one per buyer arrival: buyers cycle over `users`, keys never repeat."""
    url = s.gate_url.rstrip("/") + "/v1/orders"
    body = base64.b64encode(json.dumps({"sku": s.sku, "qty": 1}).encode()).decode()
    n = 0
    while True:
        header = {"Content-Type": ["application/json"], "X-User-Id": [f"ol-{run}-{n % s.users}"],
                  "Idempotency-Key": [f"ol-{run}-{n}"]}  # fmt: skip
        yield json.dumps({"method": "POST", "url": url, "body": body, "header": header}).encode() + b"\n"
        n += 1


def parse_hit(row: list[str]) -> Hit:
    """One `vegeta encode --to csv` row: timestamp (ns), code, latency (ns), …, seq (column 9)."""
    return Hit(seq=int(row[8]), sent_ns=int(row[0]), latency_ns=int(row[2]), code=int(row[1]))


def corrected_ms(hits: list[Hit], rate: int) -> list[float]:
    """Latency from when each request was due (start + seq/rate), in ms; start is the earliest due time seen."""
    if not hits:
        return []
    step_ns = 1e9 / rate
    start_ns = min(h.sent_ns - h.seq * step_ns for h in hits)
    return [(h.latency_ns + max(0.0, h.sent_ns - (start_ns + h.seq * step_ns))) / 1e6 for h in hits]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def whole_seconds(hits: list[Hit], rate: int) -> list[Counter[int]]:
    """Status counts per second of the schedule (by seq), whole seconds only: a partial last second is dropped."""
    if not hits:
        return []
    last = max(h.seq for h in hits)
    seconds: list[Counter[int]] = [Counter() for _ in range(last // rate + 1)]
    for h in hits:
        seconds[h.seq // rate][h.code] += 1
    return seconds[: (last + 1) // rate]


def summarize(hits: list[Hit], s: OpenLoopSettings) -> dict[str, Any]:
    corrected = corrected_ms(hits, s.rate)
    raw = [h.latency_ns / 1e6 for h in hits]
    per_second = whole_seconds(hits, s.rate)
    statuses = Counter(h.code for h in hits)
    accepted_per_s = [sec[202] for sec in per_second]
    return {
        "offered_per_s": s.rate,
        "duration_s": s.duration_s,
        "requests": len(hits),
        "answers": {str(k): v for k, v in sorted(statuses.items())},
        "no_answer": statuses.get(0, 0),
        "accepted_per_s": sum(accepted_per_s) / len(accepted_per_s) if accepted_per_s else 0.0,
        "answers_per_s": sum(sum(sec.values()) for sec in per_second) / len(per_second) if per_second else 0.0,
        "whole_seconds": len(per_second),
        "p50_ms": percentile(corrected, 50),
        "p90_ms": percentile(corrected, 90),
        "p99_ms": percentile(corrected, 99),
        "max_ms": max(corrected, default=0.0),
        "p99_uncorrected_ms": percentile(raw, 99),
    }


def verdict(summary: dict[str, Any], s: OpenLoopSettings) -> list[str]:
    """What the run missed of its thresholds (empty: passed)."""
    missed = []
    if s.max_p99_ms is not None and summary["p99_ms"] > s.max_p99_ms:
        missed.append(f"p99 {summary['p99_ms']:.1f} ms > {s.max_p99_ms:g} ms")
    if s.min_accepted_per_s is not None and summary["accepted_per_s"] < s.min_accepted_per_s:
        missed.append(f"accepted {summary['accepted_per_s']:,.0f}/s < {s.min_accepted_per_s:,.0f}/s")
    return missed


def _feed(stdin: IO[bytes], s: OpenLoopSettings, run: str, stop: threading.Event) -> None:
    try:
        for target in targets(s, run):
            if stop.is_set():
                break
            stdin.write(target)
    except (BrokenPipeError, ValueError):  # attack is done and closed its input
        pass
    finally:
        with contextlib.suppress(BrokenPipeError):
            stdin.close()


def _progress_line(second: int, hits: list[Hit], since: int) -> str:
    fresh = hits[since:]
    p99 = percentile([h.latency_ns / 1e6 for h in hits], 99)
    accepted = sum(1 for h in fresh if h.code == 202)
    return f"{second:3d} s: {len(fresh):,} answers ({accepted:,} accepted), p99 so far {p99:.1f} ms (uncorrected)"


def run_open_loop(s: OpenLoopSettings, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Attack, read every result as it comes, summarize; the verdict is in result["missed"]."""
    if s.rate < 1 or s.duration_s < 1:
        raise OpenLoopError("rate and duration must be >= 1")
    binary = vegeta()
    run = uuid.uuid4().hex[:8]
    with tempfile.TemporaryFile() as errors:  # vegeta attack's stderr, read once it exits
        attack = subprocess.Popen(
            [binary, "attack", "-format=json", "-lazy", f"-rate={s.rate}/1s", f"-duration={s.duration_s}s",
             f"-max-workers={s.max_workers}", "-workers=64", f"-timeout={s.timeout_s}s", "-max-body=0",
             "-keepalive=true"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
        )  # fmt: skip
        assert attack.stdin is not None
        assert attack.stdout is not None
        encode = subprocess.Popen([binary, "encode", "--to", "csv"], stdin=attack.stdout, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        attack.stdout.close()  # encode owns it now
        stop = threading.Event()
        feeder = threading.Thread(target=_feed, args=(attack.stdin, s, run, stop), daemon=True)
        feeder.start()
        hits: list[Hit] = []
        began, shown, reported = time.monotonic(), 0, 0
        assert encode.stdout is not None
        for row in csv.reader(io.TextIOWrapper(encode.stdout, encoding="utf-8", newline="")):
            if row[5] == "no targets to attack":  # only if the feeder stopped early
                continue
            hits.append(parse_hit(row))
            second = int(time.monotonic() - began)
            if second > shown:
                progress(_progress_line(second, hits, reported))
                shown, reported = second, len(hits)
        stop.set()
        attack.wait()
        encode.wait()
        feeder.join(5)
        errors.seek(0)
        attack_err = errors.read().decode(errors="replace").strip()
    if attack.returncode != 0:
        raise OpenLoopError(f"vegeta attack exited {attack.returncode}: {attack_err[-500:]}")
    if not hits:
        raise OpenLoopError("vegeta returned no results")
    summary = summarize(hits, s)
    return {"settings": asdict(s), "summary": summary, "missed": verdict(summary, s)}


def report_lines(result: dict[str, Any]) -> list[str]:
    r = result["summary"]
    lines = [
        f"offered {r['offered_per_s']:,}/s for {r['duration_s']} s: {r['requests']:,} requests, answers {r['answers']}",
        f"accepted/s {r['accepted_per_s']:,.0f}  answers/s {r['answers_per_s']:,.0f}  "
        f"(over {r['whole_seconds']} whole seconds)",
        f"latency from when each request was due, ms: p50 {r['p50_ms']:.1f}  p90 {r['p90_ms']:.1f}  "
        f"p99 {r['p99_ms']:.1f}  max {r['max_ms']:.1f}  (p99 uncorrected {r['p99_uncorrected_ms']:.1f})",
    ]
    missed = result["missed"]
    lines.append("thresholds: " + ("MISSED: " + "; ".join(missed) if missed else "met"))
    return lines


def save(result: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"open-loop-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=1))
    return path
