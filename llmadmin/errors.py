"""Narrow exceptions. Users see ``str(exc)``; logs keep the chained cause."""


class LLMAdminError(Exception):
    """Base class for every error this application raises on purpose."""


class ValidationError(LLMAdminError):
    """Input was rejected; the message is safe to show to the user."""


class NotFound(LLMAdminError):
    """A row does not exist or is not visible to the current person."""


class SelectionDenied(LLMAdminError):
    """The person behind a stored selection may no longer read or act on its list."""


class InvalidTransition(LLMAdminError):
    """A task or download cannot move from its current status to the requested one."""


class QueueUnavailable(LLMAdminError):
    """Redis could not be reached; the row is kept and will be enqueued later."""


class LLMError(LLMAdminError):
    """A call to an LLM endpoint failed.

    ``kind`` is a short machine-readable class (``auth``, ``rate_limited``...),
    ``retryable`` tells the resilience policy whether another attempt may help and
    ``retry_after`` carries the server's ``Retry-After`` in seconds when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        retryable: bool = False,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after


class CircuitOpen(LLMError):
    """The model's circuit breaker is open: fail fast instead of calling it."""

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        *,
        threshold: int | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(message, kind="circuit_open", retryable=False, retry_after=retry_after)
        self.threshold = threshold
        # The message of the failure that last counted against the model (any worker's call).
        self.cause = cause
