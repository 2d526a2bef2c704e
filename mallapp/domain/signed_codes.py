"""Signed codes that travel on screens and paper: ``<prefix>.<field>...<field>.<signature>``.

The member card a till scans (``MC1.<member id>.<expires>.<sig>``) and a coupon's QR code
(``CP1.<coupon id>.<code>.<sig>``) are both one ``Kind``: the signature is the first 15 bytes of
HMAC-SHA256 over ``<tag>:<field>:...:<field>``, URL-safe base64. A kind's prefix and its tag keep the
kinds apart: a card code never opens as a coupon's, even re-prefixed, nor the other way round.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime

# ASCII only: str.isdigit() takes '١' or '²', and int() then reads one and raises on the other.
_NUMBER = re.compile(r"[0-9]{1,19}")


class Refused(Exception):
    """A code that does not open: ``reason`` is "malformed", "forged" or "expired"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Kind:
    """One kind of signed code; ``fields`` are the types of its parts, an expiry (unix seconds) last if ``expires``."""

    prefix: str
    tag: str
    fields: tuple[type[int] | type[str], ...]
    expires: bool = False

    def _sig(self, secret: bytes, parts: list[str]) -> str:
        mac = hmac.new(secret, ":".join((self.tag, *parts)).encode(), hashlib.sha256).digest()[:15]
        return base64.urlsafe_b64encode(mac).decode()

    def sign(self, secret: bytes, *fields: int | str, expires: int | None = None) -> str:
        """The signed code of these fields (and ``expires``, for a kind that expires)."""
        if len(fields) != len(self.fields) or (expires is None) == self.expires:
            raise ValueError(f"a {self.tag} code takes {len(self.fields)} fields" + (" and expires" * self.expires))
        parts = [str(f) for f in fields] + ([str(expires)] if self.expires else [])
        if any("." in part for part in parts):
            raise ValueError("a signed code's fields hold no '.'")
        return ".".join((self.prefix, *parts, self._sig(secret, parts)))

    def open(self, secret: bytes, code: str, now: datetime | None = None) -> tuple[int | str, ...]:
        """The fields of a genuine code (without its expiry), or Refused; a kind that expires needs ``now``."""
        parts = code.split(".")
        types = self.fields + ((int,) if self.expires else ())
        if (len(parts) != len(types) + 2 or parts[0] != self.prefix
                or any(t is int and not _NUMBER.fullmatch(part) for t, part in zip(types, parts[1:], strict=False))):
            raise Refused("malformed")
        body = parts[1:-1]
        # Bytes: compare_digest raises TypeError on a str that is not ASCII.
        if not hmac.compare_digest(parts[-1].encode(), self._sig(secret, body).encode()):
            raise Refused("forged")
        if self.expires:
            if now is None:
                raise ValueError(f"opening a {self.tag} code needs the time")
            if now.timestamp() > int(body[-1]):
                raise Refused("expired")
            body = body[:-1]
        return tuple(t(part) for t, part in zip(self.fields, body, strict=True))
