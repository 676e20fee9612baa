"""ops/stack/roles.py, the pure parts: Redis Cluster roles from CLUSTER NODES lines, the KRaft quorum leader."""

from __future__ import annotations

import json

from ops.stack.roles import active_controller, redis_roles

P1 = "aaaaaaaaaa01 127.0.0.1:7001@17001 myself,master - 0 1796095162000 1 connected 0-5460 [1027->-bbbbbbbbbb02]"
P2 = "bbbbbbbbbb02 127.0.0.1:7002@17002 myself,master - 0 1796095162000 7 connected 1027 5461-10922"
R1 = "cccccccccc03 127.0.0.1:7003@17003 myself,slave aaaaaaaaaa01 0 1796095163000 1 connected"
R2 = "dddddddddd04 127.0.0.1:7004@17004 myself,slave bbbbbbbbbb02 0 1796095163000 7 connected"
EMPTY = "eeeeeeeeee05 127.0.0.1:7005@17005 myself,master - 0 1796095163000 0 connected"


def test_redis_roles_are_read_from_each_node_not_from_its_name() -> None:
    # After a failover redis-r1 is the primary, and redis-p1 follows it.
    roles = redis_roles({"redis-p1": R2, "redis-r1": P2, "redis-p2": P1, "redis-r2": R1, "redis-p3": EMPTY})
    assert roles == {
        "redis-p1": "replica of redis-r1",
        "redis-r1": "primary 1027,5461-10922",
        "redis-p2": "primary 0-5460",  # migrating slot 1027 out: still its own, the bracket is left out
        "redis-r2": "replica of redis-p2",
        "redis-p3": "primary (no slots)",
    }


def test_a_node_that_does_not_answer_has_no_role_and_its_replica_names_its_id() -> None:
    assert redis_roles({"redis-p1": None, "redis-r1": R1}) == {"redis-p1": "", "redis-r1": "replica of aaaaaaaa"}


def state(leader: int, epoch: int) -> str:
    return json.dumps({"clusterId": "", "leaderId": leader, "leaderEpoch": epoch, "votedId": leader})


def test_the_newest_epoch_names_the_active_controller() -> None:
    # Node 3 still remembers the leader of epoch 4; nodes 1 and 2 saw node 2 elected in epoch 5.
    assert active_controller({1: state(2, 5), 2: state(2, 5), 3: state(1, 4)}) == 2


def test_no_controller_during_an_election_or_without_a_readable_file() -> None:
    assert active_controller({1: state(-1, 6), 2: state(-1, 6)}) is None
    assert active_controller({1: None, 2: "{", 3: "{}"}) is None
    assert active_controller({}) is None
    assert active_controller({1: None, 2: state(3, 2)}) == 3
