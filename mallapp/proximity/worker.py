"""The proximity worker: a member of the ``proximity`` consumer group on the sightings stream.

One step reads a chunk of batches (``XREADGROUP``), applies them to the members' engine states
and acknowledges them only when their effects are safe. At-least-once delivery, any number of
workers, no state in process memory that another worker needs:

1. Member states live in Redis (``proximity:state:<member>``, a version and the engine's wire
   form). Each is loaded, advanced, and saved with a compare-and-set on the version; a member
   another worker saved meanwhile is redone from the new state.
2. The state keeps the ids of the entries it applied (a redelivery is not applied twice) and an
   *outbox* of transitions whose effects may not be durable yet. The outbox is saved with the
   state, then the effects are written in one database transaction (idempotent by natural keys),
   then published to Redis, then the outbox is cleared and the entries acknowledged. A crash at
   any point leaves either unacknowledged entries or a saved outbox; both are finished later.
3. Entries idle with a dead consumer are claimed after ``claim_idle_ms`` (``XAUTOCLAIM``).
4. Members nobody hears any more still have to leave: a sorted set of deadlines lets any worker
   sweep them at the time their exit timeout passes.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from redis import Redis
from redis.exceptions import ResponseError

from mallapp.proximity import effects, identity
from mallapp.proximity.engine import Engine, EngineConfig, MemberState, Transition
from mallapp.proximity.ingest import IDENTITY, STREAM
from mallapp.runtime import Runtime
from mallapp.venue import Registry, gateway_anchor_id, load_registry, registry_version

log = logging.getLogger("mallapp.proximity")

GROUP = "proximity"
DEADLINES = "proximity:deadlines"
STATE_TTL_S = 6 * 3600
APPLIED_KEPT = 64

# Compare-and-set of a member state: "<version>|<json>"; an empty value deletes.
_CAS = """
local cur = redis.call('GET', KEYS[1])
local v = 0
if cur then v = tonumber(string.sub(cur, 1, string.find(cur, '|', 1, true) - 1)) end
if v ~= tonumber(ARGV[1]) then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
return 1
"""


def state_key(member_id: int) -> str:
    return f"proximity:state:{member_id}"


def stats_key(consumer: str) -> str:
    return f"proximity:stats:{consumer}"


# A member's sightings from one entry: (anchor id, rssi, t, measured power, phone channel).
Sighting = tuple[int, int, float, int | None, bool]


@dataclass
class Work:
    """One chunk's sightings, grouped by member and entry in stream order."""

    by_member: dict[int, list[tuple[str, float, list[Sighting]]]] = field(default_factory=lambda: defaultdict(list))
    health: effects.Health = field(default_factory=effects.Health)
    latencies_from: list[float] = field(default_factory=list)  # ingest times of the entries
    unknown: int = 0


# Upper edges (ms) of the ingest-to-decision latency histogram the workers publish.
LATENCY_EDGES_MS = (5, 10, 20, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000)


@dataclass
class Stats:
    entries: int = 0
    sightings: int = 0
    transitions: int = 0
    conflicts: int = 0
    unknown_beacons: int = 0
    claimed: int = 0
    latency_ms: list[float] = field(default_factory=list)
    # Cumulative counts per LATENCY_EDGES_MS bucket (the last one: above every edge).
    latency_hist: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_EDGES_MS) + 1))


