"""Heartbeats of running chunks: the reconciler's proof that a chunk is alive."""

from __future__ import annotations

import logging
import threading
from collections import Counter

import redis

from llmadmin.engine.limits import RENEW, ModelLimiter

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0


def job_of(key: str) -> str:
    """The job id in a heartbeat key (``prefix:alive:<job id>``)."""
    return key.rsplit(":", 1)[-1]


class Heartbeat(threading.Thread):
    """Keep the heartbeat keys of a process's chunks and its concurrency leases alive.

    One thread (with its own blocking Redis client) for every chunk of the process rather
    than a coroutine: the event loop may block while a database write waits on a lock,
    and the chunks must not look dead then. A key is set at once when added (before the
    job that submitted the chunk ends) and deleted when its last chunk is removed.
    """

    def __init__(self, redis_url: str, ttl_seconds: float, registry_key: str | None = None):
        super().__init__(name="llmadmin-heartbeat", daemon=True)
        # A set of the job ids this process runs (operators, the fault suite), if named.
        self.registry_key = registry_key
        self.client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
        self.renew = self.client.register_script(RENEW)
        self.ttl_ms = int(ttl_seconds * 1000)
        self.keys: Counter[str] = Counter()
        self.limiters: Counter[ModelLimiter] = Counter()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def add(self, key: str, limiter: ModelLimiter | None = None) -> None:
        """Beat ``key`` (and renew ``limiter``'s leases) until ``remove`` is called as often."""
        with self.lock:
            self.keys[key] += 1
            known = self.keys[key] > 1  # already set (the job set it before the chunk ran)
            if limiter is not None:
                self.limiters[limiter] += 1
        if known:
            return  # no Redis round trip on the event loop for a key that is already beating
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.set(key, "1", px=self.ttl_ms)
                if self.registry_key:
                    pipe.sadd(self.registry_key, job_of(key))
                    pipe.pexpire(self.registry_key, self.ttl_ms)
                pipe.execute()
        except (redis.RedisError, OSError) as exc:
            logger.warning("heartbeat missed: %s", exc)

    def remove(self, key: str, limiter: ModelLimiter | None = None) -> None:
        """Stop beating ``key`` once every chunk that added it is gone."""
        with self.lock:
            self.keys[key] -= 1
            last = self.keys[key] <= 0
            if last:
                del self.keys[key]
            if limiter is not None:
                self.limiters[limiter] -= 1
                if self.limiters[limiter] <= 0:
                    del self.limiters[limiter]
        if last:
            try:
                self.client.delete(key)
            except (redis.RedisError, OSError):
                pass  # the key expires by itself

    def beat(self) -> None:
        """Refresh every key and lease once."""
        with self.lock:
            keys, limiters = list(self.keys), list(self.limiters)
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(key, "1", px=self.ttl_ms)
                if self.registry_key:
                    pipe.delete(self.registry_key)
                    if keys:
                        pipe.sadd(self.registry_key, *(job_of(key) for key in keys))
                        pipe.pexpire(self.registry_key, self.ttl_ms)
                pipe.execute()
            for limiter in limiters:
                tokens = list(limiter.held)
                if tokens:
                    self.renew(keys=[limiter.keys[0]], args=[self.ttl_ms, *tokens])
        except (redis.RedisError, OSError) as exc:
            logger.warning("heartbeat missed: %s", exc)

    def run(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            self.beat()

    def stop(self) -> None:
        """Stop beating (keys still registered expire by themselves)."""
        self.stopping.set()
        if self.is_alive():
            self.join(timeout=10)
        self.client.close()
