"""The Flask application factory: the web adapter over mallapp's domain services."""

from __future__ import annotations

import logging
import re
import secrets
import time

from flask import Flask, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import IntegerConverter, Map

from mallapp import consoles, logs
from mallapp.api import (
    campaigns,
    carpark_notify,
    coupons,
    deals,
    desk,
    directory,
    floor_map,
    floors,
    host,
    members,
    merchant,
    merchant_desk,
    merchant_parking,
    meta,
    notifications,
    ops,
    ops_accounts,
    ops_insight,
    outages,
    parking_admin,
    parking_pay,
    parking_reports,
    plates,
    privacy,
    proximity,
    queueing,
    reports,
    reservations,
    routes,
    segments,
    till,
    wayfinding_admin,
)
from mallapp.api.core import error_response
from mallapp.db import MAX_BIG_ID, MAX_ID
from mallapp.errors import MallError, PayloadTooLarge
from mallapp.runtime import Runtime, build_runtime
from mallapp.settings import Settings

_REQUEST_ID = re.compile(r"^[\w\-.]{1,64}$")
access_log = logging.getLogger("mallapp.access")
# Beacon sightings arrive every few seconds from every gateway and open mini-program: most of the
# traffic, and none of it worth a line at INFO. Their accepted ones are DEBUG; a refused one (a gateway
# with a bad key, a malformed batch) and every other request stay INFO.
_QUIET_ACCESS = frozenset({("POST", "/api/v1/sightings"), ("POST", "/api/v1/gateway/sightings")})


