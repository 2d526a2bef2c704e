"""Bearer tokens (in Redis, revocable, expiring), the signed member code a till scans, and passwords.

Passwords (ops users, merchant staff) are hashed with scrypt here and nowhere else.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from datetime import datetime

from redis import Redis

from mallapp.domain import signed_codes
from mallapp.errors import InvalidInput, RateLimited, Unauthorized
from mallapp.settings import AuthSettings

TOKEN_PREFIX = "mt_"
CARD_PREFIX = "MC1"
# The member code a till scans: MC1.<member id>.<expires>.<signature>.
CARD = signed_codes.Kind(CARD_PREFIX, "card", (int,), expires=True)
MIN_PASSWORD = 12
# scrypt parameters: about 30 ms and 16 MiB per check on a small server, which makes guessing slow.
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}


def _token_key(kind: str, token: str) -> str:
    # Only a digest is stored: a dump of Redis does not hand out working tokens.
    return f"auth:{kind}-token:" + hashlib.sha256(token.encode()).hexdigest()


def issue_bearer(redis: Redis, kind: str, prefix: str, value: str | int, ttl_seconds: int) -> str:
    """Issue a random bearer token of ``kind`` that stands for ``value`` for ``ttl_seconds``."""
    token = prefix + secrets.token_urlsafe(32)
    redis.set(_token_key(kind, token), value, ex=ttl_seconds)
    return token


def bearer_value(redis: Redis, kind: str, prefix: str, token: str) -> str:
    """What a live token of ``kind`` stands for, or Unauthorized."""
    if not token.startswith(prefix):
        raise Unauthorized(f"not {'an' if kind[:1] in 'aeiou' else 'a'} {kind} token", code="auth.invalid_token")
    value = redis.get(_token_key(kind, token))
    if value is None:
        raise Unauthorized("the token has expired or was revoked; sign in again", code="auth.invalid_token")
    return value.decode() if isinstance(value, bytes) else value


def revoke_bearer(redis: Redis, kind: str, token: str) -> None:
    redis.delete(_token_key(kind, token))


def bearer_digest(kind: str, token: str) -> str:
    """The Redis key a token is kept under (a digest): what a caller may keep to revoke the token later."""
    return _token_key(kind, token)


def revoke_digests(redis: Redis, keys: list[str]) -> None:
    """Revoke tokens by the keys :func:`bearer_digest` gave."""
    if keys:
        redis.delete(*keys)


def _member_tokens_key(member_id: int) -> str:
    return f"auth:member-tokens:{member_id}"


def issue_token(redis: Redis, member_id: int, ttl_seconds: int) -> str:
    """Issue a bearer token for the member, valid for ``ttl_seconds``; it is listed under the member so that
    :func:`revoke_member_tokens` finds it (the list lives as long as the newest token)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = _token_key("member", token)
    pipe = redis.pipeline()
    pipe.set(key, member_id, ex=ttl_seconds)
    pipe.sadd(_member_tokens_key(member_id), key)
    pipe.expire(_member_tokens_key(member_id), ttl_seconds)
    pipe.execute()
    return token


def revoke_member_tokens(redis: Redis, member_id: int) -> int:
    """Revoke every token issued to the member (an erased account); how many were still live."""
    keys = redis.smembers(_member_tokens_key(member_id))
    pipe = redis.pipeline()
    for key in keys:
        pipe.delete(key)
    pipe.delete(_member_tokens_key(member_id))
    return sum(pipe.execute()[:-1])


def member_for_token(redis: Redis, token: str) -> int:
    """Return the member id behind a live token, or raise Unauthorized."""
    return int(bearer_value(redis, "member", TOKEN_PREFIX, token))


def revoke_token(redis: Redis, token: str) -> None:
    revoke_bearer(redis, "member", token)


def member_token_key(token: str) -> str:
    """The Redis key a member token lives under (the live server reads it with its own client)."""
    if not token.startswith(TOKEN_PREFIX):
        raise Unauthorized("not a member token", code="auth.invalid_token")
    return _token_key("member", token)


def card_code(secret: bytes, member_id: int, now: datetime, ttl_seconds: int) -> tuple[str, int]:
    """Return a signed member code and its expiry (unix seconds); the till posts it back."""
    expires = int(now.timestamp()) + ttl_seconds
    return CARD.sign(secret, member_id, expires=expires), expires


def member_for_card(secret: bytes, code: str, now: datetime) -> int:
    """Return the member id a card code was issued to, if it is genuine and unexpired."""
    try:
        member_id, = CARD.open(secret, code, now)
    except signed_codes.Refused as refused:
        if refused.reason == "malformed":
            raise InvalidInput("not a member code", code="card.invalid") from None
        if refused.reason == "forged":
            raise InvalidInput("the member code is not genuine", code="card.invalid") from None
        raise InvalidInput("the member code has expired; ask the member to refresh it", code="card.expired") from None
    return int(member_id)


# A till reference (mallapp.domain.till.find_by_phone): a member found by phone at one merchant's till, posted in
# place of the card code: TR1.<member id>.<merchant id>.<expires>.<signature>.
TILL_REF_PREFIX = "TR1"
TILL_REF = signed_codes.Kind(TILL_REF_PREFIX, "till-ref", (int, int), expires=True)


def till_ref(secret: bytes, member_id: int, merchant_id: int, expires: int) -> str:
    """A signed till reference for the member, usable by ``merchant_id`` until ``expires`` (unix seconds)."""
    return TILL_REF.sign(secret, member_id, merchant_id, expires=expires)


