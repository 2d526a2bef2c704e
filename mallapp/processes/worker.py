"""The proximity worker: a consumer of the partitioned sightings stream.

The stream has ``stream_partitions`` partitions (one Redis stream each) and a member's sightings
always land in the same one (see ``mallapp.domain.proximity.ingest``). Each worker holds its share of the
partitions by lease (:mod:`mallapp.domain.proximity.leases`) and reads them through the ``proximity``
consumer group. Delivery is at least once, and the state that matters is in Redis, so a worker
may die at any point:

1. Member states live in Redis (``proximity:state:<member>``: a version and the engine's binary
   form) and are saved with a compare-and-set on the version. A worker keeps the states of its
   members in memory between chunks, like a stream processor's local state, and saves a member's
   state when it has news (a transition) or, at the latest, at the next flush (every
   ``flush_every_s``); the entries read are acknowledged only after that flush. A crash loses the
   unsaved states and leaves their entries unacknowledged: they are read again and applied to the
   last saved state.
2. A cached state may be stale (a member heard by a gateway and by their own phone is in two
   partitions, and partitions move between workers): its save then fails the compare-and-set, and
   the member is reloaded and the batches applied since the last save are applied again.
3. A state keeps the ids of the entries it applied (a redelivery is not applied twice) and an
   *outbox* of transitions whose effects may not be durable yet. The outbox is saved with the
   state, then the effects are written in one database transaction (idempotent by natural keys),
   then published to Redis, then the outbox is cleared.
4. A partition's entries left unacknowledged for ``claim_idle_ms`` (a worker died) are claimed by
   its next holder (``XAUTOCLAIM``).
5. Members nobody hears any more still have to leave: a sorted set of deadlines lets any worker
   sweep them once their exit timeout has passed.
"""

from __future__ import annotations

import argparse
import bisect
import json
import logging
import math
import operator
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from mallapp.domain.floors import floor_plans
from mallapp.domain.proximity import effects, identity
from mallapp.domain.proximity.engine import Engine, EngineConfig, MemberState, Transition
from mallapp.domain.proximity.ingest import IDENTITY, stream
from mallapp.domain.proximity.leases import Leases
from mallapp.domain.proximity.position import state_key
from mallapp.domain.venue import Registry, gateway_anchor_id, load_registry, registry_version
from mallapp.processes.runner import Process
from mallapp.processes.streams import GroupConsumer, consumer_arguments
from mallapp.runtime import Runtime

log = logging.getLogger("mallapp.proximity")

GROUP = "proximity"
DEADLINES = "proximity:deadlines"
STATE_TTL_S = 6 * 3600
UPDATE_STEP_S = 1.0
LIGHT_PASS = 100  # entries: a pass that found fewer waits GATHER_MS before the next
GATHER_MS = 100  # batches of a member within this many seconds share one engine update
CACHE_MAX = 200_000  # member states kept in memory between flushes

# Compare-and-set of member states, all of a chunk in one call: KEYS are state keys; ARGV is the TTL,
# then per key the version expected and the new value ("<version>|<state>"; empty deletes). Returns
# 1 (saved) or 0 (the version moved) per key. (On Redis Cluster the keys would need one hash tag.)
_CAS = """
local saved = {}
for i, key in ipairs(KEYS) do
  local head = redis.call('GETRANGE', key, 0, 24)
  local v = 0
  if head ~= '' then v = tonumber(string.sub(head, 1, string.find(head, '|', 1, true) - 1)) end
  if v == tonumber(ARGV[2 * i]) then
    local value = ARGV[2 * i + 1]
    if value == '' then redis.call('DEL', key) else redis.call('SET', key, value, 'EX', ARGV[1]) end
    saved[i] = 1
  else
    saved[i] = 0
  end
end
return saved
"""


def stats_key(consumer: str) -> str:
    return f"proximity:stats:{consumer}"


_T = operator.itemgetter(4)  # the time of a gateway row

# A member's sightings from one entry: (anchor id, rssi, t, measured power, phone channel).
Sighting = tuple[int, int, float, int | None, bool]
# One entry's sightings of one member: (entry id, latest time, sightings).
Batch = tuple[bytes, float, list[Sighting]]


