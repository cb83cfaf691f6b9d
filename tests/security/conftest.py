"""Fixtures for the security tests: a Redis client, time travel through TTLs, HTML probes."""

from __future__ import annotations

import pickle
import re
import zlib

import pytest
import redis

from tests.admin.helpers import fast_passwords  # noqa: F401  (autouse: cheap password hashes)


@pytest.fixture
def r(app):
    """A raw client on the test Redis (the app's own connection settings)."""
    return redis.Redis.from_url(app.config["REDIS_URL"])


def age(client: redis.Redis, key: str, seconds: float) -> None:
    """Move time forward by ``seconds`` for ``key``: shorten its TTL, deleting it when that runs out.

    Redis TTLs are the clock of the login guard and of one-time codes, so tests change them
    instead of sleeping.
    """
    ttl_ms = client.pttl(key)
    assert ttl_ms > 0, f"{key} has no TTL ({ttl_ms})"
    left = ttl_ms - int(seconds * 1000)
    if left <= 0:
        client.delete(key)
    else:
        client.pexpire(key, left)


def page_text(response) -> str:
    return response.get_data(as_text=True)


def flash_text(html: str) -> str:
    """Return the text of the alert boxes on a page (admin pages and the sign-in pages)."""
    import html as html_module

    return " ".join(
        html_module.unescape(m)
        for m in re.findall(r'<div class="alert[^"]*"[^>]*>(.*?)</div>', html, re.S)
    )


def redis_dump(client) -> str:
    """Every key and value in Redis as text, RQ's compressed job payloads unpacked."""
    parts = []
    for key in client.scan_iter(count=500):
        kind = client.type(key).decode()
        values = []
        if kind == "string":
            values = [client.get(key)]
        elif kind == "hash":
            values = list(client.hgetall(key).items())
            values = [v for pair in values for v in pair]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
        parts.append(repr(key))
        for value in values:
            parts.append(repr(value))
            try:
                parts.append(repr(pickle.loads(zlib.decompress(value))))
            except Exception:  # not an RQ payload
                pass
    return "\n".join(parts)
