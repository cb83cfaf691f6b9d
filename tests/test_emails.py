"""One email rule (llmadmin.emails) for create-user, the People form and the login form."""

from __future__ import annotations

import pytest

from llmadmin.emails import login_email, normalize_email
from llmadmin.errors import ValidationError
from llmadmin.extensions import db
from llmadmin.models import Person
from tests.admin.helpers import (  # noqa: F401 (fixtures)
    context_per_request_client,
    fast_passwords,
    field_errors,
    make_client,
    text,
)
from tests.conftest import login, post_form


@pytest.mark.parametrize(
    "typed, stored",
    [
        ("admin@x.test", "admin@x.test"),  # RFC 6761 test domain: accepted on purpose
        ("admin@example.com", "admin@example.com"),
        ("  Admin@Example.COM ", "admin@example.com"),  # spaces around, upper case
        ("user@xn--bcher-kva.example", "user@bücher.example"),  # IDN, stored as Unicode
        ("User@Bücher.Example", "user@bücher.example"),
        ("ü@bücher.example", "ü@bücher.example"),  # UTF-8 local part
    ],
)
def test_accepted_addresses_are_normalized(typed, stored):
    assert normalize_email(typed) == stored


@pytest.mark.parametrize(
    "typed, words",
    [
        ("admin@corp.local", "special-use"),
        ("admin@localhost", "period"),
        ("admin@intranet", "period"),
        ("ad min@example.com", ""),
        ("admin@exa mple.com", ""),
        ("admin", "@"),
        ("", "required"),
        ("a" * 250 + "@example.com", "longer than 255"),
    ],
)
def test_refused_addresses_say_why(typed, words):
    with pytest.raises(ValidationError) as info:
        normalize_email(typed)
    assert words in str(info.value)


def test_login_lookup_never_refuses_an_address():
    assert login_email(" Admin@X.Test ") == "admin@x.test"
    assert login_email("old@corp.local") == "old@corp.local"  # an account from before the rule


def _person(email: str) -> Person | None:
    db.session.expire_all()
    return db.session.execute(db.select(Person).where(Person.email == email)).scalar_one_or_none()


@pytest.mark.parametrize(
    "created, typed_at_login, stored",
    [
        ("admin@x.test", "admin@x.test", "admin@x.test"),  # the reported case
        ("Admin@X.Test", "  ADMIN@x.test ", "admin@x.test"),
        ("boss@xn--bcher-kva.example", "Boss@bücher.example", "boss@bücher.example"),
    ],
)
def test_what_create_user_accepts_the_login_form_accepts(
    app, runner, created, typed_at_login, stored
):
    result = runner.invoke(args=["create-user", created, "--password", "long-enough-pw"])
    assert result.exit_code == 0, result.output
    assert _person(stored) is not None
    client = make_client(app)
    response = login(client, typed_at_login, "long-enough-pw")
    assert response.status_code == 302, text(response)
    assert client.get("/admin/").status_code == 200


def test_create_user_and_the_people_form_refuse_the_same_address(admin_client, runner):
    result = runner.invoke(args=["create-user", "x@corp.local", "--password", "long-enough-pw"])
    assert result.exit_code != 0 and "special-use" in result.output
    response = post_form(
        admin_client,
        "/admin/person/new/",
        {"name": "X", "email": "x@corp.local", "role": "member", "active": "y"},
    )
    assert response.status_code == 200
    assert any("special-use" in e for e in field_errors(text(response), "email"))
    assert _person("x@corp.local") is None


def test_the_people_form_accepts_a_test_domain_and_stores_it_normalized(admin_client):
    response = post_form(
        admin_client,
        "/admin/person/new/",
        {"name": "T", "email": " Tess@X.Test ", "role": "member", "active": "y"},
    )
    assert response.status_code == 302
    assert _person("tess@x.test") is not None
