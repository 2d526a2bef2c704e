"""The Redis Streams consumer the worker and the offers consumer share, on a real Redis."""

from __future__ import annotations

import threading
import time

import pytest

from mallapp.processes.streams import GroupConsumer, dead_letters, replay_dead

STREAM = "test:stream"


class Collector(GroupConsumer):
    """Reads the test stream; acknowledges only when told to, and can be made to fail once."""

    def __init__(self, redis, name: str, *, ack: bool = True, claim_idle_ms: int = 50) -> None:
        super().__init__(redis, "test-group", name, count=10, block_ms=0, claim_idle_ms=claim_idle_ms)
        self.acknowledge = ack
        self.seen: list[bytes] = []
        self.fail_next = False
        self.steps = 0

    def streams(self) -> list[str]:
        return [STREAM]

    def step(self, block_ms: int | None = None) -> int:
        self.steps += 1
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("a step failed")
        entries = self.claim(STREAM) if self.claim_due(STREAM) else []
        for _name, new in self.read([STREAM], block_ms):
            entries.extend(new)
        self.seen.extend(fields[b"n"] for _id, fields in entries)
        if self.acknowledge:
            self.ack(STREAM, (entry_id for entry_id, _ in entries))
        return len(entries)


def test_an_entry_a_consumer_left_unacknowledged_is_taken_over_by_another(redis_client):
    dies, lives = Collector(redis_client, "dies", ack=False), Collector(redis_client, "lives")
    dies.ensure_group()
    dies.ensure_group()  # a group already there is kept
    redis_client.xadd(STREAM, {"n": "1"})
    assert dies.step() == 1 and dies.seen == [b"1"]
    assert lives.step() == 0  # nothing new, and the entry is not idle yet
    redis_client.xadd(STREAM, {"n": "2"})
    time.sleep(0.1)  # past claim_idle_ms
    assert lives.step() == 2 and sorted(lives.seen) == [b"1", b"2"]
    assert redis_client.xpending(STREAM, "test-group")["pending"] == 0


def test_a_failed_step_is_logged_and_the_loop_goes_on_until_stopped(redis_client, caplog):
    collector = Collector(redis_client, "c")
    collector.fail_next = True
    redis_client.xadd(STREAM, {"n": "1"})
    stop = threading.Event()
    runner = threading.Thread(target=collector.run, args=(stop,))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while collector.seen != [b"1"]:
            assert time.monotonic() < deadline, "the loop did not carry on after the failed step"
            time.sleep(0.01)
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()
    assert "test-group step failed" in caplog.text


class Applier(GroupConsumer):
    """Applies entries through ``apply`` (a batch, then one at a time on failure); ``n == poison`` always fails."""

    def __init__(self, redis, name: str = "a", *, poison: bytes = b"", max_deliveries: int = 3) -> None:
        super().__init__(redis, "test-group", name, count=10, block_ms=0, claim_idle_ms=0,
                         max_deliveries=max_deliveries)
        self.poison = poison
        self.applied: list[bytes] = []
        self.resets = 0

    def streams(self) -> list[str]:
        return [STREAM]

    def step(self, block_ms: int | None = None) -> int:
        entries = self.claim(STREAM)
        for _name, new in self.read([STREAM], block_ms):
            entries.extend(new)
        self.apply(STREAM, entries)
        return len(entries)

    def handle_batch(self, stream, entries) -> None:
        batch = [fields[b"n"] for _id, fields in entries]
        if self.poison in batch:
            raise ValueError(f"cannot handle {self.poison!r}")
        self.applied.extend(batch)  # "committed": the batch as a whole, or nothing of it
        self.ack(stream, (entry_id for entry_id, _ in entries))

    def reset(self) -> None:
        self.resets += 1


def test_a_poison_entry_is_set_aside_after_max_deliveries_and_the_others_apply_once(redis_client):
    consumer = Applier(redis_client, poison=b"3")
    consumer.ensure_group()
    for n in range(1, 6):
        redis_client.xadd(STREAM, {"n": str(n)})
    consumer.step()  # the batch fails; one at a time, all but the poison apply
    assert sorted(consumer.applied) == [b"1", b"2", b"4", b"5"]
    assert redis_client.xpending(STREAM, "test-group")["pending"] == 1
    assert consumer.dead_lettered == 0
    with pytest.raises(ValueError):
        consumer.step()  # claimed alone, delivered a second time, fails again: the step fails, still pending
    assert redis_client.xpending(STREAM, "test-group")["pending"] == 1
    consumer.step()  # the third delivery: set aside, acknowledged
    assert redis_client.xpending(STREAM, "test-group")["pending"] == 0
    assert consumer.dead_lettered == 1
    assert sorted(consumer.applied) == [b"1", b"2", b"4", b"5"]  # exactly once each
    (dead_id, dead), = redis_client.xrange(dead_letters(STREAM))
    assert dead[b"n"] == b"3" and dead[b"dead:group"] == b"test-group" and dead[b"dead:delivered"] == b"3"
    assert dead[b"dead:error"] == b"ValueError: cannot handle b'3'"
    consumer.step()
    assert consumer.dead_lettered == 1
    # Once the cause is fixed, ops put it back and it applies.
    consumer.poison = b"never"
    assert replay_dead(redis_client, STREAM) == 1
    consumer.step()
    assert sorted(consumer.applied) == [b"1", b"2", b"3", b"4", b"5"]
    assert redis_client.xlen(dead_letters(STREAM)) == 0


def test_when_every_entry_fails_the_step_fails_and_nothing_is_set_aside_early(redis_client):
    consumer = Applier(redis_client, poison=b"1", max_deliveries=2)
    consumer.ensure_group()
    redis_client.xadd(STREAM, {"n": "1"})
    with pytest.raises(ValueError):
        consumer.step()  # first delivery: the step fails (its entry comes back)
    consumer.step()  # second delivery: set aside
    assert consumer.dead_lettered == 1 and redis_client.xpending(STREAM, "test-group")["pending"] == 0


def test_a_consumer_makes_its_group_again_after_redis_lost_its_data(redis_client):
    consumer = Applier(redis_client)
    consumer.ensure_group()
    redis_client.xadd(STREAM, {"n": "1"})
    assert consumer.step() == 1
    redis_client.flushall()  # Redis restarted without persistence: no stream, no group
    redis_client.xadd(STREAM, {"n": "2"})  # producers carry on: the stream is made again, without the group
    assert consumer.step() == 1  # the group is made again and the new entry read, in the same step
    assert consumer.applied == [b"1", b"2"] and consumer.groups_lost == 1
    redis_client.flushall()
    assert consumer.step() == 0  # nothing there yet: the claim and read find their group again
    redis_client.xadd(STREAM, {"n": "3"})
    assert consumer.step() == 1 and consumer.applied == [b"1", b"2", b"3"]
