"""LLM model rows: URL validation, secret handling, enable/disable and connection tests."""

from __future__ import annotations

import ipaddress
import logging
import time
from urllib.parse import urlsplit

from flask_babel import gettext as _
from sqlalchemy import delete, select, update

from llmadmin import crypto, llm, policy, queues
from llmadmin.errors import LLMError, NotFound, ValidationError
from llmadmin.extensions import db
from llmadmin.llm import ChatRequest, build_messages
from llmadmin.models import LLMModel, Person, Task
from llmadmin.models.base import utcnow
from llmadmin.services import audit
from llmadmin.services.tasks import clean_text

logger = logging.getLogger(__name__)

# The model form's rules, in one place: the admin form is built from them and the API
# validates with them. field -> (label, minimum, maximum, required).
NUMBER_FIELDS: dict[str, tuple[str, float, float, bool]] = {
    "temperature": ("Temperature", 0, 2, True),
    "max_tokens": ("Max tokens", 1, 1_000_000, True),
    "timeout_seconds": ("Timeout", 1, 3600, True),
    "max_concurrency": ("Max concurrent requests", 1, 1024, True),
    "rpm_limit": ("Requests per minute", 0, 1_000_000, True),
    "max_attempts": ("Max attempts", 1, 20, True),
    "breaker_threshold": ("Breaker threshold", 1, 1000, True),
    "breaker_cooldown_seconds": ("Breaker cooldown", 1, 86400, True),
    "price_input_per_1k": ("Input price", 0, 10_000, False),
    "price_output_per_1k": ("Output price", 0, 10_000, False),
}
INTEGER_FIELDS = {
    "max_tokens",
    "max_concurrency",
    "rpm_limit",
    "max_attempts",
    "breaker_threshold",
    "breaker_cooldown_seconds",
}
TEXT_FIELDS: dict[str, tuple[str, int]] = {"name": ("Name", 120), "model_name": ("Model name", 200)}
BOOLEAN_FIELDS = ("enabled", "stream")
# Everything a person may set on a model (the form's fields; the key as "api_key").
EDITABLE_FIELDS = (
    "name",
    "base_url",
    "api_key",
    "keep_key_for_host",
    "model_name",
    "maintainer_id",
    *BOOLEAN_FIELDS,
    *NUMBER_FIELDS,
)


def number_error(field: str, value) -> str | None:
    """Return the form's message for a number outside its field's range, or None."""
    label, minimum, maximum, required = NUMBER_FIELDS[field]
    if value is None:
        return f"{label} is required." if required else None
    if not minimum <= value <= maximum:
        return f"{label} must be between {minimum} and {maximum}."
    return None


def check_name_free(name: str, exclude_id: int | None = None) -> None:
    """Refuse a display name another model already has (the API names models by it)."""
    stmt = select(LLMModel.id).where(LLMModel.name == name)
    if exclude_id is not None:
        stmt = stmt.where(LLMModel.id != exclude_id)
    if db.session.execute(stmt).first() is not None:
        raise ValidationError(
            _("Another model is already called %(name)r; choose another name.", name=name),
            field="name",
        )


def save_model(fields: dict, model_id: int | None = None) -> LLMModel:
    """Create (``model_id`` None) or update a model from ``fields`` with the form's rules.

    Unknown fields are refused; on update, absent fields keep their values. A stored key is
    never sent to a new scheme, host or port unless retyped or the host is confirmed.
    """
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError(_("Unknown field %(name)r.", name=unknown[0]), field=unknown[0])
    model = LLMModel() if model_id is None else db.session.get(LLMModel, model_id)
    if model is None:
        raise NotFound(_("Model #%(id)s does not exist.", id=model_id))
    creating = model_id is None
    values = _clean_model_fields(fields, creating)
    old_url = model.base_url
    for key, value in values.items():
        setattr(model, key, value)
    if not creating:
        kept = check_key_destination(
            old_url,
            model.base_url,
            has_key=bool(model.api_key_encrypted),
            new_key=fields.get("api_key"),
            confirm_host=fields.get("keep_key_for_host"),
        )
        if kept:
            audit.record(
                "api_key_new_host",
                "llm_model",
                model.id,
                f"Kept the stored API key for a new address: {host_label(old_url)} -> "
                f"{host_label(model.base_url)}",
                commit=False,
            )
    check_name_free(model.name, model.id)
    set_api_key(model, fields.get("api_key"))
    db.session.add(model)
    db.session.commit()
    return model


