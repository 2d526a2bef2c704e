"""What every endpoint shares: the runtime, callers, body parsing, errors and the operation registry.

Each endpoint is declared with ``@operation``, which records what the OpenAPI document needs
(method, path, auth, body, query, response, errors) and wraps the view so that it receives its
validated body and query as pydantic models. Views stay thin: parse, call one service, shape.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from flask import Blueprint, Response, current_app, g, request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy.orm import Session

from mallapp.db import MAX_BIG_ID, MAX_ID
from mallapp.domain import auth, merchants, ops, staff
from mallapp.domain.proximity.ingest import authenticate_gateway
from mallapp.errors import Forbidden, InvalidInput, MallError, Unauthorized
from mallapp.runtime import Runtime

# member: a mini-program token; merchant: an mk_ key or any staff member's st_ token (the till);
# merchant_manager: the key or a manager's token; ops: any ops user, ops_admin: an admin, ops_marketing:
# an admin or marketing, ops_desk: an admin or the service desk (mallapp.domain.ops.GRANTS);
# gateway: a batch signed with a gateway key (mallapp.domain.proximity.ingest.authenticate_gateway).
Auth = Literal["member", "merchant", "merchant_manager", "ops", "ops_admin", "ops_marketing", "ops_desk",
               "gateway"] | None
OPS_AUTH = ("ops", "ops_admin", "ops_marketing", "ops_desk")

MERCHANT_AUTH = ("merchant", "merchant_manager")

# The consoles (mallapp.consoles) sign staff in with a session cookie holding the same bearer token the API
# issues; a request without an Authorization header reads the cookie of its kind. A cookie is sent by the
# browser on its own, so a cookie-authenticated change must also carry the session's CSRF token in
# CSRF_HEADER (a page reads it from its <meta name="csrf-token">; another site cannot).
OPS_COOKIE = "mall_ops"
STAFF_COOKIE = "mall_staff"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Body(BaseModel):
    """Base of request bodies: strict types, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """Base of query strings: values arrive as text, so types are coerced, unknown names refused."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Base of response bodies."""


# Printable text only: PostgreSQL refuses NUL, control characters have no place in a name, and a
# bidirectional override (U+202A..U+202E, U+2066..U+2069) makes a name read otherwise than it is.
PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]*$"
# Characters that show nothing: a name made only of these (and spaces) is blank to whoever reads it.
_INVISIBLE = frozenset("\u00ad\u034f\u115f\u1160\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062"
                       "\u2063\u2064\u3164\ufeff\uffa0")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _printable(value: str) -> str:
    for char in value:
        if char in _BIDI:
            raise ValueError("bidirectional control characters are not allowed")
        if unicodedata.category(char) == "Cc":
            raise ValueError("control characters are not allowed")
    if value and all(char in _INVISIBLE or char.isspace() for char in value):
        raise ValueError("must show some visible characters")
    return value


def Printable(max_length: int, *, min_length: int = 1) -> Any:  # noqa: N802 (reads as a type)
    """The one type of every name, title, label and reason a caller sends: one line of printable text,
    stripped, ``min_length``..``max_length`` characters, no control or bidirectional override characters,
    not only invisible ones."""
    return Annotated[str, StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length,
                                            pattern=PRINTABLE), AfterValidator(_printable)]


Username = Printable(40)
# A row id in a body or a query: within the id column's integer type (db.MAX_ID; BigId for 64-bit ids),
# so a larger number is a 400, never a parameter the database refuses.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
BigId = Annotated[int, Field(ge=1, le=MAX_BIG_ID)]


class SignInIn(Body):
    """A password sign-in (ops users, merchant staff)."""

    username: Username
    password: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class SignedInOut(Out):
    """A bearer token issued by a password sign-in; each caller kind adds its role and scope."""

    token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    username: str