def member_for_till_code(secret: bytes, code: str, merchant_id: int, now: datetime) -> int:
    """The member a till's code stands for: a card code, or a till reference issued to this merchant.

    Refused like a card code: ``card.invalid`` (not genuine, or another merchant's reference), ``card.expired``.
    """
    if not code.startswith(TILL_REF_PREFIX + "."):
        return member_for_card(secret, code, now)
    try:
        member_id, for_merchant = TILL_REF.open(secret, code, now)
    except signed_codes.Refused as refused:
        if refused.reason == "expired":
            raise InvalidInput("the till reference has expired; find the member again", code="card.expired") from None
        raise InvalidInput("not a genuine till reference", code="card.invalid") from None
    if for_merchant != merchant_id:
        raise InvalidInput("this till reference was issued to another merchant", code="card.invalid")
    return int(member_id)


def csrf_token(secret: bytes, token: str) -> str:
    """The CSRF token of a console session: derived from its bearer token, so nothing more is stored."""
    return hmac.new(secret, b"csrf:" + token.encode(), hashlib.sha256).hexdigest()[:40]


def csrf_matches(secret: bytes, token: str, sent: str) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(secret, token), sent)


# --- passwords ------------------------------------------------------------------------------------

def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password``, as stored: ``scrypt$<salt hex>$<digest hex>``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash from :func:`hash_password` (compared in constant time)."""
    scheme, salt, digest = stored.split("$")
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **SCRYPT)
    return hmac.compare_digest(candidate.hex(), digest)


# The refusal of a wrong password, by the kind of account (mallapp.api.error_index reads the literals).
_BAD_CREDENTIALS = {"staff": "merchant.bad_credentials", "ops": "ops.bad_credentials"}


def _user_digest(username: str) -> str:
    # The name as typed, trimmed and case-folded: guesses at any spelling of it count together.
    return hashlib.sha256(username.strip().casefold().encode()).hexdigest()


def _failures_key(kind: str, username: str) -> str:
    """The count of wrong passwords for ``username`` from every address (the far higher, global limit)."""
    return f"auth:{kind}-failures:" + _user_digest(username)


def _epoch_key(kind: str, username: str) -> str:
    # Set by an unlock: the per-address counts of the epoch before it are no longer read (they expire on their own).
    return f"auth:{kind}-failures-epoch:" + _user_digest(username)


def _address_key(kind: str, username: str, epoch: bytes | str | None, address: str) -> str:
    if isinstance(epoch, bytes):
        epoch = epoch.decode()
    return (f"auth:{kind}-failures:{_user_digest(username)}:{epoch or '0'}:"
            + hashlib.sha256(address.encode()).hexdigest()[:32])


def check_sign_in(redis: Redis, kind: str, limits: AuthSettings, username: str, password: str, stored: str | None,
                  usable: bool, address: str | None = None) -> None:
    """Check a password sign-in: one Unauthorized (``_BAD_CREDENTIALS[kind]``) for an unknown username (``stored`` None), a
    wrong password and an account that may not sign in (``usable`` false).

    Hashes even for an unknown username, so timing does not tell which usernames exist. Allows
    ``limits.sign_in_attempts`` wrong passwords per username *and source address* (``address``: the
    request's remote address; None counts as one unknown address), each within ``sign_in_window_s``
    of the one before; past that every attempt from that address, the right password too, is refused
    (RateLimited) until ``sign_in_window_s`` after the last wrong one, without hashing: online
    guessing gets that many tries a window, not one per 30 ms. A stranger's wrong passwords from
    elsewhere therefore do not lock out the real user. A far higher limit,
    ``sign_in_attempts_per_username``, counts every address together and slows guessing spread over
    many addresses. The right password clears its address's count; :func:`clear_sign_in_failures`
    (a manager's or an admin's unlock) clears them all.
    """
    address = address or "unknown"
    epoch, total = redis.mget(_epoch_key(kind, username), _failures_key(kind, username))
    key = _address_key(kind, username, epoch, address)
    failures = redis.get(key)
    for count, limit, counted in ((failures, limits.sign_in_attempts, key),
                                  (total, limits.sign_in_attempts_per_username, _failures_key(kind, username))):
        if count is not None and int(count) >= limit:
            wait = max(1, int(redis.ttl(counted)))
            raise RateLimited(f"too many wrong passwords for this username; try again in {wait} s",
                              code="auth.too_many_attempts", details={"retry_after_s": wait})
    if check_password(password, stored if stored is not None else dummy_hash()):
        if failures is not None:
            redis.delete(key)
        if stored is not None and usable:
            return
    else:
        pipe = redis.pipeline()  # MULTI: the counts never outlive their expiry
        pipe.incr(key)
        pipe.expire(key, limits.sign_in_window_s)
        pipe.incr(_failures_key(kind, username))
        pipe.expire(_failures_key(kind, username), limits.sign_in_window_s)
        pipe.execute()
    raise Unauthorized("wrong username or password", code=_BAD_CREDENTIALS[kind])


def clear_sign_in_failures(redis: Redis, kind: str, limits: AuthSettings, username: str) -> None:
    """Forget every wrong password counted for ``username`` (from every address): the unlock.

    The per-address counts are left to expire: a fresh epoch (kept for one window, which outlives
    them) makes sign-ins read new ones, so the unlock is two writes whatever the number of addresses.
    """
    pipe = redis.pipeline()
    pipe.set(_epoch_key(kind, username), secrets.token_hex(8), ex=limits.sign_in_window_s)
    pipe.delete(_failures_key(kind, username))
    pipe.execute()


def generate_password() -> str:
    """A strong random password for a new account: 24 URL-safe characters, 144 bits."""
    return secrets.token_urlsafe(18)


@functools.cache
def dummy_hash() -> str:
    """A hash to check against when the username is unknown, so timing does not tell which names exist."""
    return hash_password(secrets.token_urlsafe(16))
