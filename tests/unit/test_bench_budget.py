"""The CPU budget's pure parts: /proc parsing, process trees with reaped children, the table, Redis INFO."""

from __future__ import annotations

import pytest

from bench import procstat
from bench.budget import budget, budget_lines, node_clients, redis_counters, redis_view
from bench.kafka_clients import kafka_config

# Field 2 holds spaces and a ')' on purpose; utime 11, stime 12, cutime 13, cstime 14.
STAT = "4430 (postgres: a) b) S 1 4430 4430 0 -1 4194560 500 0 0 0 11 12 13 14 20 0 1 0 100 0 0"


def stat(pid: int, ppid: int, utime: int, stime: int = 0, cutime: int = 0, cstime: int = 0) -> procstat.Stat:
    return procstat.Stat(pid=pid, ppid=ppid, utime=utime, stime=stime, cutime=cutime, cstime=cstime)


def test_parse_stat_takes_the_fields_after_the_last_parenthesis() -> None:
    s = procstat.parse_stat(STAT)
    assert (s.pid, s.ppid, s.utime, s.stime, s.cutime, s.cstime) == (4430, 1, 11, 12, 13, 14)
    assert s.ticks == 50


def test_cmdline_and_worker_match() -> None:
    argv = procstat.parse_nul_list(b"/w/.venv/bin/python\0/w/.venv/bin/flashgate\0worker\0--batch-max-rows\0002\0")
    assert argv == ["/w/.venv/bin/python", "/w/.venv/bin/flashgate", "worker", "--batch-max-rows", "2"]
    assert procstat.is_flashgate_worker(argv)
    assert not procstat.is_flashgate_worker(["flashgate", "gate", "--workers", "2"])
    assert not procstat.is_flashgate_worker(["python", "-m", "bench.worker"])
    assert not procstat.is_flashgate_worker(["flashgate"])


def test_server_parent_by_fork_or_spawn() -> None:
    gate = ["/v/bin/python", "/v/bin/flashgate", "gate", "--workers", "2"]
    assert procstat.same_server(gate, gate)  # granian forks: the worker keeps the argv
    spawned = ["/v/bin/python", "-c", "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5)"]
    assert procstat.same_server(spawned, gate)  # uvicorn's workers
    assert not procstat.same_server(gate, ["/v/bin/python", "-m", "pytest"])  # a launcher is not the server
    assert not procstat.same_server(gate, ["bash"])
    assert not procstat.same_server([], gate)


def test_tree_counts_live_descendants_and_reaped_children_once() -> None:
    # postmaster 10 with backends 11 and 12 (12's own child 13); 99 is someone else's process.
    start = {10: stat(10, 1, 100, cutime=50), 11: stat(11, 10, 20), 12: stat(12, 10, 5), 13: stat(13, 12, 1),
             99: stat(99, 1, 1000)}  # fmt: skip
    assert procstat.descendants([10], start) == {10, 11, 12, 13}
    assert procstat.tree_cpu_s([10], start, clk_tck=100) == pytest.approx((150 + 20 + 5 + 1) / 100)
    # Backend 11 exits after using 10 more ticks and is reaped: its 30 ticks move to 10's cutime.
    # A new backend 14 appears with 7 ticks; the postmaster itself used 2.
    end = {10: stat(10, 1, 102, cutime=80), 12: stat(12, 10, 5), 13: stat(13, 12, 1), 14: stat(14, 10, 7),
           99: stat(99, 1, 5000)}  # fmt: skip
    used = procstat.tree_cpu_s([10], end, 100) - procstat.tree_cpu_s([10], start, 100)
    assert used == pytest.approx((2 + 10 + 7) / 100)


def test_gone_roots_count_nothing() -> None:
    assert procstat.tree_cpu_s([7], {1: stat(1, 0, 10)}, 100) == 0.0


def test_ports_from_urls() -> None:
    assert procstat.url_port("postgresql://u@127.0.0.1:56673/db", 5432) == 56673
    assert procstat.url_port("redis://localhost/0", 6379) == 6379
    assert procstat.bootstrap_port("127.0.0.1:43077,127.0.0.1:43078") == 43077


INFO = {
    "used_cpu_sys": 1.5,
    "used_cpu_user": 2.25,
    "cmdstat_evalsha": {"calls": 100, "usec": 15000, "usec_per_call": 150.0},
    "cmdstat_xadd": {"calls": 80, "usec": 800, "usec_per_call": 10.0},
    "used_memory": 5,
}


