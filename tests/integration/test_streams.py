"""The Redis Streams consumer the worker and the offers consumer share, on a real Redis."""

from __future__ import annotations

import threading
import time

from mallapp.processes.streams import GroupConsumer

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
