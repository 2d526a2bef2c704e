"""WeChat Pay API v3's signatures and encryption, as pure functions (docs/wechatpay.md, "Signatures").

- A request is signed with the merchant's RSA key: SHA256withRSA (PKCS#1 v1.5) over
  ``METHOD\\nPATH?QUERY\\ntimestamp\\nnonce\\nbody\\n``, base64, sent in ``Authorization``.
- An answer or a notification is signed by WeChat Pay over ``timestamp\\nnonce\\nbody\\n`` and verified
  with its public key (headers ``Wechatpay-Timestamp``, ``-Nonce``, ``-Signature``, ``-Serial``).
- wx.requestPayment's ``paySign`` is the merchant key's signature over ``appId\\ntimeStamp\\nnonceStr\\npackage\\n``.
- A notification's ``resource`` is AEAD_AES_256_GCM under the APIv3 key (32 bytes), with its ``nonce`` and
  ``associated_data``; the base64 ``ciphertext`` ends with the 16-byte tag.

The WeChat emulator uses the same functions from the other side, so both ends agree by construction;
the unit tests check them against openssl as well.
"""

from __future__ import annotations

import base64
import functools
import re

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "SCHEME", "answer_message", "authorization", "decrypt", "encrypt", "load_private_key", "load_public_key",
    "parse_authorization", "pay_sign_message", "request_message", "sign", "verify",
]

SCHEME = "WECHATPAY2-SHA256-RSA2048"
_PARAM = re.compile(r'(\w+)="([^"]*)"')


@functools.lru_cache(maxsize=8)
def load_private_key(pem: str | bytes) -> rsa.RSAPrivateKey:
    """Read an RSA private key from PEM (PKCS#8 as the merchant console gives it, or PKCS#1).

    Cached by the PEM's text: checking an RSA 2048 key takes about 40 ms, and ``rt.wechatpay`` builds a
    client for every use.
    """
    key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the WeChat Pay merchant key must be an RSA key")
    return key


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """Read WeChat Pay's RSA public key from a PEM public key or a PEM platform certificate."""
    data = pem.encode() if isinstance(pem, str) else pem
    key = (x509.load_pem_x509_certificate(data).public_key() if b"BEGIN CERTIFICATE" in data
           else serialization.load_pem_public_key(data))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("WeChat Pay's public key must be an RSA key")
    return key


def request_message(method: str, path_query: str, timestamp: str, nonce: str, body: str) -> str:
    """The text a request's signature covers: ``METHOD\\nPATH?QUERY\\ntimestamp\\nnonce\\nbody\\n``."""
    return f"{method.upper()}\n{path_query}\n{timestamp}\n{nonce}\n{body}\n"


def answer_message(timestamp: str, nonce: str, body: str) -> str:
    """The text an answer's or a notification's signature covers: ``timestamp\\nnonce\\nbody\\n``."""
    return f"{timestamp}\n{nonce}\n{body}\n"


def pay_sign_message(appid: str, timestamp: str, nonce: str, package: str) -> str:
    """The text wx.requestPayment's paySign covers: ``appId\\ntimeStamp\\nnonceStr\\npackage\\n``."""
    return f"{appid}\n{timestamp}\n{nonce}\n{package}\n"


def sign(key: rsa.RSAPrivateKey, message: str) -> str:
    """Return base64 of SHA256withRSA (PKCS#1 v1.5) over the UTF-8 message."""
    return base64.b64encode(key.sign(message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode()


def verify(key: rsa.RSAPublicKey, message: str, signature: str) -> bool:
    """Whether ``signature`` (base64) is SHA256withRSA over the message under ``key``."""
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def authorization(key: rsa.RSAPrivateKey, *, mchid: str, serial_no: str, method: str, path_query: str,
                  body: str, timestamp: str, nonce: str) -> str:
    """The ``Authorization`` header of one request."""
    signature = sign(key, request_message(method, path_query, timestamp, nonce, body))
    return (f'{SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{serial_no}"')


def parse_authorization(header: str) -> dict[str, str] | None:
    """The parameters of an ``Authorization`` header, or None when its scheme is not WeChat Pay's."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme != SCHEME:
        return None
    return dict(_PARAM.findall(rest))


def decrypt(apiv3_key: str, nonce: str, ciphertext: str, associated_data: str) -> bytes:
    """Decrypt a notification's resource; raises ValueError when the key, nonce, data or tag do not match."""
    try:
        return AESGCM(_key_bytes(apiv3_key)).decrypt(nonce.encode(), base64.b64decode(ciphertext, validate=True),
                                                     associated_data.encode() if associated_data else None)
    except (InvalidTag, ValueError, TypeError) as exc:
        raise ValueError(f"the resource does not decrypt: {type(exc).__name__}") from None


def encrypt(apiv3_key: str, nonce: str, plaintext: bytes, associated_data: str) -> str:
    """Encrypt a resource as WeChat Pay does (the emulator's side): base64 of ciphertext and tag."""
    return base64.b64encode(AESGCM(_key_bytes(apiv3_key)).encrypt(
        nonce.encode(), plaintext, associated_data.encode() if associated_data else None)).decode()


def _key_bytes(apiv3_key: str) -> bytes:
    raw = apiv3_key.encode()
    if len(raw) != 32:
        raise ValueError("the APIv3 key must be 32 bytes")
    return raw