def _clean_model_fields(fields: dict, creating: bool) -> dict:
    values: dict = {}
    for key, (label, limit) in TEXT_FIELDS.items():
        if key in fields or creating:
            values[key] = _field(
                key, clean_text, fields.get(key), label, required=True, max_chars=limit
            )
            values[key] = values[key].strip()
    if "base_url" in fields or creating:
        values["base_url"] = _field("base_url", validate_base_url, fields.get("base_url"))
    if fields.get("api_key") is not None:
        _field("api_key", clean_text, fields["api_key"], "API key", required=False, max_chars=500)
    for key in BOOLEAN_FIELDS:
        if key in fields:
            if not isinstance(fields[key], bool):
                raise ValidationError(_("%(field)s must be true or false.", field=key), field=key)
            values[key] = fields[key]
    for key in NUMBER_FIELDS:
        if key in fields:
            values[key] = _number_value(key, fields[key])
    if "maintainer_id" in fields:
        values["maintainer_id"] = _maintainer(fields["maintainer_id"])
    return values


def _field(field: str, check, *args, **kwargs):
    try:
        return check(*args, **kwargs)
    except ValidationError as exc:
        raise ValidationError(str(exc), field=field) from exc


def _number_value(field: str, value):
    if isinstance(value, bool) or (value is not None and not isinstance(value, int | float)):
        raise ValidationError(
            _("%(field)s must be a number.", field=NUMBER_FIELDS[field][0]), field=field
        )
    if field in INTEGER_FIELDS and isinstance(value, float) and not value.is_integer():
        raise ValidationError(
            _("%(field)s must be a whole number.", field=NUMBER_FIELDS[field][0]), field=field
        )
    message = number_error(field, value)
    if message:
        raise ValidationError(message, field=field)
    if value is not None and field in INTEGER_FIELDS:
        return int(value)
    return value


def _maintainer(value) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
        raise ValidationError(_("There is no such person."), field="maintainer_id")
    if db.session.get(Person, value) is None:
        raise ValidationError(_("There is no such person."), field="maintainer_id")
    return value


def validate_base_url(url: str | None) -> str:
    """Return a normalised http(s) base URL or raise ValidationError."""
    url = (url or "").strip()
    if not url:
        raise ValidationError(_("The base URL is required, e.g. https://api.deepseek.com/v1."))
    if any(c.isspace() for c in url) or "\x00" in url:
        raise ValidationError(_("The base URL must not contain spaces or control characters."))
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:  # e.g. "http://[::1/v1" or "http://[not-an-ip]/v1"
        raise ValidationError(_("The base URL is not a valid URL.")) from exc
    if parts.scheme not in ("http", "https"):
        raise ValidationError(_("The base URL must start with http:// or https://."))
    if not host:
        raise ValidationError(_("The base URL has no host name."))
    try:
        port = parts.port
    except ValueError as exc:
        raise ValidationError(_("The base URL has an invalid port.")) from exc
    if port == 0:
        raise ValidationError(_("The base URL has an invalid port."))
    if parts.username or parts.password:
        raise ValidationError(_("Put the API key in the API key field, not in the URL."))
    if parts.query or parts.fragment:
        raise ValidationError(_("The base URL must not have a query string or fragment."))
    url = policy.normalise_url(url)  # 0x7f000001 -> 127.0.0.1: stored as it will be called
    _check_host_label(urlsplit(url).hostname)
    policy.check_outbound_url(url)  # blocked networks, OUTBOUND_ALLOWLIST (a ValidationError)
    return url.rstrip("/")


def _check_host_label(host: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    for label in host.split("."):
        if not label or len(label) > 63 or not all(c.isalnum() or c == "-" for c in label):
            raise ValidationError(_("The host name %(host)r is not valid.", host=host))


DEFAULT_PORTS = {"http": 80, "https": 443}


def url_origin(url: str | None) -> tuple[str, str, int | None]:
    """Return (scheme, host, port) of ``url``, the port filled in for http/https."""
    try:
        parts = urlsplit((url or "").strip())
        port = parts.port
    except ValueError:
        return ("", (url or "").strip().lower(), None)
    scheme = parts.scheme.lower()
    return (scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme))


