"""Fleet health is written in key order, so workers writing overlapping rows cannot deadlock each other."""

from __future__ import annotations

from mallapp.domain.proximity import effects


class Recorder:
    """A session that records the gateway updates (beacon rows go through the patched _upsert_status)."""

    def __init__(self, writes: list[tuple[str, int]]) -> None:
        self.writes = writes

    def execute(self, statement):
        gateway_id = statement.compile().params["id_1"]
        self.writes.append(("g", gateway_id))


def test_beacon_then_gateway_rows_are_written_in_key_order(monkeypatch):
    writes: list[tuple[str, int]] = []
    monkeypatch.setattr(effects, "_upsert_status", lambda session, beacon_id, values: writes.append(("b", beacon_id)))
    health = effects.Health()
    for beacon_id in (9, 2, 7, 4):
        health.saw(beacon_id, 100.0, -60)
    health.telemetry[3] = (100.0, 3000, 20.0, 1.0, 5)  # telemetry only: between the others, not after them
    health.telemetry[7] = (100.0, 3000, 20.0, 1.0, 6)
    health.gateways.update({12: 100.0, 5: 100.0, 8: 100.0})
    written: dict[tuple[str, int], float] = {}
    effects.write_health(Recorder(writes), health, written, now=1000.0)
    assert writes == [("b", 2), ("b", 3), ("b", 4), ("b", 7), ("b", 9), ("g", 5), ("g", 8), ("g", 12)]
    assert ("b", 3) not in written  # heard of only by telemetry: its sighting health is not due-tracked
