"""A per-model circuit breaker whose state lives in Redis, shared by every worker.

Closed: calls go through and consecutive failures are counted. Open (after
``threshold`` consecutive failures): calls fail fast until ``cooldown`` has passed.
Half-open: one caller wins a probe lock and calls; success closes the breaker, failure
re-opens it for another cooldown.
"""

from __future__ import annotations

from llmadmin.errors import CircuitOpen

# Failures that say something about the endpoint's health (not about the request).
HEALTH_FAILURES = frozenset(
    {"server_error", "timeout", "connect_timeout", "connection_error", "stream_cut"}
)

# The last health failure's message is kept with the breaker's state, so a task that was never
# sent can still say what is wrong with the model (the messages are sanitized where they are made).
CAUSE_CHARS = 600

RECORD_FAILURE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'last_error', ARGV[3]) end
redis.call('PEXPIRE', KEYS[1], 86400000)
if failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'opened_until', now + tonumber(ARGV[2]))
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""

CHECK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'opened_until', 'failures', 'last_error')
local until_ms = tonumber(state[1] or '0')
local failures = tonumber(state[2] or '0')
local last_error = state[3] or ''
if until_ms == 0 then return {1, 0, failures, ''} end
if now < until_ms then return {0, until_ms - now, failures, last_error} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then return {2, 0, failures, ''} end
return {0, 1000, failures, last_error}
"""


class CircuitBreaker:
    """Shared breaker for one model."""

    def __init__(
        self,
        redis_client,
        prefix: str,
        model_id: int,
        model_label: str,
        threshold: int,
        cooldown_seconds: float,
        probe_seconds: float,
    ):
        self.redis = redis_client
        self.key = f"{prefix}:breaker:{model_id}"
        self.probe_key = f"{prefix}:breaker:{model_id}:probe"
        self.label = model_label
        self.threshold = max(1, int(threshold))
        self.cooldown_ms = int(cooldown_seconds * 1000)
        self.probe_ms = int(probe_seconds * 1000)
        self._check = redis_client.register_script(CHECK)
        self._fail = redis_client.register_script(RECORD_FAILURE)

    async def before_call(self) -> bool:
        """Raise CircuitOpen while the breaker is open (or another worker is probing).

        Return True when there is failure state to clear after a success, so a healthy
        model costs no extra Redis round trip per call.
        """
        state, wait_ms, failures, last_error = await self._check(
            keys=[self.key, self.probe_key], args=["1", self.probe_ms]
        )
        if int(state) == 0:
            raise self.open_error(int(wait_ms), last_error)
        return int(state) == 2 or int(failures) > 0

    def open_error(self, wait_ms: int, last_error: str | bytes | None) -> CircuitOpen:
        """The error of a call refused while the breaker is open for ``wait_ms`` more."""
        seconds = max(1, round(wait_ms / 1000))
        if isinstance(last_error, bytes):
            last_error = last_error.decode("utf-8", "replace")
        # States what is, never what will happen: the task holding this may give up.
        return CircuitOpen(
            f"Model {self.label} is failing repeatedly, so calls to it are paused for "
            f"about {seconds} s more (circuit breaker open after {self.threshold} "
            f"consecutive failures).",
            retry_after=seconds,
            threshold=self.threshold,
            cause=last_error or None,
        )

    async def record_success(self) -> None:
        """Close the breaker."""
        await self.redis.delete(self.key, self.probe_key)

    async def record_failure(self, kind: str, message: str | None = None) -> bool:
        """Count a health failure (``message`` is kept as the breaker's cause); return True when it opened."""
        if kind not in HEALTH_FAILURES:
            return False
        opened = await self._fail(
            keys=[self.key, self.probe_key],
            args=[self.threshold, self.cooldown_ms, (message or "")[:CAUSE_CHARS]],
        )
        return bool(int(opened))
