"""The People panel through its forms, as a browser posts them."""

from __future__ import annotations

from llmadmin.extensions import db
from llmadmin.models import Download, LLMModel, Person, Task
from tests.admin.helpers import (  # noqa: F401 (fixtures)
    context_per_request_client,
    fast_passwords,
    field_errors,
    flashes,
    make_client,
    make_download,
    make_task,
    snapshot,
    text,
)
from tests.conftest import login, post_form


def person_form(**overrides) -> dict:
    form = {
        "name": "Nina New",
        "email": "nina@example.com",
        "phone": "+1 555 0100",
        "active": "y",
        "role": "member",
        "new_password": "nina-password",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def find_person(email: str) -> Person | None:
    db.session.expire_all()
    return db.session.execute(db.select(Person).where(Person.email == email)).scalar_one_or_none()


def test_create_person_who_can_log_in(admin_client, app):
    response = post_form(
        admin_client, "/admin/person/new/", person_form(email=" Nina@Example.com ")
    )
    assert response.status_code == 302
    person = find_person("nina@example.com")
    assert person is not None and person.role == "member" and person.active
    assert person.password_hash and "nina-password" not in person.password_hash

    other = make_client(app)
    response = login(other, "nina@example.com", "nina-password")
    assert response.status_code == 302
    assert other.get("/admin/task/").status_code == 200
    assert other.get("/admin/person/").status_code == 403


def test_create_admin_without_password_cannot_log_in(admin_client, app):
    post_form(admin_client, "/admin/person/new/", person_form(role="admin", new_password=None))
    person = find_person("nina@example.com")
    assert person.role == "admin" and person.password_hash is None
    other = make_client(app)
    page = text(login(other, "nina@example.com", ""))
    assert other.get("/admin/").status_code == 302
    assert "Nina" not in page


def test_edit_person_keeps_password_when_left_empty(admin_client, member_user, app):
    url = f"/admin/person/edit/?id={member_user.id}"
    response = post_form(
        admin_client,
        url,
        person_form(name="Max Renamed", email="member@example.com", role="admin", new_password=""),
    )
    assert response.status_code == 302
    row = snapshot(member_user)
    assert row["name"] == "Max Renamed" and row["role"] == "admin"
    assert row["password_hash"] == member_user.password_hash
    assert login(make_client(app), "member@example.com", "member-password").status_code == 302


def test_edit_person_sets_new_password(admin_client, member_user, app):
    post_form(
        admin_client,
        f"/admin/person/edit/?id={member_user.id}",
        person_form(name="Max", email="member@example.com", new_password="brand-new-pw"),
    )
    assert login(make_client(app), "member@example.com", "member-password").status_code == 200
    assert login(make_client(app), "member@example.com", "brand-new-pw").status_code == 302


def test_delete_person_keeps_their_rows(admin_client, member_user, sim_model):
    sim_model.maintainer_id = member_user.id
    db.session.commit()
    task = make_task(member_user, sim_model)
    download = make_download(member_user)
    response = post_form(
        admin_client, "/admin/person/delete/", {"id": str(member_user.id)}, follow_redirects=True
    )
    assert response.status_code == 200
    note = flashes(text(response))
    assert "Kept 1 models, 1 tasks, 1 downloads" in note
    assert find_person("member@example.com") is None
    assert snapshot(task)["creator_id"] is None
    assert snapshot(download)["creator_id"] is None
    assert snapshot(sim_model)["maintainer_id"] is None


def test_bulk_delete_people_keeps_rows_and_skips_self(
    admin_client, admin_user, member_user, other_member, sim_model
):
    make_task(member_user, sim_model)
    response = post_form(
        admin_client,
        "/admin/person/action/",
        {
            "action": "delete",
            "rowid": [str(member_user.id), str(other_member.id), str(admin_user.id), "999999"],
        },
        follow_redirects=True,
    )
    assert response.status_code == 200
    note = flashes(text(response))
    assert "2 person(s) deleted" in note and "Kept 1 tasks" in note
    assert "own account" in note
    assert {p.email for p in db.session.query(Person)} == {"admin@example.com"}
    assert db.session.query(Task).count() == 1


def test_admin_cannot_delete_self(admin_client, admin_user):
    response = post_form(
        admin_client, "/admin/person/delete/", {"id": str(admin_user.id)}, follow_redirects=True
    )
    assert "You cannot delete your own account." in flashes(text(response))
    assert find_person("admin@example.com") is not None


def test_deleted_rows_survive_with_counts(admin_client, member_user, sim_model):
    for _ in range(2):
        make_task(member_user, sim_model)
    post_form(admin_client, "/admin/person/delete/", {"id": str(member_user.id)})
    assert db.session.query(Task).filter(Task.creator_id.is_(None)).count() == 2
    assert db.session.query(LLMModel).count() == 1
    assert db.session.query(Download).count() == 0


# --- validation ----------------------------------------------------------------------------


def assert_not_saved(response, field: str, message: str, count_before: int):
    assert response.status_code == 200, response.status_code
    errors = field_errors(text(response), field)
    assert any(message in e for e in errors), (field, errors)
    assert db.session.query(Person).count() == count_before


def test_name_is_required(admin_client, admin_user):
    response = post_form(admin_client, "/admin/person/new/", person_form(name=""))
    assert_not_saved(response, "name", "The name is required.", 1)


def test_duplicate_email_is_refused_case_insensitively(admin_client, member_user):
    response = post_form(
        admin_client, "/admin/person/new/", person_form(email="  MEMBER@Example.COM ")
    )
    assert_not_saved(response, "email", "Another person already uses this email.", 2)


def test_duplicate_email_on_edit(admin_client, member_user, other_member):
    response = post_form(
        admin_client,
        f"/admin/person/edit/?id={other_member.id}",
        person_form(name="Olga", email="Member@example.com", new_password=""),
    )
    assert_not_saved(response, "email", "Another person already uses this email.", 3)
    assert snapshot(other_member)["email"] == "other@example.com"


def test_editing_without_changing_email_is_not_a_duplicate(admin_client, member_user):
    response = post_form(
        admin_client,
        f"/admin/person/edit/?id={member_user.id}",
        person_form(name="Max", email="member@example.com", new_password=""),
    )
    assert response.status_code == 302


def test_malformed_email(admin_client, admin_user):
    response = post_form(admin_client, "/admin/person/new/", person_form(email="not-an-email"))
    assert_not_saved(response, "email", "Give a valid email address.", 1)


def test_short_password(admin_client, admin_user):
    response = post_form(admin_client, "/admin/person/new/", person_form(new_password="short"))
    assert_not_saved(response, "new_password", "at least 8 characters", 1)


def test_nul_byte_in_name(admin_client, admin_user):
    response = post_form(admin_client, "/admin/person/new/", person_form(name="Ni\x00na"))
    assert_not_saved(response, "name", "NUL byte", 1)


def test_unknown_role(admin_client, admin_user):
    response = post_form(admin_client, "/admin/person/new/", person_form(role="superuser"))
    assert_not_saved(response, "role", "Not a valid choice", 1)


def test_two_people_without_email(admin_client, admin_user):
    for name in ("No Mail One", "No Mail Two"):
        response = post_form(
            admin_client, "/admin/person/new/", person_form(name=name, email="", new_password="")
        )
        assert response.status_code == 302
    assert db.session.query(Person).filter(Person.email.is_(None)).count() == 2
