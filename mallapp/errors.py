"""The one error tree of mallapp.

Domain code raises these; only the API layer maps them to HTTP statuses::

    MallError                       (base, code "mall.error")
     ├── InvalidInput               400  bad body, bad field, bad parameter
     ├── Unauthorized               401  no or bad credentials
     ├── Forbidden                  403  known caller, not allowed
     ├── NotFound                   404
     ├── Conflict                   409  clashes with what already happened
     ├── PayloadTooLarge            413
     ├── RuleViolation              422  well-formed, but a business rule says no
     │    └── FitError                   a lifetime-value model cannot be fitted (codes clv.fit.*)
     ├── RateLimited                429
     ├── UpstreamError              502  WeChat or another upstream failed
     └── ServiceUnavailable         503  our own Redis or database is unreachable (retry later)

The car park's refusals (codes ``carpark.*``: PlateNotFound, AlreadyPaid, OrderReused, BillChanged,
AmountMismatch, SignatureRefused, CarParkUnavailable) subclass these, at the end of this module, and
so do WeChat Pay's (codes ``wechatpay.*``: WeChatPayUnavailable, WeChatPayRefused, WeChatPayOrderNotFound,
WeChatPaySignatureInvalid).

Every error carries a stable dotted ``code`` (``points.insufficient``) that clients may
switch on, a human ``message``, and optional ``details`` that are safe to show.
"""

from __future__ import annotations

from typing import Any


class MallError(Exception):
    """Base of every error mallapp raises on purpose."""

    status = 400
    code = "mall.error"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class InvalidInput(MallError):
    status = 400
    code = "request.invalid"


class Unauthorized(MallError):
    status = 401
    code = "auth.required"


class Forbidden(MallError):
    status = 403
    code = "auth.forbidden"


class NotFound(MallError):
    status = 404
    code = "not_found"


class Conflict(MallError):
    status = 409
    code = "conflict"


class PayloadTooLarge(MallError):
    status = 413
    code = "request.too_large"


class RuleViolation(MallError):
    status = 422
    code = "rule.violation"


class FitError(RuleViolation):
    """A lifetime-value model cannot be fitted to the data (mallapp.domain.clv: no repeat buyers, no
    convergence, a parameter the data do not determine); never parameters that are silently wrong."""

    code = "clv.fit.failed"


class RateLimited(MallError):
    status = 429
    code = "rate_limited"


class UpstreamError(MallError):
    status = 502
    code = "upstream.unavailable"


class ServiceUnavailable(MallError):
    """Redis or the database cannot be reached: not the caller's fault, and worth retrying later.

    The web app raises it (mallapp.api.app) from a connection-level failure, with ``Retry-After``.
    """

    status = 503
    code = "service.unavailable"


class Unconfigured(ServiceUnavailable):
    """An outside system the call needs (a car park, WeChat Pay) is not configured on this installation.

    Not an outage: the operations that can meet it list its code among their own errors, apart from
    the database and Redis codes every operation can answer.
    """

    code = "service.unconfigured"


# The car-park system's refusals (mallapp.adapters.carpark re-exports them; vendor modules map their codes).

class PlateNotFound(NotFound):
    code = "carpark.plate_not_found"


class AlreadyPaid(Conflict):
    code = "carpark.already_paid"


class OrderReused(Conflict):
    code = "carpark.order_reused"


class BillChanged(Conflict):
    code = "carpark.bill_changed"


class AmountMismatch(RuleViolation):
    code = "carpark.amount_mismatch"


class SignatureRefused(UpstreamError):
    code = "carpark.signature_refused"


class CarParkUnavailable(UpstreamError):
    code = "carpark.unavailable"


# WeChat Pay's answers (mallapp.adapters.wechatpay re-exports them; wechatpay_v3 maps WeChat Pay's codes).

class WeChatPayUnavailable(UpstreamError):
    """Timeout, refused connection, 5xx or 429, an answer that is garbled or whose signature does not verify."""

    code = "wechatpay.unavailable"


class WeChatPayRefused(UpstreamError):
    """WeChat Pay answered an error code (details: ``wechatpay_code`` such as ORDERPAID, ``message``, ``status``)."""

    code = "wechatpay.refused"


class WeChatPayOrderNotFound(NotFound):
    code = "wechatpay.order_not_found"


class WeChatPaySignatureInvalid(InvalidInput):
    """A notification whose signature, serial, timestamp window or encrypted resource does not verify."""

    code = "wechatpay.signature_invalid"
