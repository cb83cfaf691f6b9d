"""People and accounts."""

from __future__ import annotations

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update

from llmadmin import localtime
from llmadmin.config import LOCALES
from llmadmin.errors import NotFound, ValidationError
from llmadmin.extensions import db
from llmadmin.models import Download, LLMModel, Person, Task
from llmadmin.models.person import ROLE_ADMIN, ROLE_MEMBER, ROLES
from llmadmin.services.tasks import clean_text

MIN_PASSWORD = 8


def validate_password(password: str) -> None:
    """Reject passwords that are too short."""
    if len(password or "") < MIN_PASSWORD:
        raise ValidationError(
            _("The password must have at least %(count)s characters.", count=MIN_PASSWORD)
        )


def email_taken(email: str, exclude_id: int | None = None) -> bool:
    """Tell whether another person already uses ``email`` (case-insensitive)."""
    stmt = select(Person.id).where(func.lower(Person.email) == email.strip().lower())
    if exclude_id is not None:
        stmt = stmt.where(Person.id != exclude_id)
    return db.session.execute(stmt).first() is not None


def create_user(
    email: str, password: str, *, name: str | None = None, admin: bool = False
) -> Person:
    """Create a login account (or set the password and role of an existing one)."""

    email = (clean_text(email, _("Email"), required=True, max_chars=255) or "").strip().lower()
    local, _at, domain = email.partition("@")
    if not local or "." not in domain or any(c.isspace() for c in email):
        raise ValidationError(_("Give a valid email address."))
    name = clean_text(name, _("Name"), required=False, max_chars=120)
    validate_password(password)
    person = db.session.execute(
        select(Person).where(func.lower(Person.email) == email)
    ).scalar_one_or_none()
    if person is None:
        person = Person(name=name or email.split("@")[0], email=email, active=True)
        db.session.add(person)
    person.role = ROLE_ADMIN if admin else ROLE_MEMBER
    person.set_password(password)
    db.session.commit()
    return person


_UNSET = object()


def set_preferences(person_id: int, *, locale=_UNSET, timezone=_UNSET) -> Person:
    """Save a person's language and/or time zone ("" or None: back to the defaults)."""
    person = db.session.get(Person, person_id)
    if person is None:
        raise NotFound(_("Person #%(id)s does not exist.", id=person_id))
    if locale is not _UNSET:
        if locale and locale not in LOCALES:
            raise ValidationError(_("Unknown language %(locale)r.", locale=locale))
        person.locale = locale or None
    if timezone is not _UNSET:
        timezone = (timezone or "").strip()
        if timezone and not localtime.is_valid_zone(timezone):
            raise ValidationError(
                _("Unknown time zone %(zone)r; use a name such as Asia/Shanghai.", zone=timezone)
            )
        person.timezone = timezone or None
    db.session.commit()
    return person


def zone_of(person: Person | None) -> str:
    """Return the time zone times are shown to ``person`` in (theirs, else the site's)."""
    if person is not None and localtime.is_valid_zone(person.timezone):
        return person.timezone
    return current_app.config["DEFAULT_TIMEZONE"]


def set_role(person: Person, role: str) -> None:
    """Change a person's role."""
    if role not in ROLES:
        raise ValidationError(
            _("Unknown role %(role)r; use one of %(roles)s.", role=role, roles=", ".join(ROLES))
        )
    person.role = role


def delete_person(person_id: int) -> dict[str, int]:
    """Delete a person, keeping the models, tasks and downloads that point at them."""
    person = db.session.get(Person, person_id)
    if person is None:
        raise NotFound(_("Person #%(id)s does not exist.", id=person_id))
    counts = {
        "models": db.session.execute(
            update(LLMModel).where(LLMModel.maintainer_id == person_id).values(maintainer_id=None)
        ).rowcount,
        "tasks": db.session.execute(
            update(Task).where(Task.creator_id == person_id).values(creator_id=None)
        ).rowcount,
        "downloads": db.session.execute(
            update(Download).where(Download.creator_id == person_id).values(creator_id=None)
        ).rowcount,
    }
    db.session.delete(person)
    db.session.commit()
    return counts


def delete_people(person_ids: list[int], keep: int | None = None) -> tuple[int, dict[str, int]]:
    """Delete several people (never ``keep``, the person acting); return (deleted, what was kept)."""
    kept = {"models": 0, "tasks": 0, "downloads": 0}
    deleted = 0
    for person_id in person_ids:
        if person_id == keep or db.session.get(Person, person_id) is None:
            continue
        for key, n in delete_person(person_id).items():
            kept[key] += n
        deleted += 1
    return deleted, kept


def describe_kept(counts: dict[str, int]) -> str:
    """Explain which rows were kept when a person was deleted."""
    kept = [str(KEPT_KINDS.get(kind, kind)) % {"count": n} for kind, n in counts.items() if n]
    if not kept:
        return ""
    return _("Kept %(rows)s that referred to them (now without a person).", rows=_(", ").join(kept))


KEPT_KINDS = {
    "models": _l("%(count)s models"),
    "tasks": _l("%(count)s tasks"),
    "downloads": _l("%(count)s downloads"),
}