def host_label(url: str) -> str:
    """Name the host of ``url`` as the confirmation field expects it: host, or host:port."""
    scheme, host, port = url_origin(url)
    shown = f"[{host}]" if ":" in host else host
    return shown if port == DEFAULT_PORTS.get(scheme) else f"{shown}:{port}"


def stored_key_goes_elsewhere(old_url: str | None, new_url: str | None, has_key: bool) -> bool:
    """Tell whether saving ``new_url`` would send the stored key to another scheme, host or port."""
    return bool(has_key and old_url and new_url) and url_origin(old_url) != url_origin(new_url)


def check_key_destination(
    old_url: str | None,
    new_url: str | None,
    *,
    has_key: bool,
    new_key: str | None,
    confirm_host: str | None,
) -> bool:
    """Refuse to send a stored API key to a new scheme, host or port unless confirmed.

    The key was given for ``old_url``'s server; a changed URL alone must not make the next
    call (or connection test) hand it to another one. Typing the key again, or typing the new
    host into the confirmation field, is required. Return True when the stored key is kept for
    a new address (the caller audits that), False when nothing needs confirming.
    """
    if (new_key or "").strip() or not stored_key_goes_elsewhere(old_url, new_url, has_key):
        return False
    wanted = host_label(new_url)
    given = (confirm_host or "").strip().lower().rstrip("/")
    if given and given in {wanted, url_origin(new_url)[1]}:
        return True
    raise ValidationError(
        _(
            "The base URL now points at %(new)s (scheme, host or port changed), and the stored "
            "API key was given for %(old)s. Type the API key again, or type %(new)s in "
            "'Keep the stored key for the new host' to send the stored key there.",
            new=wanted,
            old=host_label(old_url),
        )
    )


def set_api_key(model: LLMModel, new_key: str | None) -> None:
    """Encrypt and store a newly typed key; an empty field keeps the current key."""
    if new_key and new_key.strip():
        model.api_key_encrypted = crypto.encrypt(new_key.strip())


def masked_key(model: LLMModel) -> str:
    """Return the model's key masked for display ("sk-…abcd"), or a note."""
    if not model.api_key_encrypted:
        return _("(no key)")
    try:
        return crypto.mask(crypto.decrypt(model.api_key_encrypted))
    except crypto.SecretUnreadable:
        return _("(unreadable: re-enter the key)")


def set_enabled(model_ids: list[int], enabled: bool) -> int:
    """Enable or disable models; return how many changed."""
    result = db.session.execute(
        update(LLMModel)
        .where(LLMModel.id.in_(model_ids), LLMModel.enabled.is_(not enabled))
        .values(enabled=enabled, updated_at=utcnow())
    )
    db.session.commit()
    return result.rowcount


def delete_models(model_ids: list[int]) -> tuple[int, int]:
    """Delete models, keeping their tasks (now without a model); return (deleted, tasks kept)."""
    ids = sorted({int(i) for i in model_ids})
    if not ids:
        return 0, 0
    kept = db.session.execute(
        update(Task).where(Task.model_id.in_(ids)).values(model_id=None)
    ).rowcount
    deleted = db.session.execute(delete(LLMModel).where(LLMModel.id.in_(ids))).rowcount
    db.session.commit()
    return deleted, kept


def request_connection_test(model_ids: list[int]) -> int:
    """Queue a connection test for each existing model; return how many were queued."""
    existing = (
        db.session.execute(
            select(LLMModel.id)
            .where(LLMModel.id.in_([int(i) for i in model_ids]))
            .order_by(LLMModel.id)
        )
        .scalars()
        .all()
    )
    for model_id in existing:
        queues.enqueue(
            "llmadmin.jobs.tasks.test_model_connection",
            model_id,
            description=f"test connection of model #{model_id}",
        )
    return len(existing)