class Worker:
    """One consumer of the group. ``step()`` handles a chunk; ``run()`` loops until stopped."""

    def __init__(self, rt: Runtime, consumer: str | None = None, *, count: int = 200, block_ms: int = 1000,
                 claim_idle_ms: int = 30_000, sweep_every_s: float = 1.0) -> None:
        self.rt = rt
        self.redis: Redis = rt.redis
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.count = count
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.sweep_every_s = sweep_every_s
        self.stats = Stats()
        self._cas = self.redis.register_script(_CAS)
        self._uuids = rt.settings.beacons.uuids
        self._config = EngineConfig.from_settings(rt.settings.beacons)
        self._registry_version = -1
        self.engine: Engine = Engine(self._config, Registry(0, {}, {}, {}))
        self._sale_items: dict[int, int] = {}
        self._health_written: dict[tuple[str, int], float] = {}
        self._last_sweep = 0.0
        self._last_claim = 0.0

    # --- set-up ----------------------------------------------------------------------------------

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def refresh_registry(self) -> None:
        version = registry_version(self.redis)
        if version == self._registry_version:
            return
        with self.rt.sessions() as session:
            registry = load_registry(session, version)
        self.engine = Engine(self._config, registry)
        self._sale_items = effects.zone_sale_items(registry)
        self._registry_version = version
        log.info("venue registry version %s: %s anchors, %s zones", version, len(registry.anchors),
                 len(registry.zones))

    # --- the loop --------------------------------------------------------------------------------

    def run(self, stop: threading.Event, stats_every_s: float = 10.0) -> None:
        self.ensure_group()
        last_stats = time.monotonic()
        while not stop.is_set():
            try:
                self.step()
                if time.monotonic() - last_stats >= stats_every_s:
                    last_stats = time.monotonic()
                    log.info("proximity worker", extra={"stats": self.publish_stats()})
            except Exception:  # keep consuming; unacknowledged entries come back
                log.exception("proximity step failed")
                stop.wait(1.0)

    def step(self, block_ms: int | None = None) -> int:
        """Read and handle one chunk, then sweep and reclaim when due; return the entries handled."""
        self.refresh_registry()
        block = self.block_ms if block_ms is None else block_ms
        reply = self.redis.xreadgroup(GROUP, self.consumer, {STREAM: ">"}, count=self.count, block=block or None)
        handled = 0
        if reply:
            entries = reply[0][1]
            self.handle(entries)
            handled = len(entries)
        now = time.monotonic()
        if now - self._last_sweep >= self.sweep_every_s:
            self._last_sweep = now
            self.sweep()
        if now - self._last_claim >= self.claim_idle_ms / 3000:
            self._last_claim = now
            handled += self.reclaim()
        return handled

    def reclaim(self) -> int:
        """Take over entries another consumer read but did not acknowledge in time (it died)."""
        reply = self.redis.xautoclaim(STREAM, GROUP, self.consumer, self.claim_idle_ms, start_id="0-0",
                                      count=self.count)
        # [next id, entries] before Redis 7, [next id, entries, deleted ids] since; trimmed entries are empty.
        entries = [e for e in reply[1] if e[1]]
        if entries:
            self.stats.claimed += len(entries)
            self.handle(entries)
        return len(entries)

    def sweep(self) -> int:
        """Advance members whose exit deadline passed with no sightings (they left)."""
        now = self.rt.now().timestamp()
        due = self.redis.zrangebyscore(DEADLINES, "-inf", now, start=0, num=500)
        if not due:
            return 0
        members = [int(m) for m in due]
        self._process({m: [] for m in members}, effects.Health(), now)
        return len(members)

    # --- one chunk --------------------------------------------------------------------------------

    def handle(self, entries: list[tuple[bytes | str, dict]]) -> None:
        work = self._parse(entries)
        self._process(work.by_member, work.health, self.rt.now().timestamp())
        ids = [entry_id for entry_id, _ in entries]
        self.redis.xack(STREAM, GROUP, *ids)
        done = time.time()
        self.stats.entries += len(ids)
        self.stats.unknown_beacons += work.unknown
        hist = self.stats.latency_hist
        for at in work.latencies_from:
            ms = (done - at) * 1000
            self.stats.latency_ms.append(ms)
            hist[bisect.bisect_left(LATENCY_EDGES_MS, ms)] += 1

    def _parse(self, entries: Iterable[tuple[bytes | str, dict]]) -> Work:
        work = Work()
        registry = self.engine.registry
        by_key = registry.beacons_by_key
        uuids = self._uuids
        health = work.health
        heard_identities: dict[tuple[int, int], float] = {}
        identity_rows: list[tuple[str, int, int, int, int, float, int | None]] = []
        for entry_id, fields in entries:
            entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            raw = fields.get(b"d") or fields.get("d")
            data = json.loads(raw)
            work.latencies_from.append(data.get("at", time.time()))
            if data["src"] == "m":
                if data.get("far"):
                    continue  # the phone's own position puts it away from the mall
                rows: list[Sighting] = []
                t_max = 0.0
                for ui, major, minor, rssi, t in data["s"]:
                    anchor_id = by_key.get((uuids[ui], major, minor))
                    if anchor_id is None:
                        work.unknown += 1
                        continue
                    rows.append((anchor_id, rssi, t, None, True))
                    health.saw(anchor_id, t, rssi)
                    if t > t_max:
                        t_max = t
                if rows:
                    work.by_member[data["member"]].append((entry_id, t_max, rows))
                self.stats.sightings += len(data["s"])
            else:
                gateway_id = data["gateway"]
                t_last = 0.0
                for ui, major, minor, rssi, t, power in data["s"]:
                    t_last = max(t_last, t)
                    if ui == IDENTITY:
                        pair = (major, minor)
                        heard_identities[pair] = max(heard_identities.get(pair, 0.0), t)
                        identity_rows.append((entry_id, gateway_id, major, minor, rssi, t, power))
                        continue
                    anchor_id = by_key.get((uuids[ui], major, minor))
                    if anchor_id is None:
                        work.unknown += 1
                    else:
                        health.saw(anchor_id, t, rssi)
                for ui, major, minor, battery, temperature, uptime, adv_count, t in data.get("tlm", ()):
                    anchor_id = by_key.get((uuids[ui], major, minor))
                    if anchor_id is not None:
                        previous = health.telemetry.get(anchor_id)
                        if previous is None or t > previous[0]:
                            health.telemetry[anchor_id] = (t, battery, temperature, uptime, adv_count)
                if t_last:
                    health.gateways[gateway_id] = max(health.gateways.get(gateway_id, 0.0), t_last)
                self.stats.sightings += len(data["s"]) + len(data.get("tlm", ()))
        if identity_rows:
            members = identity.resolve_many(self.redis, heard_identities)
            grouped: dict[tuple[int, str], list[Sighting]] = defaultdict(list)
            for entry_id, gateway_id, major, minor, rssi, t, power in identity_rows:
                member_id = members.get((major, minor))
                if member_id is not None:
                    grouped[(member_id, entry_id)].append((gateway_anchor_id(gateway_id), rssi, t, power, False))
            for (member_id, entry_id), rows in grouped.items():
                work.by_member[member_id].append((entry_id, max(r[2] for r in rows), rows))
        return work

    def _advance(self, state: MemberState, batches: list[tuple[str, float, list[Sighting]]],
                 now: float) -> list[Transition]:
        engine = self.engine
        observe = engine.observe
        out: list[Transition] = []
        applied = state.applied
        for entry_id, t_max, rows in batches:
            if entry_id in applied:
                continue
            fresh = False
            for anchor_id, rssi, t, power, phone in rows:
                if observe(state, anchor_id, rssi, t, power, phone):
                    fresh = True
            out.extend(engine.update(state, t_max, fresh))
            applied.append(entry_id)
        if len(applied) > APPLIED_KEPT:
            del applied[:-APPLIED_KEPT]
        if not batches:  # a sweep: time passes without sightings
            out.extend(engine.update(state, now))
        return out

    def _process(self, by_member: dict[int, list[tuple[str, float, list[Sighting]]]], health: effects.Health,
                 now: float) -> None:
        pending = dict(by_member)
        saved: dict[int, MemberState] = {}
        for _attempt in range(8):
            if not pending:
                break
            members = list(pending)
            raw = self.redis.mget([state_key(m) for m in members])
            pipe = self.redis.pipeline(transaction=False)
            states = []
            for member_id, value in zip(members, raw, strict=True):
                state = _load(value)
                new = self._advance(state, pending[member_id], now)
                self.stats.transitions += len(new)
                state.outbox.extend(new)
                states.append(state)
                self._cas(keys=[state_key(member_id)], args=[state.version, _dump(state), STATE_TTL_S], client=pipe)
            results = pipe.execute()
            retry = {}
            for member_id, state, ok in zip(members, states, results, strict=True):
                if ok:
                    state.version += 1
                    saved[member_id] = state
                else:
                    retry[member_id] = pending[member_id]
            self.stats.conflicts += len(retry)
            pending = retry
        if pending:  # still contended after several rounds: leave the entries unacknowledged
            raise RuntimeError(f"member states kept changing under this worker: {sorted(pending)[:5]}")
        self._finish(saved, health, now)

    def _finish(self, saved: dict[int, MemberState], health: effects.Health, now: float) -> None:
        rt = self.rt
        outcome = effects.Outcome()
        with_outbox = {m: s for m, s in saved.items() if s.outbox}
        if with_outbox or health.seen or health.telemetry or health.gateways:
            with rt.sessions.begin() as session:
                for member_id, state in with_outbox.items():
                    effects.apply_transitions(session, rt.settings, self.engine.registry, self._sale_items,
                                              member_id, state.outbox, outcome)
                effects.write_health(session, health, self._health_written, now)
            effects.publish(self.redis, outcome)
        pipe = self.redis.pipeline(transaction=False)
        timeout = self._config.exit_timeout_s
        for member_id, state in saved.items():
            if state.outbox:
                state.outbox = []
                keep = state.present()
                self._cas(keys=[state_key(member_id)], args=[state.version, _dump(state) if keep else "",
                                                             STATE_TTL_S], client=pipe)
                state.version += 1
            elif not state.present():
                self._cas(keys=[state_key(member_id)], args=[state.version, "", STATE_TTL_S], client=pipe)
            deadline = state.deadline(timeout)
            if deadline is None:
                pipe.zrem(DEADLINES, member_id)
            else:
                pipe.zadd(DEADLINES, {member_id: deadline})
        pipe.execute()

    def publish_stats(self) -> dict[str, float]:
        """Counters and latency percentiles since the last call, also written to Redis for operators."""
        s = self.stats
        lat = sorted(s.latency_ms)
        out = {"entries": s.entries, "sightings": s.sightings, "transitions": s.transitions,
               "conflicts": s.conflicts, "unknown_beacons": s.unknown_beacons, "claimed": s.claimed,
               "latency_p50_ms": lat[len(lat) // 2] if lat else 0.0,
               "latency_p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0,
               **{f"latency_le_{edge}": n for edge, n in zip((*LATENCY_EDGES_MS, "inf"), s.latency_hist,
                                                            strict=True)}}
        self.redis.hset(stats_key(self.consumer), mapping=out)
        self.redis.expire(stats_key(self.consumer), 3600)
        s.latency_ms = []
        return out


def _load(value: bytes | None) -> MemberState:
    if value is None:
        return MemberState()
    text = value.decode() if isinstance(value, bytes) else value
    version, _, body = text.partition("|")
    return MemberState.from_wire(json.loads(body), int(version))


def _dump(state: MemberState) -> str:
    return f"{state.version + 1}|{json.dumps(state.to_wire(), separators=(',', ':'))}"
