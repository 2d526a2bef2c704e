"""The proximity worker: a consumer of the partitioned sightings stream.

The stream has ``stream_partitions`` partitions (one Redis stream each) and a member's sightings
always land in the same one (see ``mallapp.proximity.ingest``). A worker takes a partition by a
lease (``SET NX PX``), reads a chunk of it through the ``proximity`` consumer group, applies it,
acknowledges, and gives the lease back; any number of workers share the partitions this way, and
one worker at a time advances a member. Delivery is at least once and nothing another process
needs lives in process memory:

1. Member states live in Redis (``proximity:state:<member>``: a version and the engine's wire
   form), saved with a compare-and-set on the version. The lease makes conflicts rare (a member
   seen by a gateway and by their own phone can be in two partitions); a member saved meanwhile
   by someone else is redone from the new state.
2. The state keeps the ids of the entries it applied (a redelivery is not applied twice) and an
   *outbox* of transitions whose effects may not be durable yet. The outbox is saved with the
   state, then the effects are written in one database transaction (idempotent by natural keys),
   then published to Redis, then the outbox is cleared and the entries acknowledged. A crash at
   any point leaves either unacknowledged entries or a saved outbox; both are finished later.
3. A partition's entries left unacknowledged for ``claim_idle_ms`` (a worker died, or failed) are
   claimed by the next holder of its lease (``XAUTOCLAIM``); a dead worker's lease expires.
4. Members nobody hears any more still have to leave: a sorted set of deadlines lets any worker
   sweep them once their exit timeout has passed.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import operator
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
from mallapp.proximity.ingest import IDENTITY, stream
from mallapp.runtime import Runtime
from mallapp.venue import Registry, gateway_anchor_id, load_registry, registry_version

log = logging.getLogger("mallapp.proximity")

GROUP = "proximity"
DEADLINES = "proximity:deadlines"
LEASE_MS = 30_000  # far longer than a chunk takes; a dead worker's partitions free up after it
STATE_TTL_S = 6 * 3600
APPLIED_KEPT = 64
UPDATE_STEP_S = 1.0
LIGHT_PASS = 100  # entries: a pass that found fewer waits GATHER_MS before the next
GATHER_MS = 100  # batches of a member within this many seconds share one engine update

# Compare-and-set of a member state: "<version>|<json>"; an empty value deletes.
_CAS = """
local cur = redis.call('GET', KEYS[1])
local v = 0
if cur then v = tonumber(string.sub(cur, 1, string.find(cur, '|', 1, true) - 1)) end
if v ~= tonumber(ARGV[1]) then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
return 1
"""


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lease_key(partition: int) -> str:
    return f"proximity:partition-lease:{partition}"


def state_key(member_id: int) -> str:
    return f"proximity:state:{member_id}"


def stats_key(consumer: str) -> str:
    return f"proximity:stats:{consumer}"


_T = operator.itemgetter(4)  # the time of a gateway row

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
        self._last_claim: dict[int, float] = {}
        self._release = self.redis.register_script(_RELEASE)
        self.partitions = rt.settings.beacons.stream_partitions
        self._next = 0

    # --- set-up ----------------------------------------------------------------------------------

    def ensure_group(self) -> None:
        for p in range(self.partitions):
            try:
                self.redis.xgroup_create(stream(p), GROUP, id="0", mkstream=True)
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
        """One pass over the partitions whose lease is free, then a sweep when due; the entries handled.

        After a light pass, pause up to ``block_ms`` (capped at GATHER_MS) before returning.
        """
        self.refresh_registry()
        handled = 0
        start, self._next = self._next, (self._next + 1) % self.partitions
        for i in range(self.partitions):
            partition = (start + i) % self.partitions
            if not self.redis.set(lease_key(partition), self.consumer, nx=True, px=LEASE_MS):
                continue  # another worker has it
            try:
                handled += self._take(partition)
            finally:
                self._release(keys=[lease_key(partition)], args=[self.consumer])
        now = time.monotonic()
        if now - self._last_sweep >= self.sweep_every_s:
            self._last_sweep = now
            self.sweep()
        block = self.block_ms if block_ms is None else block_ms
        if handled < LIGHT_PASS and block:
            # Let entries gather: a member's batches from several gateways then share one engine
            # update and one state round trip, which is most of a worker's cost per sighting.
            time.sleep(min(block, GATHER_MS) / 1000)
        return handled

    def _take(self, partition: int) -> int:
        """Under the partition's lease: entries others left behind when due, then new ones."""
        handled = 0
        now = time.monotonic()
        if now - self._last_claim.get(partition, 0.0) >= self.claim_idle_ms / 3000:
            self._last_claim[partition] = now
            handled += self._reclaim(partition)
        reply = self.redis.xreadgroup(GROUP, self.consumer, {stream(partition): ">"}, count=self.count)
        if reply and reply[0][1]:
            self.handle(reply[0][1], partition)
            handled += len(reply[0][1])
        return handled

    def reclaim(self) -> int:
        """Take over what other consumers read but did not acknowledge in time, in every free partition."""
        handled = 0
        for partition in range(self.partitions):
            if self.redis.set(lease_key(partition), self.consumer, nx=True, px=LEASE_MS):
                try:
                    handled += self._reclaim(partition)
                finally:
                    self._release(keys=[lease_key(partition)], args=[self.consumer])
        return handled

    def _reclaim(self, partition: int) -> int:
        reply = self.redis.xautoclaim(stream(partition), GROUP, self.consumer, self.claim_idle_ms, start_id="0-0",
                                      count=self.count)
        # [next id, entries] before Redis 7, [next id, entries, deleted ids] since; trimmed entries are empty.
        entries = [e for e in reply[1] if e[1]]
        if entries:
            self.stats.claimed += len(entries)
            self.handle(entries, partition)
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

    def handle(self, entries: list[tuple[bytes | str, dict]], partition: int) -> None:
        """Apply a chunk of one partition's entries, then acknowledge them."""
        if not entries:
            return
        work = self._parse(entries)
        self._process(work.by_member, work.health, self.rt.now().timestamp())
        ids = [entry_id for entry_id, _ in entries]
        self.redis.xack(stream(partition), GROUP, *ids)
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
                rows_in = data["s"]
                anchor = gateway_anchor_id(gateway_id)
                for ui, major, minor, rssi, t, power in rows_in:
                    if ui == IDENTITY:
                        pair = (major, minor)
                        heard_identities[pair] = t  # entries come in time order: the latest wins
                        identity_rows.append((entry_id, pair, (anchor, rssi, t, power, False)))
                        continue
                    anchor_id = by_key.get((uuids[ui], major, minor))
                    if anchor_id is None:
                        work.unknown += 1
                    else:
                        health.saw(anchor_id, t, rssi)
                tlm = data.get("tlm", ())
                for ui, major, minor, battery, temperature, uptime, adv_count, t in tlm:
                    anchor_id = by_key.get((uuids[ui], major, minor))
                    if anchor_id is not None:
                        previous = health.telemetry.get(anchor_id)
                        if previous is None or t > previous[0]:
                            health.telemetry[anchor_id] = (t, battery, temperature, uptime, adv_count)
                if rows_in:
                    t_last = max(rows_in, key=_T)[4]
                    if health.gateways.get(gateway_id, 0.0) < t_last:
                        health.gateways[gateway_id] = t_last
                self.stats.sightings += len(rows_in) + len(tlm)
        if identity_rows:
            members = identity.resolve_many(self.redis, heard_identities)
            # One batch per member and entry: [entry id, latest time, sightings]. Rows come grouped by entry.
            by_member = work.by_member
            current: str | None = None
            batches: dict[int, list] = {}
            for entry_id, pair, row in identity_rows:
                member_id = members.get(pair)
                if member_id is None:
                    continue
                if entry_id is not current:
                    current, batches = entry_id, {}
                batch = batches.get(member_id)
                if batch is None:
                    batches[member_id] = batch = [entry_id, row[2], [row]]
                    by_member[member_id].append(batch)
                else:
                    batch[2].append(row)
                    if row[2] > batch[1]:
                        batch[1] = row[2]
        return work

    def _advance(self, state: MemberState, batches: list[tuple[str, float, list[Sighting]]],
                 now: float) -> list[Transition]:
        """Observe a member's new batches of this chunk and update presence once per second of their time.

        Batches within a second of each other share one update (the costly part); a backlog that
        spans minutes is still replayed second by second, so dwell and exits keep their times.
        """
        engine = self.engine
        observe = engine.observe
        applied = state.applied
        out: list[Transition] = []
        group_start = group_latest = 0.0
        fresh_batches, fresh_since = 0, math.inf
        for entry_id, t_max, rows in batches:
            if entry_id in applied:
                continue
            if (fresh_batches or group_latest) and t_max - group_start >= UPDATE_STEP_S:
                out.extend(engine.update(state, group_latest, fresh_batches,
                                         fresh_since if fresh_batches else None))
                group_start = group_latest = 0.0
                fresh_batches, fresh_since = 0, math.inf
            if not group_latest:
                group_start = t_max
            fresh = False
            for anchor_id, rssi, t, power, phone in rows:
                if observe(state, anchor_id, rssi, t, power, phone):
                    fresh = True
            if fresh:
                fresh_batches += 1
                fresh_since = min(fresh_since, t_max)
            group_latest = max(group_latest, t_max)
            applied.append(entry_id)
        if len(applied) > APPLIED_KEPT:
            del applied[:-APPLIED_KEPT]
        if group_latest:
            out.extend(engine.update(state, group_latest, fresh_batches, fresh_since if fresh_batches else None))
        elif not batches:  # a sweep: time passes without sightings
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
        if with_outbox or effects.health_due(health, self._health_written, now):
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
    version, _, body = value.partition(b"|")
    return MemberState.from_bytes(body, int(version))


def _dump(state: MemberState) -> bytes:
    return b"%d|%s" % (state.version + 1, state.to_bytes())
