"""Limit failed sign-ins per (account, client IP) and per client IP, with counters in Redis.

Each failure (wrong password, wrong one-time code) bumps three counters whose lifetime is
renewed on every failure:

* per account *and* client IP: once it reaches LOGIN_MAX_FAILURES_PER_ACCOUNT, that client
  may not try that account until LOGIN_LOCKOUT_SECONDS have passed since its last failure;
* per client IP (all accounts): once it reaches LOGIN_MAX_FAILURES_PER_IP, that client may
  not sign in at all for the same wait;
* per account (all clients): never refuses anything. Failures from elsewhere must not lock
  the owner out (anyone could do that on purpose); instead, once this counter reaches
  LOGIN_STEP_UP_FAILURES, a correct password must be followed by a one-time code.

A refusal does not check the password, and the counter's TTL *is* the wait, so tests move
time by changing it.

The IP counter is a hash of per-account counts, so a success forgives only the failures made
on that account from that IP: someone who owns one account cannot reset the IP limit by
signing into it between guesses at other accounts.

When Redis is unreachable the guard lets sign-ins through (logged): the admin must stay
reachable, and the password check itself does not depend on Redis.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass

import redis
from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext

from llmadmin.queues import get_redis

logger = logging.getLogger(__name__)

# RuntimeError: the embedded Redis could not be started.
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError, RuntimeError)


@dataclass(frozen=True)
class Lockout:
    """Sign-in is refused for ``seconds`` more because of too many failures on ``scope``."""

    scope: str  # "account" (this account from this client) or "ip" (this client)
    seconds: int

    def message(self) -> str:
        """Return the sentence shown to the person, with the wait rounded up to minutes."""
        wait = wait_text(self.seconds)
        if self.scope == "account":
            return _(
                "Too many failed sign-ins for this account from your network address. "
                "Try again in %(wait)s, or ask an administrator to set a new password.",
                wait=wait,
            )
        return _(
            "Too many failed sign-ins from your network address. Try again in %(wait)s.", wait=wait
        )


def wait_text(seconds: int) -> str:
    """Say a wait as 'N seconds' under two minutes, else as whole minutes (rounded up)."""
    if seconds < 120:
        return ngettext("%(num)s second", "%(num)s seconds", seconds)
    return ngettext("%(num)s minute", "%(num)s minutes", math.ceil(seconds / 60))


def account_key(email: str) -> str:
    """Return the Redis key counting failures on ``email`` (hashed: no addresses in Redis)."""
    digest = hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()[:32]
    return f"{current_app.config['QUEUE_PREFIX']}:login:fail:account:{digest}"


def pair_key(email: str, ip: str | None) -> str:
    """Return the Redis key counting failures on ``email`` from client ``ip``."""
    return f"{account_key(email).replace(':account:', ':pair:')}:{ip or 'unknown'}"


def ip_key(ip: str | None) -> str:
    """Return the Redis key (a hash: account digest -> failures) for client ``ip``."""
    return f"{current_app.config['QUEUE_PREFIX']}:login:fail:ip:{ip or 'unknown'}"


def _account_field(email: str) -> str:
    return account_key(email).rsplit(":", 1)[1]


def check(email: str, ip: str | None) -> Lockout | None:
    """Return the lockout in force for this account from this IP, or for this IP, or None."""
    config = current_app.config
    try:
        client = get_redis()
        pipe = client.pipeline(transaction=False)
        pipe.get(pair_key(email, ip))
        pipe.ttl(pair_key(email, ip))
        pipe.hvals(ip_key(ip))
        pipe.ttl(ip_key(ip))
        pair_count, pair_ttl, ip_counts, ip_ttl = pipe.execute()
    except REDIS_ERRORS as exc:
        logger.warning("login guard skipped: Redis unreachable (%s)", exc)
        return None
    if int(pair_count or 0) >= config["LOGIN_MAX_FAILURES_PER_ACCOUNT"] and pair_ttl > 0:
        return Lockout("account", int(pair_ttl))
    if sum(int(n) for n in ip_counts) >= config["LOGIN_MAX_FAILURES_PER_IP"] and ip_ttl > 0:
        return Lockout("ip", int(ip_ttl))
    return None


def needs_code(email: str) -> bool:
    """Tell whether the account has had LOGIN_STEP_UP_FAILURES failures (from anywhere) lately."""
    try:
        count = get_redis().get(account_key(email))
    except REDIS_ERRORS as exc:
        logger.warning("login step-up check skipped: Redis unreachable (%s)", exc)
        return False
    return int(count or 0) >= current_app.config["LOGIN_STEP_UP_FAILURES"]


def record_failure(email: str, ip: str | None) -> None:
    """Count one failed sign-in for the account, the account from this IP, and the IP."""
    window = current_app.config["LOGIN_LOCKOUT_SECONDS"]
    try:
        pipe = get_redis().pipeline(transaction=True)
        pipe.incr(pair_key(email, ip))
        pipe.expire(pair_key(email, ip), window)
        pipe.incr(account_key(email))
        pipe.expire(account_key(email), window)
        pipe.hincrby(ip_key(ip), _account_field(email), 1)
        pipe.expire(ip_key(ip), window)
        pipe.execute()
    except REDIS_ERRORS as exc:
        logger.warning("login failure not counted: Redis unreachable (%s)", exc)


def record_success(email: str, ip: str | None) -> None:
    """Clear the account's failures, and that account's share of the IP's failures."""
    try:
        pipe = get_redis().pipeline(transaction=True)
        pipe.delete(account_key(email), pair_key(email, ip))
        pipe.hdel(ip_key(ip), _account_field(email))
        pipe.execute()
    except REDIS_ERRORS as exc:
        logger.warning("login counters not cleared: Redis unreachable (%s)", exc)
