"""mallapp: the backend a shopping mall runs behind its WeChat mini-program.

``create_app`` is loaded on first use, so the worker, the clock and the CLI import the domain
modules without importing Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["create_app"]

if TYPE_CHECKING:
    from mallapp.api.app import create_app


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from mallapp.api.app import create_app

        return create_app
    raise AttributeError(f"module 'mallapp' has no attribute {name!r}")
