"""Partition leases: fair shares, no partition read by two workers, hand-over when workers come and go."""

from __future__ import annotations

from mallapp.domain.proximity.leases import Leases, lease_key

PARTITIONS = 8


def holders(redis) -> dict[int, str]:
    return {p: v.decode() for p in range(PARTITIONS) if (v := redis.get(lease_key(p))) is not None}


def test_workers_take_fair_shares_and_never_the_same_partition(redis_client):
    workers = [Leases(redis_client, f"w-{i}", PARTITIONS) for i in range(3)]
    flushed = []
    for _ in range(2):  # a second round: the first comer gives back what is beyond its share
        for w in workers:
            w.rebalance(lambda w=w: flushed.append(w.consumer))
    shares = sorted(len(w.held) for w in workers)
    assert shares == [2, 3, 3]
    held = [p for w in workers for p in w.held]
    assert sorted(held) == list(range(PARTITIONS))  # every partition read, none by two
    assert holders(redis_client) == {p: w.consumer for w in workers for p in w.held}
    assert flushed == ["w-0"]  # only a worker giving partitions back saves its states first


def test_a_stopped_worker_hands_its_partitions_to_the_others(redis_client):
    a, b = Leases(redis_client, "a", PARTITIONS), Leases(redis_client, "b", PARTITIONS)
    for _ in range(2):
        a.rebalance(lambda: None)
        b.rebalance(lambda: None)
    assert len(a.held) == len(b.held) == 4
    a.release_all()
    b.rebalance(lambda: None)
    assert b.held == set(range(PARTITIONS))


def test_a_lapsed_lease_is_not_renewed_by_its_old_holder(redis_client):
    a = Leases(redis_client, "a", PARTITIONS)
    a.rebalance(lambda: None)
    redis_client.set(lease_key(3), "b")  # a stalled past its lease; b took partition 3 meanwhile
    a.rebalance(lambda: None)
    assert 3 not in a.held and redis_client.get(lease_key(3)) == b"b"