@dataclass(frozen=True)
class Operation:
    method: str
    rule: str
    summary: str
    auth: Auth
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    errors: tuple[str, ...]
    headers: dict[str, str] = field(default_factory=dict)
    raw: bool = False
    max_body: int | None = None  # bytes, instead of the app's max_body_bytes
    # Other statuses the operation answers with its response body, each with its description: a retry
    # with the same request id or idempotency key answers 200 with the first result (REPLAY).
    also: dict[int, str] = field(default_factory=dict)

    @property
    def statuses(self) -> frozenset[int]:
        """The statuses a successful call may answer; the view wrapper refuses any other."""
        return frozenset({self.status, *self.also})


# The 200 a create answers when it is a retry of one that succeeded: nothing new happened.
REPLAY = {200: "a retry: the first result (same request id or idempotency key); nothing changed"}


@dataclass(frozen=True)
class AfterCommit:
    """A view's reply that is read after the request's unit of work committed and its messages went out."""

    reply: Callable[[Session], Any]


def runtime() -> Runtime:
    return current_app.extensions["mallapp"]


@contextmanager
def transaction() -> Iterator[Session]:
    """The request's unit of work: commits when the outermost block succeeds, rolls back when it raises.

    Nested blocks join the open one, so authentication and the view share one transaction. The
    messages it recorded leave after its commit (the runtime's hook), never inside it.
    """
    if "session" in g:
        yield g.session
        return
    with runtime().sessions.begin() as session:
        g.session = session
        try:
            yield session
        finally:
            g.pop("session", None)


def _bearer(cookie: str | None = None) -> str:
    """The caller's token: the Authorization header's, else (for the consoles) the session cookie named ``cookie``,
    which a change (POST, PATCH, …) may use only with the session's CSRF token beside it."""
    header = request.headers.get("Authorization", "")
    if not header and cookie and request.cookies.get(cookie):
        token = request.cookies[cookie]
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not auth.csrf_matches(runtime().secret, token, sent):
                raise Forbidden(f"a console change needs the page's CSRF token in {CSRF_HEADER}; reload the page",
                                code="auth.csrf")
        g.console_token = token
        return token
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer <token>", code="auth.required")
    return token.strip()


def current_token() -> str:
    """The token the caller authenticated with (header or console cookie): what a sign-out revokes."""
    if "console_token" in g:
        return g.console_token
    return request.headers["Authorization"].split(" ", 1)[1].strip()


def current_member_id() -> int:
    return g.member_id


def current_merchant_id() -> int:
    return g.merchant_id


def current_staff_id() -> int | None:
    """The staff member calling a merchant endpoint, or None when the merchant's API key is."""
    return g.staff_id


def current_staff_role() -> str | None:
    """The calling staff member's role ("manager", "cashier"), or None when the merchant's API key calls."""
    return g.staff_role


def current_ops() -> ops.OpsCaller:
    return g.ops_user


def current_gateway_id() -> int:
    return g.gateway_id


def authenticate_member() -> None:
    """Check the caller is a live member (as an ``auth="member"`` operation does), for endpoints where only some
    requests need one (routes from "me")."""
    token = _bearer()
    if token.startswith((merchants.KEY_PREFIX, staff.TOKEN_PREFIX, ops.TOKEN_PREFIX)):
        raise Forbidden("only a member token can call member endpoints", code="auth.wrong_caller")
    g.member_id = auth.member_for_token(runtime().redis, token)


def _authenticate_ops(requirement: str) -> None:
    token = _bearer(OPS_COOKIE)
    if token.startswith((merchants.KEY_PREFIX, staff.TOKEN_PREFIX, auth.TOKEN_PREFIX)):
        raise Forbidden("only an ops token can call ops endpoints", code="auth.wrong_caller")
    # The account is read on every request (like staff): a deactivation or a new role applies at once.
    with transaction() as session:
        g.ops_user = ops.authenticate(session, runtime().redis, token)
    if not g.ops_user.may(requirement):
        if requirement == "ops_admin":
            raise Forbidden("this needs an ops admin", code="ops.admin_required")
        if requirement == "ops_marketing":
            raise Forbidden("this needs an ops admin or marketing role", code="ops.marketing_required")
        raise Forbidden("this needs an ops admin or service-desk role", code="ops.desk_required")


