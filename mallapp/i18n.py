"""Message catalogues: every text a person reads, in zh-CN (the default) and English.

The catalogues are TOML files under ``mallapp/locales/<locale>/``; each file is one area (``console``,
``errors``, ``member``, ``ops``, …) and its tables nest into dotted keys: ``[member.checkin]`` with
``title = "签到成功"`` is the key ``member.checkin.title``. Placeholders are ``{name}``, filled from
keyword arguments (``str.format_map``), so a translation may reorder them. Both locales carry the same
keys with the same placeholders (a unit test holds them to it); a key missing from a locale falls back
to English, then to the key itself, so a gap shows as the key rather than as an error to a member.

Dates and amounts are written for the mall's time zone and the reader's locale here too, so the
consoles, the inbox and subscribe messages say "12月5日 14:30" and "¥12.50" the same way.
"""

from __future__ import annotations

import functools
import re
import string
import tomllib
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["DEFAULT", "LOCALES", "catalogue", "fmt_date", "fmt_datetime", "fmt_time", "fmt_yuan", "has",
           "negotiate", "normalise", "placeholders", "t"]

LOCALES: tuple[str, ...] = ("zh-CN", "en")
DEFAULT = "zh-CN"
FALLBACK = "en"
_DIR = Path(__file__).with_name("locales")


def normalise(value: str | None) -> str | None:
    """The supported locale a tag names (``zh``, ``zh_CN``, ``zh-Hans-CN`` → zh-CN; ``en-US`` → en), or None."""
    if not value:
        return None
    tag = value.strip().replace("_", "-").lower()
    if tag.startswith("zh"):
        return "zh-CN"
    if tag == "en" or tag.startswith("en-"):
        return "en"
    return None


def negotiate(*choices: str | None, accept_language: str | None = None) -> str:
    """The first supported locale among ``choices`` (an explicit choice, a stored preference), then the best of an
    Accept-Language header, then the default (zh-CN)."""
    for choice in choices:
        locale = normalise(choice)
        if locale:
            return locale
    if accept_language:
        ranked = []
        for position, part in enumerate(accept_language.split(",")):
            tag, _, params = part.strip().partition(";")
            q = 1.0
            match = re.search(r"q=([0-9.]+)", params)
            if match:
                try:
                    q = float(match.group(1))
                except ValueError:
                    q = 0.0
            locale = normalise(tag)
            if locale and q > 0:
                ranked.append((-q, position, locale))
        if ranked:
            return min(ranked)[2]
    return DEFAULT


def _flatten(table: Mapping[str, Any], prefix: str, out: dict[str, str], source: Path) -> None:
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _flatten(value, dotted + ".", out, source)
        elif isinstance(value, str):
            if dotted in out:
                raise ValueError(f"{source}: the key {dotted!r} is defined twice in the {source.parent.name} catalogue")
            out[dotted] = value
        else:
            raise ValueError(f"{source}: {dotted!r} must be a string, not {type(value).__name__}")


@functools.cache
def catalogue(locale: str) -> Mapping[str, str]:
    """Every key of ``locale``'s catalogue files, read once per process."""
    if locale not in LOCALES:
        raise ValueError(f"no catalogue for {locale!r}; the locales are {LOCALES}")
    out: dict[str, str] = {}
    for path in sorted((_DIR / locale).glob("*.toml")):
        with path.open("rb") as f:
            _flatten(tomllib.load(f), "", out, path)
    return out


def has(key: str, locale: str = FALLBACK) -> bool:
    return key in catalogue(locale)


def t(locale: str | None, key: str, /, **params: Any) -> str:
    """The text of ``key`` in ``locale`` (the default when None), with its ``{placeholders}`` filled."""
    text = catalogue(normalise(locale) or DEFAULT).get(key)
    if text is None:
        text = catalogue(FALLBACK).get(key, key)
    if not params:
        return text
    return text.format_map(_Params(params))


class _Params(dict):
    # A placeholder with no value stays as written instead of raising: a member still gets the rest.
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def placeholders(text: str) -> frozenset[str]:
    """The ``{names}`` a catalogue text fills."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)


# --- dates and amounts -----------------------------------------------------------------------------

def fmt_yuan(fen: int, locale: str | None = None) -> str:
    """An amount in fen as the reader writes it: ¥12.50 (both locales use the yuan sign)."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(int(fen)), 100)
    return f"{sign}¥{yuan:,}.{cents:02d}"


def fmt_date(day: date, locale: str | None = None) -> str:
    if (normalise(locale) or DEFAULT) == "zh-CN":
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {day.strftime('%b')} {day.year}"


def fmt_time(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%H:%M")


def fmt_datetime(at: datetime, tz: ZoneInfo, locale: str | None = None) -> str:
    """A moment in the mall's time zone: ``12月5日 14:30`` or ``5 Dec 14:30``."""
    local = at.astimezone(tz)
    if (normalise(locale) or DEFAULT) == "zh-CN":
        return f"{local.month}月{local.day}日 {local:%H:%M}"
    return f"{local.day} {local:%b} {local:%H:%M}"
