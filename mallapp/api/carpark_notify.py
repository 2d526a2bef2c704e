"""The car park's webhook: entry and exit notifications, signed by the car park (no token).

Checked in this order, each refusal a JSON error that changes nothing: the body's shape (400), the
app id (403 ``parking.notify_app_unknown``), the signature (403 ``parking.notify_signature``), the
timestamp within ``[carpark] notify_window_s`` (403 ``parking.notify_stale``), the nonce never seen
(409 ``parking.notify_replayed``: kept in Redis longer than the window), the car park known by its
parkCode (404 ``parking.car_park_unknown``). Then the session is opened or closed
(mallapp.domain.parking.sessions) and the car park gets ``{"code": 0, "message": "ok"}``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from flask import Blueprint, request
from pydantic import ConfigDict, Field, StringConstraints

from mallapp.adapters import carpark_open
from mallapp.api.core import Body, Out, operation, runtime, transaction
from mallapp.domain.parking import carparks, sessions
from mallapp.errors import Conflict, Forbidden, InvalidInput, NotFound

bp = Blueprint("carpark_notify", __name__, url_prefix="/api/v1/parking/carpark")

Text = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Millis = Annotated[int, Field(ge=0, le=10**14)]
Fen = Annotated[int, Field(ge=0, le=10**10)]


class NotifyIn(Body):
    """A notification as the car park sends it; fields beyond these are kept for the signature."""

    model_config = ConfigDict(extra="allow", strict=True)
    event: Literal["entry", "exit"]
    plateNo: Annotated[str, StringConstraints(min_length=1, max_length=20)]  # noqa: N815 (the vendor's names)
    orderNo: Text  # noqa: N815
    entryTime: Millis | None = None  # noqa: N815
    exitTime: Millis | None = None  # noqa: N815
    gate: Annotated[str, StringConstraints(max_length=16)] | None = None
    totalAmount: Fen | None = None  # noqa: N815
    payableAmount: Fen | None = None  # noqa: N815
    openedBy: Annotated[str, StringConstraints(max_length=16)] | None = None  # noqa: N815
    appId: Text  # noqa: N815
    parkCode: Text  # noqa: N815
    timestamp: Millis
    nonce: Text
    sign: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class NotifyOut(Out):
    code: int
    message: str


_ERRORS = ("parking.notify_app_unknown", "parking.notify_signature", "parking.notify_stale",
           "parking.notify_replayed", "parking.car_park_unknown", "parking.notify_invalid", "parking.plate_invalid",
           "parking.times_out_of_order")


def _refuse(fields: dict[str, Any], now_s: float) -> None:
    cfg = runtime().settings.carpark
    # Without a configured car-park system ([carpark] app_id, MALL_CARPARK_SECRET) no appId is ours.
    if not cfg.app_id or not cfg.secret or fields.get("appId") != cfg.app_id:
        raise Forbidden("Unknown appId.", code="parking.notify_app_unknown")
    verdict = carpark_open.verify(fields, cfg.secret, now_s, cfg.notify_window_s)
    if verdict == 1001:
        raise Forbidden("The notification's signature does not match.", code="parking.notify_signature")
    if verdict:
        raise Forbidden("The notification's timestamp is outside the window.", code="parking.notify_stale",
                        details={"window_s": cfg.notify_window_s})


def _instant(ms: int | None, what: str) -> datetime:
    if ms is None:
        raise InvalidInput(f"An {what} notification needs {what}Time.", code="parking.notify_invalid")
    return datetime.fromtimestamp(ms / 1000, UTC)


def _record(body: NotifyIn, now: datetime) -> None:
    with transaction() as session:
        car_park = carparks.by_vendor_code(session, body.parkCode)
        if car_park is None:
            raise NotFound("No car park has this parkCode.", code="parking.car_park_unknown")
        if body.event == "entry":
            sessions.record_entry(session, car_park, plate=body.plateNo, order_no=body.orderNo,
                                  entered_at=_instant(body.entryTime, "entry"), gate=body.gate, now=now)
            return
        if body.payableAmount is None:
            raise InvalidInput("An exit notification needs payableAmount.", code="parking.notify_invalid")
        sessions.record_exit(session, car_park, plate=body.plateNo, order_no=body.orderNo,
                             entered_at=_instant(body.entryTime, "entry") if body.entryTime is not None else None,
                             exited_at=_instant(body.exitTime, "exit"), gate=body.gate, gross_fen=body.totalAmount,
                             payable_fen=body.payableAmount, opened_by=body.openedBy or "camera", now=now)


@operation(bp, "/notify", "POST", summary="The car park's signed entry and exit notifications (no token)",
           body=NotifyIn, response=NotifyOut, errors=_ERRORS)
def notify(body: NotifyIn) -> NotifyOut:
    rt = runtime()
    now = rt.now()
    fields = request.get_json()
    _refuse(fields, now.timestamp())
    cfg = rt.settings.carpark
    if not sessions.claim_nonce(rt.redis, cfg.app_id, body.nonce, 2 * cfg.notify_window_s + 60):
        raise Conflict("This notification was received already (its nonce was seen).", code="parking.notify_replayed")
    try:
        _record(body, now)
    except Exception:
        # Not recorded: the car park's retry of the same notification must not look like a replay.
        sessions.release_nonce(rt.redis, cfg.app_id, body.nonce)
        raise
    return NotifyOut(code=0, message="ok")
