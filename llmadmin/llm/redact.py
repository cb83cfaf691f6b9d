"""Text helpers that keep secrets out of messages and logs: masked keys, URLs without credentials."""

from __future__ import annotations

import re

import httpx

KEY_LIKE = re.compile(r"\b(?:sk|pk|rk|key)-[A-Za-z0-9_\-]{8,}|(?<=Bearer )\S+", re.IGNORECASE)


def mask_key(key: str | None) -> str:
    """Show an API key as its first 3 and last 4 characters at most."""
    if not key:
        return ""
    return "•" * 6 if len(key) <= 10 else f"{key[:3]}…{key[-4:]}"


def sanitize(text: object, api_key: str | None = None, limit: int = 200) -> str:
    """Return ``text`` on one printable line, secrets masked, at most ``limit`` characters."""
    text = str(text)
    if api_key:
        text = text.replace(api_key, mask_key(api_key))
    text = KEY_LIKE.sub(lambda m: mask_key(m.group(0)), text)
    text = "".join(ch for ch in " ".join(text.split()) if ch.isprintable())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def display_url(url: str) -> str:
    """Show a URL without credentials, query string or fragment."""
    try:
        parsed = httpx.URL(url)
        return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))
    except Exception:  # an unparsable URL is still worth naming, minus anything secret-looking
        return sanitize(url.split("?")[0], limit=120)
