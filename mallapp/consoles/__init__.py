"""The consoles: the web screens of the mall's people (operations, merchant managers, the till, the restaurant host).

Pages are server-rendered shells (Jinja) in zh-CN or English from the message catalogues; each page's script
reads and changes data through the same JSON API the mini-program and POS integrations use
(``/api/v1/...``), signed in by a session cookie (``mallapp.api.core.OPS_COOKIE`` / ``STAFF_COOKIE``) with a
CSRF token on every change. So a console has no rule of its own: roles, validation and errors are the API's.

``web`` holds what every console shares (sign-in, sign-out, the language switch, the page decorator, the
navigation); one module per audience declares its pages on its own blueprint.
"""

from __future__ import annotations

from flask import Flask

from mallapp.consoles import (
    home,
    host,
    merchant,
    ops_floor,
    ops_insight,
    ops_people,
    ops_wayfinding,
    till,
    web,
)

__all__ = ["register"]

# Each audience's blueprint; its pages are declared with web.page() when its module is imported.
BLUEPRINTS = (web.bp, home.bp, ops_insight.bp, ops_people.bp, ops_floor.bp, merchant.bp, till.bp, host.bp,
              ops_wayfinding.bp)


def register(app: Flask) -> None:
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
