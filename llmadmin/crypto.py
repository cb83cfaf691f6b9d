"""Encryption of secrets at rest (provider API keys) with Fernet.

``ENCRYPTION_KEY`` may hold several comma-separated Fernet keys: the first encrypts,
all of them decrypt (MultiFernet), which is what key rotation needs. When it is empty
a key is derived from ``SECRET_KEY`` so that a development install works out of the box.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app

from llmadmin.errors import LLMAdminError


class SecretUnreadable(LLMAdminError):
    """A stored secret cannot be decrypted with any configured key."""


def derive_key(secret: str) -> bytes:
    """Derive a Fernet key from an arbitrary secret string."""
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode("utf-8")).digest())


def _keys(config: dict) -> list[bytes]:
    configured = [k.strip() for k in (config.get("ENCRYPTION_KEY") or "").split(",") if k.strip()]
    if configured:
        return [k.encode("ascii") for k in configured]
    return [derive_key(config["SECRET_KEY"])]


def fernet(config: dict | None = None) -> MultiFernet:
    """Return the MultiFernet for the given (or current app's) configuration."""
    config = current_app.config if config is None else config
    return MultiFernet([Fernet(k) for k in _keys(config)])


def encrypt(plaintext: str | None, config: dict | None = None) -> str | None:
    """Encrypt ``plaintext``; empty values are stored as NULL."""
    if not plaintext:
        return None
    return fernet(config).encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str | None, config: dict | None = None) -> str | None:
    """Decrypt a stored token, raising SecretUnreadable with a clear message."""
    if not token:
        return None
    try:
        return fernet(config).decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable(
            "The stored API key cannot be decrypted with the configured ENCRYPTION_KEY; "
            "re-enter the key on the model."
        ) from exc


def rotate(token: str | None, config: dict | None = None) -> str | None:
    """Re-encrypt ``token`` under the primary (first) key, raising SecretUnreadable if no key opens it."""
    if not token:
        return None
    try:
        return fernet(config).rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable(
            "The stored secret cannot be decrypted with any configured key."
        ) from exc


def mask(secret: str | None) -> str:
    """Show a secret as its first 3 and last 4 characters at most."""
    if not secret:
        return ""
    if len(secret) <= 10:
        return "•" * 6
    return f"{secret[:3]}…{secret[-4:]}"