@dataclass
class Work:
    """One chunk's sightings, grouped by member and entry in stream order."""

    by_member: dict[int, list[Batch]] = field(default_factory=lambda: defaultdict(list))
    health: effects.Health = field(default_factory=effects.Health)
    latencies_from: list[float] = field(default_factory=list)  # ingest times of the entries
    unknown: int = 0


# Upper edges (ms) of the latency histograms the workers publish.
LATENCY_EDGES_MS = (5, 10, 20, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000)


def _histogram() -> list[int]:
    return [0] * (len(LATENCY_EDGES_MS) + 1)  # the last bucket: above every edge


@dataclass
class Stats:
    entries: int = 0
    sightings: int = 0
    transitions: int = 0
    conflicts: int = 0
    unknown_beacons: int = 0
    claimed: int = 0
    latency_ms: list[float] = field(default_factory=list)
    # Cumulative counts per LATENCY_EDGES_MS bucket: ingest to decision (the engine applied the entry
    # and the effects of any transition are durable), and ingest to acknowledgement (state saved).
    latency_hist: list[int] = field(default_factory=_histogram)
    ack_hist: list[int] = field(default_factory=_histogram)


class Worker(GroupConsumer):
    """One consumer of the group. ``step()`` reads and applies a chunk; ``run()`` loops until stopped."""

    log = log

    def __init__(self, rt: Runtime, consumer: str | None = None, *, count: int = 200, block_ms: int = 1000,
                 claim_idle_ms: int = 30_000, sweep_every_s: float = 1.0, flush_every_s: float = 1.0,
                 stats_every_s: float = 10.0, max_deliveries: int = 3) -> None:
        super().__init__(rt.redis, GROUP, consumer, count=count, block_ms=block_ms, claim_idle_ms=claim_idle_ms,
                         max_deliveries=max_deliveries)
        self.rt = rt
        self.stats_every_s = stats_every_s
        self._last_stats = time.monotonic()
        self.sweep_every_s = sweep_every_s
        self.flush_every_s = flush_every_s
        self.stats = Stats()
        self._cas = self.redis.register_script(_CAS)
        self._uuids = rt.settings.beacons.uuids
        self._config = EngineConfig.from_settings(rt.settings.beacons)
        self._registry_version = -1
        self.engine: Engine = Engine(self._config, Registry(0, {}, {}, {}))
        self._sale_items: dict[int, int] = {}
        self._health_written: dict[tuple[str, int], float] = {}
        self._last_sweep = 0.0
        self.partitions = rt.settings.beacons.ingest.stream_partitions
        self.leases = Leases(self.redis, self.consumer, self.partitions)
        self._streams = {stream(p): p for p in range(self.partitions)}
        self._identities = identity.Resolver(self.redis)
        # Member states in memory; the batches applied to each since its last save (a member here is
        # dirty); the entries applied but not acknowledged, per partition, with their ingest times.
        self._states: dict[int, MemberState] = {}
        self._unsaved: dict[int, list[Batch]] = {}
        self._unacked: dict[int, list[tuple[bytes, float]]] = defaultdict(list)
        self._last_flush = time.monotonic()

    # --- set-up ----------------------------------------------------------------------------------

    def streams(self) -> list[str]:
        return list(self._streams)

    def refresh_registry(self) -> None:
        version = registry_version(self.redis)
        if version == self._registry_version:
            return
        with self.rt.sessions() as session:
            registry = load_registry(session, version)
            # The floors ops outlined (mallapp.domain.floors): Engine.position searches inside them.
            plans = floor_plans(session)
        self.engine = Engine(self._config, registry, plans)
        self._sale_items = effects.zone_sale_items(registry)
        self._registry_version = version
        log.info("venue registry version %s: %s anchors, %s zones", version, len(registry.anchors),
                 len(registry.zones))

    # --- the loop --------------------------------------------------------------------------------

    def after_step(self) -> None:
        if time.monotonic() - self._last_stats >= self.stats_every_s:
            self._last_stats = time.monotonic()
            stats = self.publish_stats()
            log.info(stats_line(stats), extra={"stats": stats})

    def close(self) -> None:
        """Save what is unsaved, acknowledge, and give the partitions back (a clean stop)."""
        try:
            self.flush()
        finally:
            self.leases.release_all()

    def step(self, block_ms: int | None = None) -> int:
        """Read and apply what the held partitions have, sweep and flush when due; the entries handled.

        After a light pass, pause up to ``block_ms`` (capped at GATHER_MS) before returning.
        """
        self.refresh_registry()
        try:
            if self.leases.due():
                self.leases.rebalance(self.flush)
            handled = self._read()
            now = time.monotonic()
            if now - self._last_sweep >= self.sweep_every_s:
                self._last_sweep = now
                self.sweep()
            if not handled or now - self._last_flush >= self.flush_every_s:
                self.flush()
        except Exception:
            self.forget()
            raise
        block = self.block_ms if block_ms is None else block_ms
        if handled < LIGHT_PASS and block:
            # Let entries gather: a member's batches from several gateways then share one engine
            # update, which is most of a worker's cost per sighting.
            time.sleep(min(block, GATHER_MS) / 1000)
        return handled

    def _read(self) -> int:
        """Entries others left behind in the held partitions when due, then new ones; the entries handled."""
        held = sorted(self.leases.held)
        if not held:
            return 0
        handled = sum(self._reclaim(p) for p in held if self.claim_due(stream(p)))
        for name, entries in self.read([stream(p) for p in held]):
            self.apply(name, entries)
            handled += len(entries)
        return handled

    def handle_batch(self, stream_name: str, entries: list) -> None:
        self.handle(entries, self._streams[stream_name])

    def handle_alone(self, stream_name: str, entry: tuple) -> None:
        """One entry of a batch that failed, saved and acknowledged on its own (its batch's others too)."""
        self.handle([entry], self._streams[stream_name])
        self.flush()

    def reset(self) -> None:
        self.forget()

    def lost_redis(self) -> None:
        """Redis lost its data: the states, deadlines and registry version cached here describe what is
        gone. Start afresh (presence rebuilds from the next sightings); leases are taken up again at
        the next rebalance, which finds them lapsed."""
        self.forget()
        self._registry_version = -1
        self._last_claim.clear()

    def forget(self) -> None:
        """Drop what is only in memory, as a crash would: after a failure midway through a chunk, the
        states in memory may hold part of it. Its entries and those since the last flush stay
        unacknowledged and are applied again to the saved states (claimed after ``claim_idle_ms``)."""
        self._states.clear()
        self._unsaved.clear()
        self._unacked.clear()

    def reclaim(self) -> int:
        """Take up free partitions and take over what other consumers read but did not acknowledge in time."""
        self.refresh_registry()
        self.leases.rebalance(self.flush)
        handled = sum(self._reclaim(p) for p in sorted(self.leases.held))
        self.flush()
        return handled

    def _reclaim(self, partition: int) -> int:
        entries = self.claim(stream(partition))
        if entries:
            self.stats.claimed += len(entries)
            self.apply(stream(partition), entries)
        return len(entries)

    def sweep(self) -> int:
        """Advance members whose exit deadline passed with no sightings (they left)."""
        now = self.rt.now().timestamp()
        # A flush late: the member's worker may hold sightings newer than the saved deadline.
        due = self.redis.zrangebyscore(DEADLINES, "-inf", now - self.flush_every_s, start=0, num=500)
        if not due:
            return 0
        members = [int(m) for m in due]
        self._apply({m: [] for m in members}, effects.Health(), now)
        return len(members)

    # --- one chunk --------------------------------------------------------------------------------

    def handle(self, entries: list[tuple[bytes | str, dict]], partition: int) -> None:
        """Apply a chunk of one partition's entries; they are acknowledged at the next flush."""
        if not entries:
            return
        work = self._parse(entries)
        self._apply(work.by_member, work.health, self.rt.now().timestamp())
        # Only now, with all of the chunk applied: a flush acknowledges what is listed here.
        ids = [e if isinstance(e, bytes) else e.encode() for e, _ in entries]
        self._unacked[partition].extend(zip(ids, work.latencies_from, strict=True))
        decided = time.time()
        self.stats.entries += len(ids)
        self.stats.unknown_beacons += work.unknown
        hist = self.stats.latency_hist
        for at in work.latencies_from:
            ms = (decided - at) * 1000
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
            entry_id = entry_id if isinstance(entry_id, bytes) else entry_id.encode()
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
            members = self._identities.resolve(heard_identities)
            # One batch per member and entry: [entry id, latest time, sightings]. Rows come grouped by entry.
            by_member = work.by_member
            current: bytes | None = None
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

    def _advance(self, state: MemberState, batches: list[Batch],
                 now: float) -> list[Transition]:
        """Observe a member's new batches of this chunk and update presence once per second of their time.

        Batches within a second of each other share one update (the costly part); a backlog that
        spans minutes is still replayed second by second, so dwell and exits keep their times.
        """
        engine = self.engine
        observe = engine.observe
        out: list[Transition] = []
        group_start = group_latest = 0.0
        fresh_batches, fresh_since = 0, math.inf
        for entry_id, t_max, rows in batches:
            if state.has_applied(entry_id):
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
            state.mark_applied(entry_id)
        if group_latest:
            out.extend(engine.update(state, group_latest, fresh_batches, fresh_since if fresh_batches else None))
        elif not batches:  # a sweep: time passes without sightings
            out.extend(engine.update(state, now))
        return out

    def _apply(self, by_member: dict[int, list[Batch]], health: effects.Health, now: float) -> None:
        """Advance the members' states in memory; commit at once those with news (and health when due)."""
        states = self._states
        missing = [m for m in by_member if m not in states]
        if missing:
            self._load(missing)
        news = []
        for member_id, batches in by_member.items():
            state = states[member_id]
            new = self._advance(state, batches, now)
            if new:
                self.stats.transitions += len(new)
                state.outbox.extend(new)
            self._unsaved.setdefault(member_id, []).extend(batches)
            if state.outbox:
                news.append(member_id)
        if news or effects.health_due(health, self._health_written, now):
            self._commit(news, health, now)

    def _load(self, members: list[int]) -> None:
        for member_id, value in zip(members, self.redis.mget([state_key(m) for m in members]), strict=True):
            self._states[member_id] = _parse_state(value)

    def _commit(self, members: list[int], health: effects.Health, now: float) -> None:
        """Save the members' states, then write the effects of their transitions (and fleet health when due)."""
        states = self._states
        pending = members
        for _attempt in range(8):
            if not pending:
                break
            saved = self._save([(m, states[m], states[m].to_bytes()) for m in pending])
            stale = [m for m, ok in zip(pending, saved, strict=True) if not ok]
            if stale:
                # Saved by someone else since we loaded them: apply our batches again to their state.
                self.stats.conflicts += len(stale)
                self._load(stale)
                for member_id in stale:
                    state = states[member_id]
                    new = self._advance(state, self._unsaved[member_id], now)
                    self.stats.transitions += len(new)
                    state.outbox.extend(new)
            pending = stale
        if pending:  # still contended after several rounds: their entries stay unacknowledged
            raise RuntimeError(f"member states kept changing under this worker: {sorted(pending)[:5]}")
        rt = self.rt
        with_outbox = [m for m in members if states[m].outbox]
        if with_outbox or effects.health_due(health, self._health_written, now):
            outcome = effects.Outcome()
            written = dict(self._health_written)  # what write_health marks counts only once committed
            with rt.sessions.begin() as session:
                for member_id in with_outbox:
                    effects.apply_transitions(session, rt.settings, self.engine.registry, self._sale_items,
                                              member_id, states[member_id].outbox, outcome)
                effects.write_health(session, health, written, now)
            self._health_written = written
            effects.publish(self.redis, outcome)
        timeout = self._config.exit_timeout_s
        changes: list[tuple[int, MemberState, bytes]] = []
        deadlines: dict[int, float] = {}
        gone: list[int] = []
        for member_id in members:
            state = states[member_id]
            del self._unsaved[member_id]
            if state.outbox:
                state.outbox = []
                changes.append((member_id, state, state.to_bytes() if state.present() else b""))
            elif not state.present():
                changes.append((member_id, state, b""))
            deadline = state.deadline(timeout)
            if deadline is None:
                gone.append(member_id)
                del states[member_id]
            else:
                deadlines[member_id] = deadline
        # A state someone else saved meanwhile keeps its outbox there; its effects are idempotent.
        self._save(changes)
        pipe = self.redis.pipeline(transaction=False)
        if gone:
            pipe.zrem(DEADLINES, *gone)
        if deadlines:
            pipe.zadd(DEADLINES, deadlines)
        pipe.execute()

    def _save(self, changes: list[tuple[int, MemberState, bytes]]) -> list[int]:
        """Compare-and-set (member, state, binary form; empty deletes) on the versions in one call; 1 where saved.

        A state's first version is random, not 1: a member whose state was deleted and made again
        elsewhere must not match the version a stale copy in some worker's memory still has.
        """
        if not changes:
            return []
        args: list[int | bytes] = [STATE_TTL_S]
        versions = []
        for _, state, body in changes:
            version = state.version + 1 if state.version else random.randrange(1, 2**48)
            versions.append(version)
            args += (state.version, b"%d|%s" % (version, body) if body else b"")
        saved = self._cas(keys=[state_key(m) for m, _, _ in changes], args=args)
        for (_, state, _), version, ok in zip(changes, versions, saved, strict=True):
            if ok:
                state.version = version
        return saved

    def flush(self) -> None:
        """Save every state changed since its last save, then acknowledge the entries applied."""
        self._last_flush = time.monotonic()
        if self._unsaved:
            self._commit(list(self._unsaved), effects.Health(), self.rt.now().timestamp())
        if self._unacked:
            pipe = self.redis.pipeline(transaction=False)
            for partition, entries in self._unacked.items():
                self.ack(stream(partition), (entry_id for entry_id, _ in entries), pipe)
            pipe.execute()
            acked, hist = time.time(), self.stats.ack_hist
            for entries in self._unacked.values():
                for _, at in entries:
                    hist[bisect.bisect_left(LATENCY_EDGES_MS, (acked - at) * 1000)] += 1
            self._unacked.clear()
        if len(self._states) > CACHE_MAX:
            self._states.clear()  # all saved: they load again when next heard

    def publish_stats(self) -> dict[str, float]:
        """Counters and latency percentiles since the last call, also written to Redis for operators."""
        s = self.stats
        lat = sorted(s.latency_ms)
        edges = (*LATENCY_EDGES_MS, "inf")
        out = {"entries": s.entries, "sightings": s.sightings, "transitions": s.transitions,
               "conflicts": s.conflicts, "unknown_beacons": s.unknown_beacons, "claimed": s.claimed,
               "dead_lettered": self.dead_lettered, "groups_lost": self.groups_lost,
               "partitions": len(self.leases.held), "cached_states": len(self._states),
               "latency_p50_ms": lat[len(lat) // 2] if lat else 0.0,
               "latency_p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0,
               **{f"latency_le_{edge}": n for edge, n in zip(edges, s.latency_hist, strict=True)},
               **{f"ack_le_{edge}": n for edge, n in zip(edges, s.ack_hist, strict=True)}}
        self.redis.hset(stats_key(self.consumer), mapping=out)
        self.redis.expire(stats_key(self.consumer), 3600)
        s.latency_ms = []
        return out


def stats_line(stats: dict[str, float]) -> str:
    """The periodic log line's message: the key numbers readable in the text format (json also has ``stats``)."""
    return (f"proximity worker: {stats['entries']} entries, {stats['sightings']} sightings, "
            f"{stats['transitions']} transitions, latency p50 {stats['latency_p50_ms']:.0f} ms "
            f"p99 {stats['latency_p99_ms']:.0f} ms, {stats['partitions']} partitions")


def _parse_state(value: bytes | None) -> MemberState:
    if value is None:
        return MemberState()
    version, _, body = value.partition(b"|")
    return MemberState.from_bytes(body, int(version))


def _arguments(parser: argparse.ArgumentParser) -> None:
    consumer_arguments(parser, count=200, count_help="stream entries read per partition per step")
    parser.add_argument("--flush-every", type=float, default=1.0,
                        help="seconds between saves of the member states kept in memory (and acknowledgements)")
    parser.add_argument("--stats-interval", type=float, default=10.0, help="seconds between stats log lines")


def _run(rt: Runtime, args: argparse.Namespace, stop: threading.Event) -> None:
    worker = Worker(rt, args.consumer, count=args.count, block_ms=args.block_ms, claim_idle_ms=args.claim_idle_ms,
                    flush_every_s=args.flush_every, stats_every_s=args.stats_interval,
                    max_deliveries=args.max_deliveries)
    log.info("proximity worker %s consuming", worker.consumer)
    worker.run(stop)


PROCESS = Process("worker", "Turn beacon sightings into presence, check-ins and proximity events (run as many as "
                  "the load needs: they share the stream's partitions by lease).", _run, _arguments)
