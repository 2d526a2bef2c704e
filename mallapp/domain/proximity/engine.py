"""The proximity engine: sightings of one member in, presence transitions out. Pure and fast.

Per member and anchor (a beacon the phone hears, or a gateway that hears the phone) the engine
keeps a time window of RSSI readings. After each batch it filters each window
(:mod:`mallapp.domain.proximity.locate`), turns it into a distance with the anchor's calibrated
measured power, and updates presence with hysteresis:

- a zone is *entered* when one of its anchors is within the zone's enter distance, *dwelt in*
  once the member has stayed within ``exit_distance_factor`` x that distance for the dwell time,
  and *left* once the member has not been that near for ``exit_timeout_s`` (30 s);
- the mall is entered after ``checkin_min_updates`` batches in a row spanning at least
  ``checkin_min_span_s`` (one packet, or one burst, is not enough) in which an *interior* anchor
  (one not in an entrance zone) is heard at or above ``checkin_interior_min_db`` on a robust filter
  (:mod:`mallapp.domain.proximity.entrance`: a passer-by hears the entrance, not the inside), and
  left after ``exit_timeout_s`` without a fresh sighting of any anchor;
- a reading that repeats the previous one exactly ``stale_repeats`` times in a row on the phone
  channel is Android's cached entry for a beacon it no longer hears: it is not fresh and does
  not keep the member present.

Times are the sightings' own (unix seconds), so replays and late batches give the same answers.
The state of a member round-trips through :meth:`MemberState.to_bytes` for Redis.
"""

from __future__ import annotations

import bisect
import math
import struct
from array import array
from dataclasses import dataclass
from typing import Any, NamedTuple

from mallapp.domain.proximity import entrance
from mallapp.domain.proximity.floorplan import FloorPlan, Geometry
from mallapp.domain.proximity.locate import (
    FILTERS,
    LocateParams,
    Locator,
    Reading,
    params_for_plan,
    weighted_centroid,
)
from mallapp.domain.venue import Registry
from mallapp.settings import BeaconSettings

MALL_ENTER, MALL_EXIT, ZONE_ENTER, ZONE_DWELL, ZONE_EXIT = "mall_enter", "mall_exit", "zone_enter", "zone_dwell", \
    "zone_exit"
APPLIED_BYTES = 1024  # the applied entry ids a state keeps: about sixty


class Transition(NamedTuple):
    """A change of presence: ``at`` when it happened, ``since`` when the stay began (both unix seconds)."""

    kind: str
    zone_id: int  # 0 for the mall
    at: float
    since: float


@dataclass(frozen=True)
class EngineConfig:
    """The engine's parameters; these defaults are AltBeacon's filter and free-space loss, the configured
    ones (``from_settings``, ``[beacons]``) are what the evaluation on recorded data chose."""

    rssi_filter: str = "trimmed_mean"
    window_s: float = 10.0
    path_loss_exponent: float = 2.0
    exit_timeout_s: float = 30.0
    stale_repeats: int = 3
    dwell_s: tuple[tuple[str, float], ...] = (("store", 20.0), ("item", 10.0), ("area", 60.0), ("entrance", 0.0))
    enter_m: tuple[tuple[str, float], ...] = (("store", 5.0), ("item", 2.0), ("area", 8.0), ("entrance", 8.0))
    exit_distance_factor: float = 1.5
    checkin_min_updates: int = 3
    checkin_min_span_s: float = 5.0
    # Interior confirmation (see mallapp.domain.proximity.entrance); False: any sighting counts.
    checkin_require_interior: bool = True
    checkin_interior_filter: str = "trimmed_mean"
    checkin_interior_min_db: float = -20.0
    checkin_interior_min_readings: int = 3

    @classmethod
    def from_settings(cls, b: BeaconSettings) -> EngineConfig:
        signal, z = b.signal, b.zones
        return cls(rssi_filter=signal.rssi_filter, window_s=signal.filter_window_s,
                   path_loss_exponent=signal.path_loss_exponent, exit_timeout_s=z.exit_timeout_s,
                   stale_repeats=signal.stale_repeats,
                   dwell_s=(("store", z.dwell_store_s), ("item", z.dwell_item_s), ("area", z.dwell_area_s),
                            ("entrance", 0.0)),
                   enter_m=(("store", z.enter_store_m), ("item", z.enter_item_m), ("area", z.enter_area_m),
                            ("entrance", z.enter_area_m)),
                   exit_distance_factor=z.exit_distance_factor, checkin_min_updates=b.checkin.min_updates,
                   checkin_min_span_s=b.checkin.min_span_s, checkin_require_interior=b.checkin.require_interior,
                   checkin_interior_filter=b.checkin.interior_filter,
                   checkin_interior_min_db=b.checkin.interior_min_db,
                   checkin_interior_min_readings=b.checkin.interior_min_readings)


