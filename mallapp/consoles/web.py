"""What every console shares: sign-in and sign-out with a session cookie, the language, the page decorator.

Sign-in takes the same username and password as ``POST /api/v1/ops/auth`` or ``/api/v1/merchant/auth`` and
goes through the same domain call (``ops.sign_in`` / ``staff.sign_in``: the same lock-out after wrong
passwords). The bearer token it issues is kept in an HttpOnly, SameSite=Strict cookie (Secure when the
request came over TLS), never shown to the page's script; the page gets the session's CSRF token instead.

A page is declared with :func:`page`: its audience (``ops`` or ``staff``), the API requirement that may see
it (``ops_marketing``, ``merchant_manager``, …, checked exactly as the API checks it), its template, and its
place in the navigation. A visitor without a session is sent to the sign-in page; one whose role does not
reach the page gets a 403 page saying so.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from flask import Blueprint, Response, g, make_response, redirect, render_template, request, url_for
from pydantic import BaseModel, ConfigDict, Field
from werkzeug.exceptions import NotFound as HTTPNotFound

from mallapp import i18n
from mallapp.api.core import (
    OPS_COOKIE,
    STAFF_COOKIE,
    Auth,
    authenticate,
    parse_body,
    runtime,
    transaction,
)
from mallapp.consoles import vendor
from mallapp.domain import auth, ops, staff
from mallapp.errors import Forbidden, MallError, Unauthorized

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates", static_folder="static",
               static_url_path="/static")

LANG_COOKIE = "mall_lang"
AUDIENCES = ("ops", "staff")
COOKIES = {"ops": OPS_COOKIE, "staff": STAFF_COOKIE}
# Browsers run the consoles' scripts only from the app itself; no inline script, no other origin.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")


@dataclass(frozen=True)
class Page:
    endpoint: str          # "ops_console.dashboard"
    audience: str          # "ops" | "staff"
    requirement: Auth      # the API requirement that may open it
    title: str             # catalogue key of its title (and its navigation entry)
    section: str           # which console's navigation lists it: "ops", "merchant", "till", "host"
    order: int             # its place in that navigation
    nav: bool              # listed in the navigation (a member's record, say, is reached from a search)
    # The API reads that fill it, as URL templates ("/api/v1/ops/members/{member_id}"): benchmarks/consoles.py
    # times each of them on the million-member set (the goal: a page's data in under 500 ms at p95).
    data: tuple[str, ...]


PAGES: list[Page] = []


def locale() -> str:
    """The reader's language: the one they chose (a cookie), else zh-CN, the mall's language.

    The browser's Accept-Language is not asked: the mall's staff work in Chinese whatever their browser says.
    """
    return i18n.negotiate(request.cookies.get(LANG_COOKIE))


def _texts_version(lang: str) -> str:
    return _texts(lang)[1]


@functools.cache
def _texts(lang: str) -> tuple[bytes, str]:
    body = ("window.MALL_TEXTS=" + json.dumps(dict(i18n.catalogue(lang)), ensure_ascii=False,
                                               separators=(",", ":")) + ";\n").encode()
    return body, hashlib.sha256(body).hexdigest()[:12]


def _caller() -> dict[str, Any]:
    if "ops_user" in g:
        return {"audience": "ops", "username": g.ops_user.username, "role": g.ops_user.role}
    return {"audience": "staff", "username": g.get("staff_username"), "role": g.staff_role,
            "merchant_id": g.merchant_id, "merchant_name": g.merchant_name}


def _may(requirement: Auth) -> bool:
    if "ops_user" in g:
        return requirement in ops.GRANTS and g.ops_user.may(requirement)
    if requirement == "merchant":
        return True
    return requirement == "merchant_manager" and g.staff_role == "manager"


def _nav(section: str) -> list[dict[str, Any]]:
    here = request.endpoint
    return [{"href": url_for(p.endpoint), "title": p.title, "current": p.endpoint == here}
            for p in sorted(PAGES, key=lambda p: p.order)
            if p.section == section and p.nav and _may(p.requirement)]


def render(template: str, *, status: int = 200, **context: Any) -> Response:
    """A console page in the reader's language with what every page's script needs (no inline script: CSP)."""
    lang = locale()
    rt = runtime()
    token = g.get("console_token")
    now = rt.now()
    config = {"locale": lang, "tz": rt.settings.mall.timezone, "mall": rt.settings.mall.name,
              # The server's clock, not the browser's: "today" is the mall's day as the API counts it.
              "now": now.isoformat(), "today": rt.settings.mall.local_day(now).isoformat(),
              "csrf": auth.csrf_token(rt.secret, token) if token else None,
              "caller": _caller() if token else None, "page": context.pop("page_config", {})}
    response = make_response(render_template(
        template, t=functools.partial(i18n.t, lang), lang=lang, config=config,
        texts_url=url_for("console.texts", lang=lang, v=_texts_version(lang)),
        vendor=vendor.url_path, **context), status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def page(bp: Blueprint, rule: str, *, audience: str, requirement: Auth, title: str, section: str, order: int,
         template: str, nav: bool = True, data: tuple[str, ...] = ()) -> Callable[[Callable[..., dict[str, Any] | None]], Any]:
    """Declare a console page; the view returns extra template context (or None) and may raise NotFound."""
    if audience not in AUDIENCES:
        raise ValueError(f"audience must be one of {AUDIENCES}")

    def decorate(fn: Callable[..., dict[str, Any] | None]) -> Any:
        @functools.wraps(fn)
        def view(**path: Any) -> Response:
            cookie = COOKIES[audience]
            if not request.cookies.get(cookie):
                return _to_sign_in(audience)
            try:
                authenticate(requirement)
            except Unauthorized:
                return _to_sign_in(audience)
            except Forbidden:
                return render("console/forbidden.html", status=403, nav=_nav(section), section=section,
                              title=title)
            context = fn(**path) or {}
            return render(template, nav=_nav(section), section=section, title=title, **context)

        bp.add_url_rule(rule, fn.__name__, view, methods=["GET"])
        PAGES.append(Page(f"{bp.name}.{fn.__name__}", audience, requirement, title, section, order, nav, data))
        return view

    return decorate


def _to_sign_in(audience: str) -> Response:
    return redirect(url_for("console.sign_in_page", audience=audience, next=request.full_path.rstrip("?")))


def _safe_next(target: str | None, fallback: str) -> str:
    # Only a path of this app: a sign-in link must not send anyone elsewhere.
    if not target:
        return fallback
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/console/") or "\\" in target:
        return fallback
    return target


HOMES = {"ops": "/console/ops/", "staff": "/console/staff/"}


@bp.get("/")
def index() -> Response:
    for audience in AUDIENCES:
        if request.cookies.get(COOKIES[audience]):
            return redirect(HOMES[audience])
    return redirect(url_for("console.sign_in_page"))


@bp.get("/sign-in")
def sign_in_page() -> Response:
    audience = request.args.get("audience", "staff")
    if audience not in AUDIENCES:
        audience = "staff"
    return render("console/sign_in.html", audience=audience, title="console.sign_in.title",
                  page_config={"audience": audience, "next": _safe_next(request.args.get("next"), HOMES[audience])})


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    audience: str = Field(pattern="^(ops|staff)$")
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=200)


def json_error(exc: MallError) -> tuple[Response, int]:
    response = make_response(exc.to_dict(), exc.status)
    if exc.status == 429 and exc.details and "retry_after_s" in exc.details:
        response.headers["Retry-After"] = str(exc.details["retry_after_s"])
    return response, exc.status


@bp.post("/session")
def sign_in() -> Any:
    """Sign in with the API's own check (lock-out included) and keep the token in an HttpOnly cookie.

    The body must be JSON: a form on another site cannot send that without the browser asking first, so
    nobody can be signed in to an account not their own (login CSRF).
    """
    try:
        body = parse_body(SessionIn)
        rt = runtime()
        with transaction() as session:
            if body.audience == "ops":
                token, _ = ops.sign_in(session, rt.redis, rt.settings.auth, body.username, body.password,
                                       request.remote_addr)
            else:
                token, _ = staff.sign_in(session, rt.redis, rt.settings.auth, body.username, body.password,
                                         request.remote_addr)
    except MallError as exc:
        return json_error(exc)
    response = make_response({"next": HOMES[body.audience]}, 200)
    response.set_cookie(COOKIES[body.audience], token, max_age=rt.settings.auth.token_ttl_s, path="/",
                        httponly=True, samesite="Strict", secure=request.is_secure)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/sign-out")
def sign_out() -> Response:
    """Revoke the session's token (both kinds a browser may hold) and forget the cookies.

    Needs the CSRF token like any change, so another site cannot sign the reader out.
    """
    rt = runtime()
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf", "")
    response = make_response(redirect(url_for("console.sign_in_page")))
    for audience, cookie in COOKIES.items():
        token = request.cookies.get(cookie)
        if token and auth.csrf_matches(rt.secret, token, sent):
            (ops.revoke_token if audience == "ops" else staff.revoke_token)(rt.redis, token)
            response.delete_cookie(cookie, path="/", httponly=True, samesite="Strict", secure=request.is_secure)
    return response


@bp.get("/lang/<lang>")
def choose_language(lang: str) -> Response:
    chosen = i18n.normalise(lang)
    if chosen is None:
        raise HTTPNotFound()
    response = make_response(redirect(_safe_next(request.args.get("next"), "/console/")))
    response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, path="/", samesite="Lax",
                        secure=request.is_secure)
    return response


@bp.get("/texts/<lang>.js")
def texts(lang: str) -> Response:
    if lang not in i18n.LOCALES:
        raise HTTPNotFound()
    body, version = _texts(lang)
    response = make_response(body)
    response.headers["Content-Type"] = "text/javascript; charset=utf-8"
    # The URL carries the catalogue's digest (?v=), so a changed catalogue is a new URL.
    response.headers["Cache-Control"] = "public, max-age=86400" if request.args.get("v") == version else "no-cache"
    return response