def _authenticate_gateway(session: Session) -> None:
    rt = runtime()
    g.gateway_id = authenticate_gateway(session, rt.redis, rt.settings, rt.secret, request.headers,
                                        request.get_data(cache=True), rt.now())


def _authenticate_merchant(session: Session, manager: bool) -> None:
    token = _bearer(STAFF_COOKIE)
    if token.startswith((auth.TOKEN_PREFIX, ops.TOKEN_PREFIX)):
        raise Forbidden("only a merchant key or staff token can call merchant endpoints", code="auth.wrong_caller")
    if token.startswith(staff.TOKEN_PREFIX):
        # The staff row is read on every request: a deactivation or a new role applies at once.
        caller = staff.authenticate(session, runtime().redis, token)
        g.merchant_id, g.merchant_name, g.staff_id = caller.merchant_id, caller.merchant_name, caller.id
        g.staff_role, g.staff_username = caller.role, caller.username
        if manager and caller.role != "manager":
            raise Forbidden("this needs a manager (or the merchant's API key)", code="merchant.role_required")
    else:
        merchant = merchants.authenticate(session, token)
        g.merchant_id, g.merchant_name, g.staff_id = merchant.id, merchant.name, None
        g.staff_role = None


def authenticate(requirement: Auth) -> None:
    """Check the caller against an operation's ``requirement`` as the API does (the consoles' pages use it):
    Unauthorized without a live credential, Forbidden without the role."""
    if requirement in MERCHANT_AUTH:
        with transaction() as session:
            _authenticate_merchant(session, manager=requirement == "merchant_manager")
    elif requirement in OPS_AUTH:
        _authenticate_ops(requirement)
    elif requirement is not None:
        raise ValueError(f"a console page cannot require {requirement!r}")


# The bound a pydantic error names, in the order its context may carry it (a length, a comparison, the choices).
_LIMITS = ("gt", "ge", "lt", "le", "min_length", "max_length", "multiple_of", "expected")


def _problems(exc: ValidationError) -> list[dict[str, Any]]:
    """One ``{"field", "problem", "kind"[, "limit"]}`` per defect: ``problem`` is English for the developer,
    ``kind`` is pydantic's stable error type (``missing``, ``greater_than``, ``string_too_long``…) that a
    console looks up as ``problems.<kind>`` in the catalogues, and ``limit`` the bound it names, if any."""
    out = []
    union_fields = set()
    for err in exc.errors(include_url=False, include_input=False):
        loc = _field_path(err["loc"])
        if len(loc) < len(err["loc"]):
            # A value that matched no member of a union (a text or {"zh-CN", "en"}): one problem for the field,
            # named by the field, not by pydantic's member tags.
            if loc in union_fields:
                continue
            union_fields.add(loc)
        where = ".".join(str(p) for p in loc) or "body"
        problem = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        found: dict[str, Any] = {"field": where, "problem": problem, "kind": err["type"]}
        ctx = err.get("ctx") or {}
        for name in _LIMITS:
            if name in ctx:
                limit = ctx[name]
                found["limit"] = limit if isinstance(limit, int | float | str) and not isinstance(limit, bool) \
                    else str(limit)
                break
        out.append(found)
    return out


_FIELD = re.compile(r"[a-z_][a-z0-9_]*")


