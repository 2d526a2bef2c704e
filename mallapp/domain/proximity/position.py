"""Where a member is now, from the state the proximity worker keeps in Redis (for routes from "me").

The worker (mallapp.processes.worker) owns the state and saves it under :func:`state_key` as
``<version>|<the engine's binary form>``; this module reads it and asks the engine where the member is
(:meth:`Engine.place`: the floor of the strongest calibrated reading, and the position on it).
"""

from __future__ import annotations

from redis import Redis
from sqlalchemy.orm import Session

from mallapp.domain.floors import floor_plans as outlined_floors
from mallapp.domain.proximity.engine import Engine, EngineConfig, MemberState
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


def position_engine(session: Session, beacons: BeaconSettings, registry_version: int = 0) -> Engine:
    """An engine on the current venue and the floors as ops outlined them (mallapp.domain.floors), as the worker's
    engine sees them. Building one reads the venue and lays out each floor's lattice (tens of milliseconds on a
    large floor): a caller keeps it while ``registry_version`` stands (every venue or floor change bumps it)."""
    return Engine(EngineConfig.from_settings(beacons), load_registry(session, registry_version),
                  floor_plans=outlined_floors(session))


def current_position(redis: Redis, engine: Engine, member_id: int, now: float) -> tuple[int, float, float] | None:
    """(floor, x, y) of the member now (``now`` in unix seconds), or None: no state, nothing heard within the
    exit timeout (the member has left, or the phone stopped listening), or no calibrated anchor heard."""
    state = load_state(redis, member_id)
    if state is None:
        return None
    heard = max((track.heard for track in state.tracks.values()), default=0.0)
    if now - heard > engine.config.exit_timeout_s:
        return None
    placed = engine.place(state)
    return None if placed is None else (placed[0], float(placed[1]), float(placed[2]))