def test_redis_counters_from_info() -> None:
    c = redis_counters(INFO)
    assert c == {"redis.cpu": 3.75, "cmd.evalsha.calls": 100, "cmd.evalsha.usec": 15000,
                 "cmd.xadd.calls": 80, "cmd.xadd.usec": 800}  # fmt: skip


def test_redis_view_keeps_calls_and_orders_apart() -> None:
    # 400 orders admitted by 100 EVALSHA calls (4 per call) and 20 EVAL calls; inner XADDs listed, not summed.
    delta = {"redis.cpu": 0.08, "cmd.evalsha.calls": 100, "cmd.evalsha.usec": 20000, "cmd.eval.calls": 20,
             "cmd.eval.usec": 4000, "cmd.xadd.calls": 400, "cmd.xadd.usec": 2000, "cmd.get.calls": 0}  # fmt: skip
    v = redis_view(delta, accepted=400)
    assert v["us_per_accepted"] == pytest.approx(200.0)
    assert v["script_calls"] == 120
    assert v["script_us_per_call"] == pytest.approx(200.0)
    assert v["script_us_per_accepted"] == pytest.approx(60.0)
    assert v["accepted_per_script_call"] == pytest.approx(400 / 120)
    assert set(v["by_script_command"]) == {"evalsha", "eval"}
    assert v["commands"]["xadd"] == {"calls": 400, "usec": 2000}
    assert "get" not in v["commands"]


def test_budget_table_per_accepted_order_and_total() -> None:
    delta = {"cpu.gate": 5.0, "cpu.redis": 1.0, "cpu.kafka": 2.0, "cpu.worker": 0.5, "cpu.postgres": 0.5,
             "cpu.wrk": 0.2, "redis.cpu": 0.9}  # fmt: skip
    found = {"gate": [1], "redis": [2], "kafka": [3], "worker": [4], "postgres": [5]}
    b = budget(delta, accepted=10_000, wall_s=10.0, cores=2, found=found)
    g = b["groups"]
    assert g["gate"]["us_per_accepted"] == pytest.approx(500.0)
    assert g["wrk"]["us_per_accepted"] == pytest.approx(20.0)
    assert g["total"]["cpu_s"] == pytest.approx(9.2)
    assert g["total"]["us_per_accepted"] == pytest.approx(920.0)
    assert g["total"]["share_of_box"] == pytest.approx(0.46)
    assert b["redis"]["us_per_accepted"] == pytest.approx(90.0)
    text = "\n".join(budget_lines(b))
    total_row = next(line for line in text.splitlines() if line.strip().startswith("total"))
    assert "920" in total_row


def test_budget_leaves_out_groups_not_found_and_survives_no_accepted() -> None:
    b = budget({"cpu.gate": 1.0, "cpu.worker": 3.0, "cpu.wrk": 0.1}, accepted=0, wall_s=1.0, cores=2,
               found={"gate": [1], "worker": []})  # fmt: skip
    g = b["groups"]
    assert g["worker"]["cpu_s"] is None
    assert g["kafka"]["cpu_s"] is None
    assert g["total"]["cpu_s"] == pytest.approx(1.1)
    assert g["total"]["us_per_accepted"] is None
    assert "not found" in "\n".join(budget_lines(b))


def test_node_clients_are_one_redis_or_every_seed_of_a_cluster() -> None:
    single = node_clients("redis://127.0.0.1:6390/0")
    cluster = node_clients("redis+cluster://127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")
    try:
        assert [c.connection_pool.connection_kwargs["port"] for c in single] == [6390]
        assert [c.connection_pool.connection_kwargs["port"] for c in cluster] == [7001, 7002, 7003]
    finally:
        for c in (*single, *cluster):
            c.close()


def test_the_bench_s_kafka_clients_take_the_pipeline_s_security_settings() -> None:
    env = {
        "FLASHGATE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "FLASHGATE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "FLASHGATE_KAFKA_SASL_USERNAME": "bench",
        "FLASHGATE_KAFKA_SASL_PASSWORD": "secret",
    }
    config = kafka_config("k:9093", {"log_level": 3}, env=env)
    assert config["bootstrap.servers"] == "k:9093"
    assert (config["security.protocol"], config["sasl.mechanism"], config["sasl.username"]) == (
        "SASL_SSL",
        "SCRAM-SHA-256",
        "bench",
    )
    assert config["log_level"] == 3
    assert "security.protocol" not in kafka_config("k:9092", env={})  # none set: plaintext
