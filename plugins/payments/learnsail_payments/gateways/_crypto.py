"""Keys, RSA-SHA256 signatures and AES-256-GCM for the platform adapters.

Both platforms sign with RSA 2048 and SHA-256 in PKCS#1 v1.5 padding and
carry signatures in base64; WeChat Pay also encrypts notification resources
with AES-256-GCM under the merchant's APIv3 key.  Keys come from settings as
PEM text, the path of a PEM file, or (the way Alipay's console hands them
out) bare base64 DER without the PEM armour.

Nothing here ever puts a key, or text derived from one, into an exception
message: errors name the setting and say what is wrong with its value.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from learnsail.settings import SettingError

PrivateKey = rsa.RSAPrivateKey
PublicKey = rsa.RSAPublicKey


class Secret(str):
    """A setting's value that must not be shown: ``repr`` (what logs, error
    reports and debuggers print for a settings dict) hides it.  It is still
    the plain string everywhere else."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"


def as_secret(value: Any) -> Secret:
    """Setting parser for keys and key paths.  It never raises, so that
    :func:`learnsail.settings.collect` never quotes a secret in an error;
    the gateway's ``from_settings`` checks the value and names only the
    setting."""
    return Secret("" if value is None else str(value).strip())


def nonce_str(length: int = 32) -> str:
    """A random string of letters and digits (WeChat's nonce_str, 32 chars)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def unescape_newlines(text: str) -> str:
    """PEM text passed through an environment variable often arrives on one
    line with literal ``\\n`` for its line breaks."""
    if "-----BEGIN" in text and "\n" not in text and "\\n" in text:
        return text.replace("\\n", "\n")
    return text


def _pem_or_file(value: str, setting: str) -> bytes:
    """The PEM (or bare base64) text of ``value``, reading it from a file
    when ``value`` is a path."""
    text = unescape_newlines(value.strip())
    if "-----BEGIN" in text:
        return text.encode("ascii", "replace")
    looks_like_base64 = len(text) > 200 and all(c.isalnum() or c in "+/=\r\n" for c in text)
    if looks_like_base64:
        return text.encode("ascii")
    path = Path(text).expanduser()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SettingError(f"{setting}: cannot read the key file named there ({exc.strerror or type(exc).__name__})") from None


def _bare_base64(data: bytes) -> bytes | None:
    try:
        return base64.b64decode(b"".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def load_private_key(value: str, setting: str) -> PrivateKey:
    """An RSA private key from PEM (PKCS#1 or PKCS#8), a PEM file, or bare
    base64 DER; :class:`SettingError` naming ``setting`` otherwise."""
    if not value:
        raise SettingError(f"{setting} is empty")
    data = _pem_or_file(value, setting)
    key: Any = None
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            der = _bare_base64(data)
            if der is not None:
                key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SettingError(f"{setting} is not an unencrypted RSA private key (PEM text, a PEM file, or base64 DER)")
    if key.key_size < 2048:
        raise SettingError(f"{setting}: the RSA key has {key.key_size} bits; the platforms need 2048")
    return key


def load_public_key(data: bytes | str, setting: str) -> PublicKey:
    """An RSA public key from a PEM public key, a PEM certificate, or bare
    base64 DER (SubjectPublicKeyInfo, as Alipay's console shows it)."""
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    key: Any = None
    try:
        if b"-----BEGIN CERTIFICATE" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        elif b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            der = _bare_base64(data)
            if der is not None:
                key = serialization.load_der_public_key(der)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, rsa.RSAPublicKey):
        raise SettingError(f"{setting} holds no RSA public key or certificate")
    return key


def load_public_key_setting(value: str, setting: str) -> PublicKey:
    if not value:
        raise SettingError(f"{setting} is empty")
    return load_public_key(_pem_or_file(value, setting), setting)


def certificate_serial(cert: x509.Certificate) -> str:
    """A certificate's serial as WeChat Pay writes it in ``Wechatpay-Serial``:
    upper-case hexadecimal."""
    return format(cert.serial_number, "X")


def load_certificates(data: bytes) -> list[x509.Certificate]:
    try:
        return list(x509.load_pem_x509_certificates(data))
    except ValueError:
        return []


def rsa_sign(key: PrivateKey, message: bytes) -> str:
    """base64 of RSA-SHA256 (PKCS#1 v1.5) over ``message``."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def rsa_verify(key: PublicKey, message: bytes, signature_b64: str) -> bool:
    """Whether ``signature_b64`` is a valid RSA-SHA256 (PKCS#1 v1.5)
    signature of ``message``; malformed base64 is simply invalid."""
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    if not signature:
        return False
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


class DecryptionFailed(Exception):
    """The ciphertext does not authenticate under the key (or is malformed)."""


def aes_gcm_decrypt(key: bytes, nonce: str, associated_data: str, ciphertext_b64: str) -> bytes:
    """WeChat Pay's AEAD_AES_256_GCM: base64 ciphertext with the 16-byte tag
    appended, a 12-character nonce and UTF-8 associated data."""
    try:
        data = base64.b64decode(ciphertext_b64, validate=True)
        return AESGCM(key).decrypt(nonce.encode("utf-8"), data, associated_data.encode("utf-8") or None)
    except (InvalidTag, binascii.Error, ValueError, TypeError) as exc:
        raise DecryptionFailed(type(exc).__name__) from None




