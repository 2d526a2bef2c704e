"""The car park and WeChat Pay as a parking payment needs them (:class:`mallapp.domain.parking.payments.Outside`).

Turns the payment's plain item dicts into the car park's :class:`~mallapp.adapters.carpark.Item` list
and WeChat Pay's values into the domain's, so the domain imports no adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from mallapp.adapters.carpark import Bill, CarPark, Item
from mallapp.adapters.wechatpay import PayClient
from mallapp.domain.parking.payments import PayState, Receipt


class ParkingOutside:
    """One per call site: ``ParkingOutside(rt.carpark, lambda: rt.wechatpay)``."""

    def __init__(self, carpark: Callable[[str], CarPark], wechatpay: Callable[[], PayClient]) -> None:
        self._carpark = carpark
        self._wechatpay = wechatpay

    def bill(self, vendor_park_code: str, plate: str) -> Bill:
        return self._carpark(vendor_park_code).query_bill(plate)

    def pay_carpark(self, vendor_park_code: str, *, plate: str, order_no: str, order_id: str, paid_fen: int,
                    items: Sequence[dict[str, Any]]) -> Receipt:
        lines = [Item(code=i["code"], name=i["name"], fen=i["fen"], seconds=i["seconds"]) for i in items]
        payment = self._carpark(vendor_park_code).pay(plate=plate, order_no=order_no, order_id=order_id,
                                                      paid_fen=paid_fen, items=lines)
        return Receipt(payment.trade_no, payment.paid_at)

    def create_order(self, *, order_id: str, description: str, total_fen: int, openid: str | None,
                     expires_at: datetime) -> dict[str, Any]:
        pay = self._wechatpay()
        if openid:
            prepay = pay.create_jsapi_order(out_trade_no=order_id, description=description, total_fen=total_fen,
                                            openid=openid, expires_at=expires_at)
        else:
            prepay = pay.create_native_order(out_trade_no=order_id, description=description, total_fen=total_fen,
                                             expires_at=expires_at)
        return {"jsapi": prepay.jsapi, "code_url": prepay.code_url}

    def query_order(self, order_id: str) -> PayState:
        order = self._wechatpay().query_order(order_id)
        return PayState(paid=order.trade_state == "SUCCESS", total_fen=order.total_fen,
                        transaction_id=order.transaction_id, success_time=order.success_time)

    def close_order(self, order_id: str) -> None:
        self._wechatpay().close_order(order_id)

    def refund(self, *, order_id: str, refund_no: str, refund_fen: int, total_fen: int, reason: str) -> str:
        return self._wechatpay().refund(out_trade_no=order_id, out_refund_no=refund_no, refund_fen=refund_fen,
                                        total_fen=total_fen, reason=reason).status


def pay_state(order: Any) -> PayState:
    """A verified notification's order as the domain reads it."""
    return PayState(paid=order.trade_state == "SUCCESS", total_fen=order.total_fen,
                    transaction_id=order.transaction_id, success_time=order.success_time)