class Track:
    """The recent readings of one anchor for one member."""

    __slots__ = ("times", "rssis", "power", "last_rssi", "repeats", "fresh", "heard")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.rssis: list[int] = []
        self.power: int | None = None  # measured power the frame advertised (gateway channel)
        self.last_rssi = 0
        self.repeats = 0
        self.fresh = 0.0  # time of the latest fresh reading
        self.heard = 0.0  # time of the latest reading, stale or not (the track is kept while it repeats)


class Stay:
    __slots__ = ("entered", "last_near", "dwelt")

    def __init__(self, entered: float, last_near: float, dwelt: bool = False) -> None:
        self.entered = entered
        self.last_near = last_near
        self.dwelt = dwelt


class MemberState:
    """Everything the engine remembers about one member; small, and serialisable for Redis."""

    __slots__ = ("tracks", "zones", "clock", "mall_entered", "mall_last", "cand_since", "cand_last", "cand_updates",
                 "applied", "outbox", "version")

    def __init__(self) -> None:
        self.tracks: dict[int, Track] = {}
        self.zones: dict[int, Stay] = {}
        self.clock = 0.0
        self.mall_entered: float | None = None
        self.mall_last = 0.0
        self.cand_since: float | None = None
        self.cand_last = 0.0
        self.cand_updates = 0
        self.applied = b";"  # the last stream entries applied (see has_applied), so a redelivery is not applied twice
        self.outbox: list[Transition] = []  # transitions whose effects may not be durable yet
        self.version = 0

    def has_applied(self, entry_id: bytes) -> bool:
        return b";%s;" % entry_id in self.applied

    def mark_applied(self, entry_id: bytes) -> None:
        """Remember an entry as applied, keeping about the last APPLIED_BYTES of ids.

        The ids stay one ';'-separated byte string: decoding and encoding some sixty ids on every
        load and save of a state cost the worker a quarter of its time.
        """
        applied = self.applied + entry_id + b";"
        if len(applied) > APPLIED_BYTES:
            applied = applied[applied.index(b";", len(applied) - APPLIED_BYTES):]
        self.applied = applied

    def present(self) -> bool:
        return bool(self.tracks or self.zones or self.mall_entered is not None or self.outbox)

    def deadline(self, exit_timeout_s: float) -> float | None:
        """When a transition may be due with no further sightings (for the sweeper), or None."""
        times = [stay.last_near for stay in self.zones.values()]
        if self.mall_entered is not None:
            times.append(self.mall_last)
        times.extend(track.heard for track in self.tracks.values())
        return min(times) + exit_timeout_s if times else None

    def to_wire(self) -> list[Any]:
        return [self.clock, self.mall_entered, self.mall_last, self.cand_since, self.cand_last, self.cand_updates,
                [[a, t.power, t.last_rssi, t.repeats, t.fresh, t.heard, t.times, t.rssis]
                 for a, t in self.tracks.items()],
                [[z, s.entered, s.last_near, s.dwelt] for z, s in self.zones.items()],
                self.applied, [list(tr) for tr in self.outbox]]

    def to_bytes(self) -> bytes:
        """The compact binary form kept in Redis (JSON of float lists cost the worker a third of its time)."""
        nan = math.nan
        out = [_HEAD.pack(self.clock, nan if self.mall_entered is None else self.mall_entered, self.mall_last,
                          nan if self.cand_since is None else self.cand_since, self.cand_last, self.cand_updates,
                          len(self.tracks), len(self.zones), len(self.applied), len(self.outbox))]
        for anchor_id, t in self.tracks.items():
            out.append(_TRACK.pack(anchor_id, _NO_POWER if t.power is None else t.power, t.last_rssi, t.repeats,
                                   t.fresh, t.heard, len(t.times)))
            out.append(array("d", t.times).tobytes())
            out.append(array("b", t.rssis).tobytes())
        for zone_id, stay in self.zones.items():
            out.append(_ZONE.pack(zone_id, stay.entered, stay.last_near, stay.dwelt))
        out.append(self.applied)
        for tr in self.outbox:
            out.append(_OUT.pack(_KIND_CODE[tr.kind], tr.zone_id, tr.at, tr.since))
        return b"".join(out)

    @classmethod
    def from_bytes(cls, data: bytes, version: int = 0) -> MemberState:
        state = cls()
        (state.clock, entered, state.mall_last, cand_since, state.cand_last, state.cand_updates, n_tracks, n_zones,
         n_applied, n_outbox) = _HEAD.unpack_from(data, 0)
        state.mall_entered = None if math.isnan(entered) else entered
        state.cand_since = None if math.isnan(cand_since) else cand_since
        at = _HEAD.size
        for _ in range(n_tracks):
            anchor_id, power, last_rssi, repeats, fresh, heard, n = _TRACK.unpack_from(data, at)
            at += _TRACK.size
            track = state.tracks[anchor_id] = Track()
            track.power = None if power == _NO_POWER else power
            track.last_rssi, track.repeats, track.fresh, track.heard = last_rssi, repeats, fresh, heard
            times = array("d")
            times.frombytes(data[at:at + 8 * n])
            at += 8 * n
            rssis = array("b")
            rssis.frombytes(data[at:at + n])
            at += n
            track.times, track.rssis = times.tolist(), rssis.tolist()
        for _ in range(n_zones):
            zone_id, entered_at, last_near, dwelt = _ZONE.unpack_from(data, at)
            at += _ZONE.size
            state.zones[zone_id] = Stay(entered_at, last_near, bool(dwelt))
        state.applied = data[at:at + n_applied]
        at += n_applied
        for _ in range(n_outbox):
            code, zone_id, t_at, since = _OUT.unpack_from(data, at)
            at += _OUT.size
            state.outbox.append(Transition(_KINDS[code], zone_id, t_at, since))
        state.version = version
        return state