def test_connection(model_id: int) -> dict:
    """Send a one-line prompt to the model and store status, latency and error on it."""

    model = db.session.get(LLMModel, model_id)
    if model is None:
        raise NotFound(_("Model #%(id)s does not exist.", id=model_id))
    started = time.monotonic()
    status, error = None, None
    try:
        policy.check_outbound_url(model.base_url)
        request = ChatRequest(
            base_url=model.base_url,
            api_key=crypto.decrypt(model.api_key_encrypted),
            model=model.model_name,
            messages=build_messages("Reply with the word: pong"),
            temperature=0,
            max_tokens=8,
            timeout=min(60.0, float(model.timeout_seconds)),
            stream=False,
        )
        status = llm.chat_blocking(request).status_code
    except LLMError as exc:
        status, error = exc.status_code, exc.message
    except crypto.SecretUnreadable as exc:
        error = str(exc)
    model.last_test_at = utcnow()
    model.last_test_status = status
    model.last_test_latency_ms = round((time.monotonic() - started) * 1000, 1)
    model.last_test_error = error
    db.session.commit()
    return {
        "model_id": model_id,
        "status": status,
        "error": error,
        "latency_ms": model.last_test_latency_ms,
    }


# --- the model form's helpers: list the endpoint's models, test typed values ---------------


def _key_for_typed_url(base_url: str, typed_key: str | None, model_id: int | None) -> str | None:
    """The key to send to ``base_url``: the typed one, else the stored one for the same host."""
    if typed_key and typed_key.strip():
        return typed_key.strip()
    model = db.session.get(LLMModel, model_id) if model_id else None
    if model is None or not model.api_key_encrypted:
        return None
    if stored_key_goes_elsewhere(model.base_url, base_url, True):
        raise ValidationError(
            _(
                "The stored API key was given for %(old)s, not %(new)s: type the API key "
                "to use it with the new address.",
                old=host_label(model.base_url),
                new=host_label(base_url),
            )
        )
    try:
        return crypto.decrypt(model.api_key_encrypted)
    except crypto.SecretUnreadable as exc:
        raise ValidationError(str(exc)) from exc


def endpoint_models(base_url: str | None, typed_key: str | None, model_id: int | None) -> list[str]:
    """Return the model names the endpoint at ``base_url`` lists (GET /models).

    The URL goes through the same checks as a saved one (outbound policy included); the key is
    the typed one, or the stored one while the URL still names the same host.
    """
    url = validate_base_url(base_url)
    key = _key_for_typed_url(url, typed_key, model_id)
    try:
        return llm.list_models(url, key)
    except LLMError as exc:
        raise ValidationError(
            _(
                "The endpoint did not list its models: %(reason)s Type the model name "
                "instead, or check the base URL and API key.",
                reason=exc.message,
            )
        ) from exc


def probe_connection(
    base_url: str | None, typed_key: str | None, model_name: str | None, model_id: int | None
) -> dict:
    """Send a one-line prompt with the typed settings (nothing is saved); return the outcome."""
    url = validate_base_url(base_url)
    key = _key_for_typed_url(url, typed_key, model_id)
    name = (model_name or "").strip()
    if not name:
        raise ValidationError(_("Fill in the model name first."))
    started = time.monotonic()
    status, error = None, None
    try:
        request = ChatRequest(
            base_url=url,
            api_key=key,
            model=name,
            messages=build_messages("Reply with the word: pong"),
            temperature=0,
            max_tokens=8,
            timeout=30.0,
            stream=False,
        )
        status = llm.chat_blocking(request).status_code
    except LLMError as exc:
        status, error = exc.status_code, exc.message
    return {
        "status": status,
        "error": error,
        "latency_ms": round((time.monotonic() - started) * 1000, 1),
    }


def note_saved_changes(model: LLMModel, new_key: str | None, old_url: str | None) -> bool:
    """Store a newly typed key and forget a connection test that no longer applies.

    A test result belongs to the URL and key it was made with: when either changes (``old_url``
    is the URL as stored before this save), the stored result is cleared rather than shown for
    an endpoint it never reached. Return True when it was cleared.
    """
    key_changed = bool(new_key and new_key.strip())
    set_api_key(model, new_key)
    url_changed = old_url is not None and old_url != model.base_url
    if not (key_changed or url_changed) or model.last_test_at is None:
        return False
    model.last_test_at = None
    model.last_test_status = None
    model.last_test_latency_ms = None
    model.last_test_error = None
    return True
