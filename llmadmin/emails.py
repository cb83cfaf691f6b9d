"""The one email-address rule, used by the CLI, the admin forms, the login form and the services.

Settings, chosen on purpose (``email_validator``):

* ``check_deliverability=False``: no DNS look-ups — an internal tool runs offline and
  behind split DNS; whether mail arrives is the mail server's business.
* ``test_environment=True``: addresses on ``.test`` (RFC 6761, e.g. ``admin@x.test``) are
  accepted, so demos and tests can use addresses that can never reach a real person.
  ``example.com`` works too. Other special-use names (``.local``, ``.localhost``,
  ``.invalid``, ``.onion``, ``.arpa``) are refused: they are not mail domains.
* ``globally_deliverable`` keeps its default: the domain needs a dot (``a@intranet`` is
  refused) and a real-looking top-level domain.
* International addresses are accepted (IDN domains, UTF-8 local parts); the domain is
  stored in its Unicode form, so ``xn--bcher-kva.example`` and ``bücher.example`` are the
  same person. Addresses are stored lower-cased and without surrounding spaces.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _

from llmadmin.errors import ValidationError

MAX_EMAIL_CHARS = 255


def normalize_email(value: str | None) -> str:
    """Return ``value`` as the address we store, or raise ValidationError saying what is wrong."""
    text = (value or "").strip()
    if not text:
        raise ValidationError(_("The email address is required."))
    if len(text) > MAX_EMAIL_CHARS:
        raise ValidationError(
            _("The email address is longer than %(max)s characters.", max=MAX_EMAIL_CHARS)
        )
    try:
        checked = validate_email(text, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        ask = _("Give a valid email address.")
        raise ValidationError(f"{ask} {exc}") from exc  # email_validator's detail, in English
    return checked.normalized.lower()


def login_email(value: str | None) -> str:
    """Return the address to look a person up by at sign-in (never refuses: a wrong one just fails).

    Accounts created before this rule may not pass it; they can still sign in.
    """
    try:
        return normalize_email(value)
    except ValidationError:
        # PostgreSQL refuses a NUL byte even in a lookup; U+FFFD is storable (audit) and, like
        # NUL, in no address the rules above accept, so the sign-in simply fails.
        return (value or "").replace("\x00", "\ufffd").strip().lower()