# The binary layout of MemberState.to_bytes (little-endian, fixed sizes).
_HEAD = struct.Struct("<dddddIHHHB")
_TRACK = struct.Struct("<ibbHddH")
_ZONE = struct.Struct("<iddB")
_OUT = struct.Struct("<Bidd")
_NO_POWER = -128
_KINDS = (MALL_ENTER, MALL_EXIT, ZONE_ENTER, ZONE_DWELL, ZONE_EXIT)
_KIND_CODE = {kind: i for i, kind in enumerate(_KINDS)}


class Engine:
    """Applies sightings to member states against one registry snapshot."""

    def __init__(self, config: EngineConfig, registry: Registry, floor_plans: dict[int, FloorPlan] | None = None,
                 locate: LocateParams | None = None) -> None:
        self.config = config
        self.registry = registry
        # For position() only: the floor plans by floor (optional) and the position model.
        self._floor_plans = dict(floor_plans or {})
        self._locate = locate or LocateParams()
        self._locators: dict[int, Locator] = {}
        self._filter = FILTERS[config.rssi_filter]
        self._dwell = dict(config.dwell_s)
        self._enter = dict(config.enter_m)
        # Per anchor, what update() needs, resolved once: (zone id or None, measured power or None).
        self._anchor_zone = {a.id: (a.zone_id, a.measured_power) for a in registry.anchors.values()}
        # The anchors of entrance zones: they never confirm that a member is inside (entrance.py).
        self._entrance_anchors = frozenset(
            a.id for a in registry.anchors.values()
            if a.zone_id is not None and a.zone_id in registry.zones and registry.zones[a.zone_id].kind == "entrance")
        self._interior_filter = entrance.ENTRANCE_FILTERS[config.checkin_interior_filter]
        self._zone_limits = {
            z.id: (z.enter_m if z.enter_m is not None else self._enter.get(z.kind, 5.0),
                   float(z.dwell_seconds) if z.dwell_seconds is not None else self._dwell.get(z.kind, 20.0))
            for z in registry.zones.values()}

    def observe(self, state: MemberState, anchor_id: int, rssi: int, t: float, power: int | None = None,
                phone: bool = True) -> bool:
        """Add one reading; False when it is Android's stale repeat and does not count as fresh."""
        track = state.tracks.get(anchor_id)
        if track is None:
            track = state.tracks[anchor_id] = Track()
        if t > track.heard:
            track.heard = t
        if phone and rssi == track.last_rssi:
            track.repeats += 1
            if track.repeats >= self.config.stale_repeats:
                return False
        else:
            track.last_rssi = rssi
            track.repeats = 1
        times = track.times
        if not times or t >= times[-1]:
            times.append(t)
            track.rssis.append(rssi)
        else:  # a late batch: keep the window in time order
            at = bisect.bisect_right(times, t)
            times.insert(at, t)
            track.rssis.insert(at, rssi)
        if t > track.fresh:
            track.fresh = t
        if power is not None:
            track.power = power
        return True

    def distances(self, state: MemberState) -> dict[int, float]:
        """Filtered distance in metres per anchor with readings in the window."""
        exponent10 = 10.0 * self.config.path_loss_exponent
        out = {}
        for anchor_id, track in state.tracks.items():
            if not track.rssis:
                continue
            _zone, power = self._anchor_zone.get(anchor_id, (None, None))
            power = power if power is not None else track.power
            if power is None:
                continue
            out[anchor_id] = 10.0 ** ((power - self._filter(track.rssis)) / exponent10)
        return out

    def update(self, state: MemberState, now: float, fresh_batches: int = 0,
               fresh_since: float | None = None) -> list[Transition]:
        """Bring presence up to ``now`` after batches (``fresh_batches`` of them, the first at ``fresh_since``,
        had fresh sightings) or a sweep."""
        cfg = self.config
        if now < state.clock:
            now = state.clock
        state.clock = now
        timeout = cfg.exit_timeout_s
        horizon = now - cfg.window_s
        exponent10 = 10.0 * cfg.path_loss_exponent
        anchor_zone = self._anchor_zone
        filt = self._filter
        near: dict[int, float] = {}
        last_fresh = 0.0
        tracks = state.tracks
        for anchor_id in list(tracks):
            track = tracks[anchor_id]
            if now - track.fresh > timeout:
                if now - track.heard > timeout:
                    del tracks[anchor_id]
                else:  # only stale repeats lately: remember them, but they place the member nowhere
                    track.times.clear()
                    track.rssis.clear()
                continue
            if track.fresh > last_fresh:
                last_fresh = track.fresh
            times = track.times
            if times and times[0] < horizon:
                cut = bisect.bisect_left(times, horizon)
                del times[:cut]
                del track.rssis[:cut]
            if not times:
                continue
            zone_id, power = anchor_zone.get(anchor_id, (None, None))
            if zone_id is None:
                continue
            if power is None:
                power = track.power
                if power is None:
                    continue
            distance = 10.0 ** ((power - filt(track.rssis)) / exponent10)
            if distance < near.get(zone_id, 1e9):
                near[zone_id] = distance

        out: list[Transition] = []
        limits = self._zone_limits
        factor = cfg.exit_distance_factor
        zones = state.zones
        for zone_id in list(zones):
            stay = zones[zone_id]
            enter_m, dwell_s = limits.get(zone_id, (0.0, 0.0))
            distance = near.get(zone_id)
            if distance is not None and distance <= enter_m * factor:
                stay.last_near = now
            if not stay.dwelt and stay.last_near - stay.entered >= dwell_s and zone_id in limits:
                stay.dwelt = True
                out.append(Transition(ZONE_DWELL, zone_id, stay.last_near, stay.entered))
            if now - stay.last_near > timeout or zone_id not in limits:
                del zones[zone_id]
                out.append(Transition(ZONE_EXIT, zone_id, stay.last_near, stay.entered))
        for zone_id, distance in near.items():
            if zone_id in zones:
                continue
            enter_m, dwell_s = limits[zone_id]
            if distance <= enter_m:
                stay = zones[zone_id] = Stay(now, now)
                out.append(Transition(ZONE_ENTER, zone_id, now, now))
                if dwell_s <= 0:
                    stay.dwelt = True
                    out.append(Transition(ZONE_DWELL, zone_id, now, now))

        if state.mall_entered is None:
            if fresh_batches:
                first = now if fresh_since is None else min(fresh_since, now)
                confirmed = not cfg.checkin_require_interior or self._confirms_inside(state)
                (state.cand_since, state.cand_last, state.cand_updates), entered = entrance.step(
                    (state.cand_since, state.cand_last, state.cand_updates), now, first, fresh_batches, confirmed,
                    timeout, cfg.checkin_min_updates, cfg.checkin_min_span_s)
                if entered and state.cand_since is not None:
                    state.mall_entered, state.mall_last = state.cand_since, now
                    state.cand_since, state.cand_updates = None, 0
                    out.append(Transition(MALL_ENTER, 0, now, state.mall_entered))
            elif state.cand_since is not None and now - state.cand_last > timeout:
                state.cand_since, state.cand_updates = None, 0
        else:
            if last_fresh > state.mall_last:
                state.mall_last = last_fresh
            if now - state.mall_last > timeout:
                out.append(Transition(MALL_EXIT, 0, state.mall_last, state.mall_entered))
                state.mall_entered = None
        return out

    def _confirms_inside(self, state: MemberState) -> bool:
        """Whether the member's interior level confirms inside (entrance.interior_level and entrance.confirms, over
        the anchors not at an entrance, stopping at the first that confirms)."""
        entrance_anchors, anchor_zone = self._entrance_anchors, self._anchor_zone
        filt, least, min_db = self._interior_filter, self.config.checkin_interior_min_readings, \
            self.config.checkin_interior_min_db
        for anchor_id, track in state.tracks.items():
            if len(track.rssis) < least or anchor_id in entrance_anchors:
                continue
            power = anchor_zone.get(anchor_id, (None, None))[1]
            if power is None:
                power = track.power
                if power is None:
                    continue
            if filt(track.rssis) - power >= min_db:
                return True
        return False

    def readings(self, state: MemberState) -> list[Reading]:
        """Filtered readings of the anchors with a known position: (x, y, rssi, measured power)."""
        anchors = self.registry.anchors
        out = []
        for anchor_id, track in state.tracks.items():
            anchor = anchors.get(anchor_id)
            power = anchor.measured_power if anchor is not None and anchor.measured_power is not None else track.power
            if anchor is None or power is None or not track.rssis:
                continue
            out.append((anchor.x, anchor.y, self._filter(track.rssis), float(power)))
        return out

    def position(self, state: MemberState) -> tuple[float, float] | None:
        """The member's estimated position on the floor plan, or None without readings (see :meth:`place`)."""
        placed = self.place(state)
        return None if placed is None else (placed[1], placed[2])

    def place(self, state: MemberState) -> tuple[int, float, float] | None:
        """The member's floor and estimated position on it, (floor, x, y), or None without readings.

        On the floor of the strongest calibrated reading, from that floor's readings: with that floor's
        plan, the model of :class:`mallapp.domain.proximity.locate.Locator` (about 2.5 ms with twenty anchors
        heard: call it when a position is wanted, not after every batch); without one, the weighted
        centroid it would start from (15 us). A plan with an outline but no obstacles gets the model's
        no-walls variant (``locate.params_for_plan``), which does no worse than that centroid.
        """
        anchors = self.registry.anchors
        by_floor: dict[int, list[Reading]] = {}
        best: tuple[float, int] | None = None
        for anchor_id, track in state.tracks.items():
            anchor = anchors.get(anchor_id)
            if anchor is None or not track.rssis:
                continue
            power = anchor.measured_power if anchor.measured_power is not None else track.power
            if power is None:
                continue
            rssi = self._filter(track.rssis)
            by_floor.setdefault(anchor.floor, []).append((anchor.x, anchor.y, rssi, float(power)))
            if best is None or rssi - power > best[0]:
                best = (rssi - power, anchor.floor)
        if best is None:
            return None
        floor = best[1]
        plan = self._floor_plans.get(floor)
        if plan is None:
            x, y = weighted_centroid(by_floor[floor], self._locate.k, self._locate.sharpness)
            return floor, x, y
        locator = self._locators.get(floor)
        if locator is None:
            locator = self._locators[floor] = Locator(Geometry(plan, self._locate.step_m),
                                                        params_for_plan(plan, self._locate))
        x, y = locator.estimate(by_floor[floor])
        return floor, x, y
