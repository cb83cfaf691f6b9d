"""Narrow exceptions. Users see ``str(exc)``; logs keep the chained cause."""


class LLMAdminError(Exception):
    """Base class for every error this application raises on purpose."""


class ValidationError(LLMAdminError):
    """Input was rejected; the message is safe to show to the user.

    ``field`` names the input at fault when one does (``"name"``, ``"tasks[3].prompt"``).
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        # The message as given: a ``texts.Said`` keeps how it was said, for storing as data.
        self.message = message
        self.field = field


class ItemsInvalid(ValidationError):
    """Some items of a many-at-once request were rejected; nothing was created.

    ``errors`` lists ``{"index", "field", "message"}`` for every rejected item.
    """

    def __init__(self, message: str, errors: list[dict]) -> None:
        first = errors[0] if errors else {}
        super().__init__(message, field=first.get("field"))
        self.errors = errors


class MalformedRequest(LLMAdminError):
    """The request cannot be read at all (malformed JSON, not UTF-8, a bad query value)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TooLarge(LLMAdminError):
    """The request is larger than allowed (body size, items in one request)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AuthenticationFailed(LLMAdminError):
    """An API token is missing, unknown, revoked or expired."""


class PermissionDenied(LLMAdminError):
    """The person is signed in but may not do this (e.g. members managing models)."""


class Conflict(LLMAdminError):
    """The row is in a state that does not allow the request (e.g. cancel a finished task)."""


class RateLimited(LLMAdminError):
    """Too many requests; ``retry_after`` says how many seconds to wait."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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


# The one table of HTTP statuses for the errors above (the JSON API and any JSON answer use it);
# the most specific class listed first wins.
HTTP_STATUS: tuple[tuple[type[LLMAdminError], int, str], ...] = (
    (MalformedRequest, 400, "bad_request"),
    (TooLarge, 413, "too_large"),
    (ItemsInvalid, 422, "invalid_items"),
    (ValidationError, 422, "invalid"),
    (AuthenticationFailed, 401, "unauthorized"),
    (PermissionDenied, 403, "forbidden"),
    (SelectionDenied, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (InvalidTransition, 409, "conflict"),
    (Conflict, 409, "conflict"),
    (RateLimited, 429, "rate_limited"),
    (QueueUnavailable, 503, "queue_unavailable"),
)


def http_status(exc: LLMAdminError) -> tuple[int, str]:
    """Return (HTTP status, error code) for one of our errors; 500 for anything unlisted."""
    for kind, status, code in HTTP_STATUS:
        if isinstance(exc, kind):
            return status, code
    return 500, "internal"