def numbers_up_to(limit: int) -> str:
    """A regular expression of the decimal numbers 1..``limit``: ASCII digits, no sign, no leading zero."""
    digits = str(limit)
    size = len(digits)
    shorter = [f"[1-9][0-9]{{0,{size - 2}}}"] if size > 1 else []
    same = [f"{digits[:i]}[{int(i == 0)}-{int(d) - 1}][0-9]{{{size - i - 1}}}"
            for i, d in enumerate(digits) if int(d) > int(i == 0)]
    return "(?:" + "|".join([*shorter, *same, digits]) + ")"


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route: a row id, 1 to the id column's largest (``<int(big=True):...>`` for a BigId).

    Werkzeug's own takes any script's digits (its ``\\d``) and any size, so a larger number reached the
    database as a parameter it refuses (PostgreSQL casts it to the column's type). The bound is in the
    pattern, not in ``to_python``: a larger id matches no route, the 404 of any URL that names nothing
    (a converter's refusal would be a 405 where the path has another method).
    """

    def __init__(self, map: Map, big: bool = False) -> None:
        super().__init__(map, min=1, max=MAX_BIG_ID if big else MAX_ID)
        self.regex = numbers_up_to(MAX_BIG_ID if big else MAX_ID)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    """Create the web app; build the process's runtime unless one is given (tests share one)."""
    runtime = runtime or build_runtime(settings)
    logs.configure(runtime.settings.log_format, runtime.settings.log_level)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.max_body_bytes
    app.json.sort_keys = False
    app.extensions["mallapp"] = runtime
    app.url_map.converters["int"] = IdConverter  # before the blueprints add their rules

    app.register_blueprint(meta.bp)
    app.register_blueprint(members.bp)
    app.register_blueprint(merchant.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(proximity.bp)
    app.register_blueprint(deals.merchant_bp)
    app.register_blueprint(deals.ops_bp)
    app.register_blueprint(coupons.member_bp)
    app.register_blueprint(coupons.till_bp)
    app.register_blueprint(notifications.member_bp)
    app.register_blueprint(notifications.merchant_bp)
    app.register_blueprint(queueing.member_bp)
    app.register_blueprint(queueing.merchant_bp)
    app.register_blueprint(reservations.member_bp)
    app.register_blueprint(reservations.merchant_bp)
    app.register_blueprint(privacy.bp)
    app.register_blueprint(desk.bp)
    app.register_blueprint(campaigns.bp)
    app.register_blueprint(segments.bp)
    app.register_blueprint(reports.bp)
    app.register_blueprint(parking_admin.bp)
    app.register_blueprint(plates.bp)
    app.register_blueprint(carpark_notify.bp)

    app.register_blueprint(parking_reports.bp)

    app.register_blueprint(merchant_parking.merchant_bp)
    app.register_blueprint(merchant_parking.ops_bp)

    app.register_blueprint(parking_pay.bp)
    app.register_blueprint(host.bp)
    app.register_blueprint(till.bp)
    app.register_blueprint(ops_accounts.bp)
    app.register_blueprint(merchant_desk.bp)
    app.register_blueprint(floors.bp)
    app.register_blueprint(ops_insight.bp)
    app.register_blueprint(directory.bp)
    app.register_blueprint(wayfinding_admin.bp)
    app.register_blueprint(wayfinding_admin.public_bp)
    app.register_blueprint(routes.bp)
    app.register_blueprint(floor_map.bp)
    consoles.register(app)
    _install_request_context(app)
    _install_error_handlers(app)
    return app


def _install_request_context(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(8)
        g.started = time.perf_counter()
        logs.request_id.set(g.request_id)

    @app.after_request
    def _finish(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        quiet = (request.method, request.path) in _QUIET_ACCESS and response.status_code < 400
        level = logging.DEBUG if quiet else logging.INFO
        access_log.log(level, "%s %s %s", request.method, request.path, response.status_code, extra={
            "method": request.method, "path": request.path, "status": response.status_code,
            "ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2),
            "member_id": g.get("member_id"), "merchant_id": g.get("merchant_id")})
        return response

    @app.teardown_request
    def _clear(_exc: BaseException | None) -> None:
        logs.request_id.set(None)


def _not_found_message(app: Flask) -> str:
    """What a 404 for a URL no route matches says: which id is not a number when the URL is a route's but for
    a non-numeric id (``/me/reservations/abc``), else that nothing is there."""
    path = request.path
    for rule in app.url_map.iter_rules():
        pattern, ints = "", []
        for i, part in enumerate(re.split(r"(<[^>]+>)", rule.rule)):
            if i % 2 == 0:
                pattern += re.escape(part)
                continue
            converter, _, name = part[1:-1].rpartition(":")
            pattern += f"(?P<{name}>[^/]+)"
            if converter.split("(")[0] == "int":
                ints.append(name)
        found = re.fullmatch(pattern, path) if ints else None
        bad = [name for name in ints if found and not found[name].isdigit()]
        if bad:
            return f"no such URL: {path} ({', '.join(bad)} must be a whole number)"
    return f"no such URL: {request.method} {path}"


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(MallError)
    def _mall_error(exc: MallError):
        return error_response(exc)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc: RequestEntityTooLarge):
        limit = app.config["MAX_CONTENT_LENGTH"]
        return error_response(PayloadTooLarge(f"the body is larger than {limit} bytes"))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name
        if exc.code == 404 and request.url_rule is None:  # Werkzeug's text speaks to someone typing in a browser
            message = _not_found_message(app)
        error = MallError(message, code=f"http.{code}")
        error.status = exc.code or 500
        response, status = error_response(error)
        # Werkzeug's own headers say what to do next (a 405's Allow lists the methods the URL takes);
        # only its Content-Type gives way to the JSON body's.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status

    refusals = outages.throttled_log()

    def _connection_failure(exc: Exception):
        # Redis or the database unreachable: 503 and Retry-After, said in the log once per interval.
        error = outages.classify(exc)
        if error is None:
            return _unexpected(exc)
        refusals.warning(error.code, "%s: answering 503 %s (%s: %s)", error.message.split(";")[0], error.code,
                         type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        response, status = error_response(error)
        response.headers["Retry-After"] = str(error.details["retry_after_s"])
        return response, status

    for handled in outages.HANDLED:
        app.register_error_handler(handled, _connection_failure)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        logging.getLogger("mallapp").exception("unhandled error")
        error = MallError("something went wrong on our side; it has been logged", code="internal")
        error.status = 500
        return error_response(error)
