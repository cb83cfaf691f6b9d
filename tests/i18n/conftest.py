"""Shared by the language and time-zone tests: a Chinese-speaking admin and some rows to show."""

from __future__ import annotations

import pytest

from llmadmin.extensions import db
from tests.admin.helpers import context_per_request_client, fast_passwords  # noqa: F401

CHINESE = "zh_Hans_CN"


def set_person(person, **values) -> None:
    """Store ``values`` (locale, timezone) on ``person``."""
    for name, value in values.items():
        setattr(person, name, value)
    db.session.commit()


@pytest.fixture
def zh_admin_client(admin_client, admin_user):
    """The admin's client, with Chinese saved as the admin's language."""
    set_person(admin_user, locale=CHINESE)
    return admin_client