def _field_path(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """``loc`` up to the first part that is not one of our snake_case field names or a list index: pydantic puts a
    union member's tag there (``function-after[...]``, ``LocalisedName``)."""
    for i, part in enumerate(loc):
        if not isinstance(part, int) and not _FIELD.fullmatch(part):
            return loc[:i]
    return loc


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _refuse_duplicate_keys(raw: bytes) -> None:
    """A body that names a key twice is refused: parsers disagree on which one wins (here, the last did)."""
    try:
        json.loads(raw or b"null", object_pairs_hook=_unique_pairs)
    except _DuplicateKey as dup:
        problems = [{"field": dup.key[:100], "problem": "duplicate key", "kind": "duplicate_key"}]
        raise InvalidInput(f"invalid body: the key {dup.key[:100]!r} appears twice in one object",
                           code="request.invalid", details={"problems": problems}) from None
    except (ValueError, RecursionError):
        raise InvalidInput("the body is not valid JSON", code="request.malformed_json") from None


def parse_body(model: type[BaseModel]) -> BaseModel:
    """Validate the JSON body against ``model``; any defect is a 400 that names the field."""
    if not request.is_json:
        raise InvalidInput("send a JSON body with Content-Type: application/json", code="request.not_json")
    raw = request.get_data(cache=True)
    _refuse_duplicate_keys(raw)
    try:
        return model.model_validate_json(raw or b"")
    except ValidationError as exc:
        problems = _problems(exc)
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise InvalidInput("the body is not valid JSON", code="request.malformed_json") from None
        # Only the body itself not being an object; a nested field's (a union member's) is that field's problem.
        if any(e["type"] in ("model_type", "model_attributes_type") and not e["loc"] for e in exc.errors()):
            raise InvalidInput("the body must be a JSON object", code="request.invalid") from None
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        raise InvalidInput(f"invalid body: {summary}", code="request.invalid",
                           details={"problems": problems}) from None


def parse_query(model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        problems = _problems(exc)
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        raise InvalidInput(f"invalid query: {summary}", code="request.invalid_query",
                           details={"problems": problems}) from None


def operation(bp: Blueprint, rule: str, method: str, *, summary: str, auth: Auth = None,
              body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
              response: type[BaseModel] | None = None, status: int = 200, errors: tuple[str, ...] = (),
              headers: dict[str, str] | None = None, raw: bool = False,
              max_body: int | None = None, also: dict[int, str] | None = None) -> Callable[[Callable[..., Any]], Any]:
    """Declare an endpoint: register it on ``bp`` and record it for the OpenAPI document.

    A view answers ``status`` unless it returns a ``(body, status)`` pair; that status must be ``status``
    or one of ``also`` (documented with the same response body), else the call is a 500: the document
    must say what the API answers.
    """
    op = Operation(method, rule, summary, auth, body, query, response, status, errors, headers or {}, raw, max_body,
                   also or {})

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(**kwargs: Any) -> Any:
            if op.body is not None:
                kwargs["body"] = parse_body(op.body)
            if op.query is not None:
                kwargs["query"] = parse_query(op.query)
            return fn(**kwargs)

        @functools.wraps(fn)
        def view(**path: Any) -> Any:
            if op.max_body is not None:
                request.max_content_length = op.max_body
            if op.auth in (*MERCHANT_AUTH, "gateway"):
                # The credential is checked in the view's own transaction: one unit of work per request.
                with transaction() as session:
                    if op.auth == "gateway":
                        _authenticate_gateway(session)
                    else:
                        _authenticate_merchant(session, manager=op.auth == "merchant_manager")
                    result = call(**path)
            else:
                if op.auth == "member":
                    authenticate_member()
                elif op.auth in OPS_AUTH:
                    _authenticate_ops(op.auth)
                result = call(**path)
            if isinstance(result, AfterCommit):
                with transaction() as session:
                    result = result.reply(session)
            if isinstance(result, tuple):
                result, code = result
                if code not in op.statuses:
                    raise RuntimeError(f"{op.method} {op.rule} answered {code}, which its operation does not "
                                       f"declare (status={op.status}, also={sorted(op.also)})")
                if op.raw or isinstance(result, Response):
                    return result, code
            else:
                code = op.status
            if op.raw or isinstance(result, Response):
                return result
            if result is None:
                return Response(status=code)
            payload = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
            return current_app.json.response(payload), code

        view.operation = op  # type: ignore[attr-defined]
        bp.add_url_rule(rule, fn.__name__, view, methods=[method])
        return view

    return decorate


def error_response(exc: MallError) -> tuple[Response, int]:
    response = current_app.json.response(exc.to_dict())
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    if exc.status == 429 and exc.details and "retry_after_s" in exc.details:
        response.headers["Retry-After"] = str(exc.details["retry_after_s"])
    return response, exc.status
