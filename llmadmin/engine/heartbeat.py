"""A running chunk's heartbeat: the reconciler's proof that the chunk is alive."""

from __future__ import annotations

import logging
import threading

import redis

from llmadmin.engine.limits import RENEW, ModelLimiter

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0


class Heartbeat(threading.Thread):
    """Keep the job's heartbeat key and its concurrency leases alive from a thread.

    A thread (with its own blocking Redis client) rather than a coroutine: the event loop
    blocks while a database write waits on a lock, and the job must not look dead then.
    """

    def __init__(self, redis_url: str, key: str, ttl_seconds: float, limiter: ModelLimiter):
        super().__init__(name=f"heartbeat-{key}", daemon=True)
        self.redis_url, self.key, self.limiter = redis_url, key, limiter
        self.ttl_ms = int(ttl_seconds * 1000)
        self.stopping = threading.Event()

    def run(self) -> None:
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=5)
        renew = client.register_script(RENEW)
        while True:
            try:
                client.set(self.key, "1", px=self.ttl_ms)
                tokens = list(self.limiter.held)
                if tokens:
                    renew(keys=[self.limiter.keys[0]], args=[self.ttl_ms, *tokens])
            except (redis.RedisError, OSError) as exc:
                logger.warning("heartbeat missed: %s", exc)
            if self.stopping.wait(HEARTBEAT_SECONDS):
                break
        try:
            client.delete(self.key)
        except (redis.RedisError, OSError):
            pass  # the key expires by itself
        client.close()

    def stop(self) -> None:
        """Stop beating and remove the key."""
        self.stopping.set()
        self.join(timeout=10)
