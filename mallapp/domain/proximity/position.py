"""Where a member is now, from the state the proximity worker keeps in Redis (for routes from "me").

The worker (mallapp.processes.worker) owns the state and saves it under :func:`state_key` as
``<version>|<the engine's binary form>``; this module reads it and asks the engine for a position, on the
floor of the strongest calibrated reading, the same choice :meth:`Engine.position` makes.
"""

from __future__ import annotations

from redis import Redis
from sqlalchemy.orm import Session

from mallapp.domain.floors import floor_plans as outlined_floors
from mallapp.domain.proximity.engine import Engine, EngineConfig, MemberState
from mallapp.domain.proximity.floorplan import FloorPlan
from mallapp.domain.proximity.locate import FILTERS
from mallapp.domain.venue import load_registry
from mallapp.settings import BeaconSettings

__all__ = ["current_position", "state_key"]


def state_key(member_id: int) -> str:
    """The Redis key of a member's proximity state."""
    return f"proximity:state:{member_id}"


def load_state(redis: Redis, member_id: int) -> MemberState | None:
    raw = redis.get(state_key(member_id))
    if raw is None:
        return None
    version, _, body = raw.partition(b"|")
    return MemberState.from_bytes(body, int(version))


def current_position(session: Session, redis: Redis, beacons: BeaconSettings, member_id: int, now: float,
                     floor_plans: dict[int, FloorPlan] | None = None) -> tuple[int, float, float] | None:
    """(floor, x, y) of the member now (``now`` in unix seconds), or None: no state, nothing heard within the
    exit timeout (the member has left, or the phone stopped listening), or no calibrated anchor heard.
    The floors' plans are the ones ops outlined (mallapp.domain.floors), as the worker's engine uses them."""
    state = load_state(redis, member_id)
    if state is None:
        return None
    config = EngineConfig.from_settings(beacons)
    heard = max((track.heard for track in state.tracks.values()), default=0.0)
    if now - heard > config.exit_timeout_s:
        return None
    plans = outlined_floors(session) if floor_plans is None else floor_plans
    engine = Engine(config, load_registry(session), floor_plans=plans)
    xy = engine.position(state)
    floor = _strongest_floor(engine, state)
    if xy is None or floor is None:
        return None
    return floor, float(xy[0]), float(xy[1])


def _strongest_floor(engine: Engine, state: MemberState) -> int | None:
    """The floor of the strongest calibrated reading (rssi less measured power), as Engine.position picks it."""
    anchors = engine.registry.anchors
    rssi_filter = FILTERS[engine.config.rssi_filter]  # the engine's own filter: the floor position() used
    best: tuple[float, int] | None = None
    for anchor_id, track in state.tracks.items():
        anchor = anchors.get(anchor_id)
        if anchor is None or not track.rssis:
            continue
        power = anchor.measured_power if anchor.measured_power is not None else track.power
        if power is None:
            continue
        margin = rssi_filter(track.rssis) - power
        if best is None or margin > best[0]:
            best = (margin, anchor.floor)
    return None if best is None else best[1]
