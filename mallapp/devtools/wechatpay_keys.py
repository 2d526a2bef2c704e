"""Development keys for WeChat Pay: a merchant key pair, a platform key pair and an APIv3 key.

The WeChat emulator holds the merchant's public key (to check our signatures), the platform's private
key (to sign its answers and notifications) and the APIv3 key (to encrypt notifications); mallapp holds
the other halves. :func:`make` makes a fresh set (the tests, once per session); :func:`load_or_make`
keeps one under a directory (the demo: ``var/wechatpay-dev/``) so restarts agree with what was issued.
None of these keys is good for anything outside this machine.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["DEMO_MCHID", "DevKeys", "demo_environment", "load_or_make", "make", "paths", "settings_for"]

DEMO_MCHID = "1900000109"
_FILES = {"merchant_private_pem": "merchant_key.pem", "merchant_public_pem": "merchant_public.pem",
          "platform_private_pem": "platform_key.pem", "platform_public_pem": "platform_public.pem"}


@dataclass(frozen=True)
class DevKeys:
    merchant_private_pem: str
    merchant_public_pem: str
    merchant_serial: str
    platform_private_pem: str
    platform_public_pem: str
    platform_serial: str
    apiv3_key: str
    mchid: str = DEMO_MCHID


def _pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def make(mchid: str = DEMO_MCHID) -> DevKeys:
    """A fresh set: two RSA 2048 pairs, serials shaped like WeChat Pay's, a 32-character APIv3 key."""
    merchant_private, merchant_public = _pair()
    platform_private, platform_public = _pair()
    alphabet = string.ascii_letters + string.digits
    return DevKeys(
        merchant_private_pem=merchant_private, merchant_public_pem=merchant_public,
        merchant_serial=secrets.token_hex(20).upper(),
        platform_private_pem=platform_private, platform_public_pem=platform_public,
        platform_serial="PUB_KEY_ID_01" + "".join(secrets.choice(string.digits) for _ in range(30)),
        apiv3_key="".join(secrets.choice(alphabet) for _ in range(32)), mchid=mchid)


def load_or_make(directory: Path, mchid: str = DEMO_MCHID) -> DevKeys:
    """The set kept under ``directory`` (made and written there, readable by the owner only, the first time)."""
    meta_file = directory / "keys.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        pems = {field: (directory / name).read_text(encoding="ascii") for field, name in _FILES.items()}
        return DevKeys(**pems, **meta)
    keys = make(mchid)
    directory.mkdir(parents=True, exist_ok=True)
    values = asdict(keys)
    for field, name in _FILES.items():
        _write_private(directory / name, values.pop(field))
    _write_private(meta_file, json.dumps(values, indent=2))
    return keys


def paths(directory: Path) -> dict[str, Path]:
    """Where :func:`load_or_make` keeps each PEM."""
    return {field: directory / name for field, name in _FILES.items()}


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def settings_for(keys: DevKeys, *, api_base: str, notify_url: str) -> dict[str, Any]:
    """The ``[wechatpay]`` settings (as a dict) for a client that talks to an emulator holding ``keys``."""
    return {"api_base": api_base, "mchid": keys.mchid, "merchant_serial": keys.merchant_serial,
            "private_key": keys.merchant_private_pem, "apiv3_key": keys.apiv3_key,
            "platform_public_key": keys.platform_public_pem, "platform_serial": keys.platform_serial,
            "notify_url": notify_url}


def demo_environment(emulator: Any, directory: Path, *, notify_url: str) -> dict[str, str]:
    """Point WeChat Pay at ``emulator`` (a WeChatEmulator) with the keys kept under ``directory``: configure the
    emulator and return the ``MALL_WECHATPAY_*`` variables for mallapp's processes (``mallapp demo``)."""
    keys = load_or_make(directory)
    emulator.configure_pay(keys)
    files = paths(directory)
    return {"MALL_WECHATPAY_API_BASE": emulator.base_url, "MALL_WECHATPAY_MCHID": keys.mchid,
            "MALL_WECHATPAY_MERCHANT_SERIAL": keys.merchant_serial,
            "MALL_WECHATPAY_PRIVATE_KEY_PATH": str(files["merchant_private_pem"]),
            "MALL_WECHATPAY_APIV3_KEY": keys.apiv3_key,
            "MALL_WECHATPAY_PLATFORM_PUBLIC_KEY_PATH": str(files["platform_public_pem"]),
            "MALL_WECHATPAY_PLATFORM_SERIAL": keys.platform_serial, "MALL_WECHATPAY_NOTIFY_URL": notify_url}
