"""Outbound allowlist (saving and calling) and the prompt policy (every way a task is made)."""

from __future__ import annotations

import json

import httpx
import pytest

from llmadmin import policy
from llmadmin.engine.executor import run_chunk
from llmadmin.errors import ValidationError
from llmadmin.extensions import db
from llmadmin.models import LLMModel, Task
from llmadmin.models.task import FAILURE, SUCCESS
from llmadmin.services import tasks as task_service
from tests.admin.helpers import field_errors, flashes, make_task
from tests.admin.test_llm_models import model_form
from tests.conftest import make_test_app, post_form


def allow(app, *entries: str) -> None:
    app.config["OUTBOUND_ALLOWLIST"] = list(entries)
    policy.init_app(app)


def block(app, *rules: tuple[str, str]) -> None:
    app.config["PROMPT_BLOCKED_PATTERNS"] = json.dumps(
        [{"pattern": p, "reason": r} for p, r in rules]
    )
    policy.init_app(app)


@pytest.fixture
def dns(monkeypatch):
    """A fake resolver: host name -> addresses (an unknown name does not resolve)."""
    table: dict[str, list[str]] = {}

    def resolve(host):
        if host not in table:
            raise OSError(f"cannot resolve {host}")
        return table[host]

    monkeypatch.setattr(policy, "resolve_host", resolve)
    return table


# --- outbound: the rules ------------------------------------------------------------------------


def check(url, *entries):
    policy.check_outbound_url(url, policy.parse_allowlist(list(entries)))


def test_no_allowlist_allows_everything():
    check("http://10.0.0.1:8080/v1")
    check("https://anything.example/v1")


@pytest.mark.parametrize(
    "url",
    ["https://api.openai.com/v1", "https://API.OpenAI.com./v1", "https://eu.api.openai.com/v1"],
)
def test_exact_hosts_and_wildcard_subdomains_are_allowed(url):
    check(url, "api.openai.com", "*.api.openai.com")


@pytest.mark.parametrize(
    "url",
    [
        "https://openai.com/v1",
        "https://api.openai.com.evil.net/v1",
        "https://evilopenai.com/v1",
        "https://xapi.openai.com/v1",
    ],
)
def test_lookalike_hosts_are_blocked(url, dns):
    with pytest.raises(policy.BlockedURL, match="not in OUTBOUND_ALLOWLIST"):
        check(url, "api.openai.com", "*.api.openai.com")


def test_wildcard_does_not_cover_the_bare_domain():
    with pytest.raises(policy.BlockedURL):
        check("https://openai.com/v1", "*.openai.com")
    check("https://api.openai.com/v1", "*.openai.com")


@pytest.mark.parametrize(
    "url, allowed",
    [
        ("http://10.1.2.3:11434/v1", True),
        ("http://10.255.0.1/v1", True),
        ("http://11.0.0.1/v1", False),
        ("http://127.0.0.1:9/v1", False),
        ("http://[::ffff:10.0.0.7]/v1", True),
        ("http://[fd00::1]/v1", True),
        ("http://[fe80::1]/v1", False),
        ("http://192.168.1.20/v1", True),
        ("http://192.168.1.21/v1", False),
    ],
)
def test_numeric_addresses_are_checked_against_the_networks_directly(url, allowed, dns):
    entries = ("10.0.0.0/8", "fd00::/8", "192.168.1.20")
    if allowed:
        check(url, *entries)
    else:
        with pytest.raises(policy.BlockedURL, match="outside OUTBOUND_ALLOWLIST"):
            check(url, *entries)
    assert not dns  # numeric hosts are never looked up


def test_a_name_is_allowed_by_network_only_if_every_address_is_inside(dns):
    dns["llm.internal"] = ["10.0.0.5", "10.0.0.6"]
    dns["mixed.internal"] = ["10.0.0.5", "169.254.169.254"]
    check("http://llm.internal/v1", "10.0.0.0/8")
    with pytest.raises(policy.BlockedURL, match="169.254.169.254"):
        check("http://mixed.internal/v1", "10.0.0.0/8")


def test_a_name_that_does_not_resolve_is_blocked_with_a_clear_message(dns):
    with pytest.raises(policy.BlockedURL, match="could not be resolved"):
        check("http://nowhere.internal/v1", "10.0.0.0/8")


def test_decimal_ip_tricks_are_resolved_and_checked(dns):
    dns["2130706433"] = ["127.0.0.1"]  # what getaddrinfo makes of it
    with pytest.raises(policy.BlockedURL):
        check("http://2130706433/v1", "10.0.0.0/8", "api.openai.com")


@pytest.mark.parametrize("entry", ["*.", "*.com", "http://x.com", "10.0.0.0/33", "a_b.com", "*"])
def test_bad_allowlist_entries_stop_the_start_up(database_uri, redis_url, entry):
    with pytest.raises(RuntimeError, match="OUTBOUND_ALLOWLIST entry"):
        make_test_app(database_uri, redis_url, OUTBOUND_ALLOWLIST=["api.openai.com", entry])


def test_allowlist_is_read_from_the_environment(database_uri, redis_url, monkeypatch):
    monkeypatch.setenv("OUTBOUND_ALLOWLIST", "api.openai.com, *.deepseek.com ,10.0.0.0/8")
    app = make_test_app(database_uri, redis_url)
    with app.app_context():
        rules = policy.outbound_policy()
    assert rules.hosts == {"api.openai.com"} and rules.suffixes == (".deepseek.com",)
    assert [str(n) for n in rules.networks] == ["10.0.0.0/8"]


# --- outbound: saving and calling ---------------------------------------------------------------


def test_saving_a_model_outside_the_allowlist_is_a_form_error(app, admin_client, dns):
    allow(app, "*.deepseek.com")
    response = post_form(
        admin_client, "/admin/llmmodel/new/", model_form(base_url="https://evil.example.com/v1")
    )
    assert response.status_code == 200
    errors = field_errors(response.get_data(as_text=True), "base_url")
    assert errors == [
        "Calls to evil.example.com are not allowed: the host is not in OUTBOUND_ALLOWLIST."
    ]
    assert db.session.execute(db.select(LLMModel)).first() is None
    response = post_form(
        admin_client, "/admin/llmmodel/new/", model_form(base_url="https://api.deepseek.com/v1")
    )
    assert response.status_code == 302


def test_a_call_to_a_blocked_url_fails_the_task_clearly_without_calling(
    app, admin_user, sim_model, dns
):
    task = task_service.create_task(prompt="hi", model_id=sim_model.id, creator_id=admin_user.id)
    db.session.refresh(task)
    allow(app, "api.openai.com")  # the model was saved before the allowlist was set
    calls = []
    transport = httpx.MockTransport(lambda request: calls.append(request) or httpx.Response(500))
    assert run_chunk(task.job_id, [task.id], transport=transport) == 0
    db.session.expire_all()
    failed = db.session.get(Task, task.id)
    assert failed.status == FAILURE and failed.error_kind == "blocked_url"
    assert (
        failed.error
        == "Calls to 127.0.0.1 are not allowed: the address is outside OUTBOUND_ALLOWLIST."
    )
    assert calls == []


def test_a_rerun_after_the_policy_changed_is_refused_without_calling(app, admin_user, sim_model):
    task = task_service.create_task(
        prompt="send the salary table", model_id=sim_model.id, creator_id=admin_user.id
    )
    db.session.refresh(task)
    block(app, (r"salary", "Payroll data must not leave the company"))
    calls = []
    transport = httpx.MockTransport(lambda request: calls.append(request) or httpx.Response(500))
    run_chunk(task.job_id, [task.id], transport=transport)
    db.session.expire_all()
    refused = db.session.get(Task, task.id)
    assert refused.status == FAILURE and refused.error_kind == "blocked_prompt"
    assert (
        refused.error
        == "The prompt was refused by the prompt policy: Payroll data must not leave the company."
    )
    assert calls == []


def test_an_allowed_url_is_called_normally(app, admin_user, sim_model):
    from tests.engine.test_executor import completion

    allow(app, "127.0.0.0/8")
    task = task_service.create_task(prompt="hi", model_id=sim_model.id, creator_id=admin_user.id)
    db.session.refresh(task)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=completion("ok")))
    run_chunk(task.job_id, [task.id], transport=transport)
    db.session.expire_all()
    assert db.session.get(Task, task.id).status == SUCCESS


def test_blocked_url_is_both_a_validation_error_and_an_llm_error():
    from llmadmin.errors import LLMError

    exc = policy.BlockedURL("no")
    assert isinstance(exc, ValidationError) and isinstance(exc, LLMError)
    assert exc.kind == "blocked_url" and not exc.retryable


# --- prompts ------------------------------------------------------------------------------------

RULES = (
    ("(?i)\\bpassword\\s*[:=]", "credentials must not be sent to a model"),
    ("\\b\\d{3}-\\d{2}-\\d{4}\\b", "looks like a US social security number"),
)


def test_patterns_come_from_json_or_a_file(app, tmp_path):
    path = tmp_path / "patterns.json"
    path.write_text(json.dumps([{"pattern": "secret", "reason": "no secrets"}]))
    app.config["PROMPT_BLOCKED_PATTERNS"] = str(path)
    policy.init_app(app)
    with pytest.raises(policy.PromptRefused, match="no secrets"):
        policy.check_prompt("a secret")


@pytest.mark.parametrize(
    "value, message",
    [
        (
            '[{"pattern": "(unclosed", "reason": "x"}]',
            "entry #1 pattern '\\(unclosed' is not a valid regular expression",
        ),
        ('[{"pattern": "ok", "reason": "x"}, {"pattern": "[", "reason": "y"}]', "entry #2"),
        ('[{"pattern": "ok"}]', 'non-empty "pattern" and "reason"'),
        ('{"pattern": "ok", "reason": "x"}', "must be a JSON list"),
        ("[not json", "is not valid JSON"),
        ("/no/such/patterns.json", "cannot be read"),
    ],
)
def test_invalid_patterns_stop_the_start_up_with_a_clear_error(
    database_uri, redis_url, value, message
):
    with pytest.raises(RuntimeError, match=message):
        make_test_app(database_uri, redis_url, PROMPT_BLOCKED_PATTERNS=value)


def test_the_service_refuses_a_prompt_naming_the_reason(app, sim_model):
    block(app, *RULES)
    with pytest.raises(
        ValidationError,
        match="The prompt was refused by the prompt policy: "
        "credentials must not be sent to a model",
    ):
        task_service.create_task(
            prompt="my Password: hunter2", model_id=sim_model.id, creator_id=None
        )
    with pytest.raises(ValidationError, match="The system prompt was refused.*social security"):
        task_service.create_task(
            prompt="ok", system_prompt="id 123-45-6789", model_id=sim_model.id, creator_id=None
        )
    assert db.session.execute(db.select(Task)).first() is None
    task_service.create_task(
        prompt="a harmless prompt", model_id=sim_model.id, creator_id=None, run=False
    )


def test_the_form_refuses_with_the_reason(app, admin_client, sim_model):
    block(app, *RULES)
    response = post_form(
        admin_client,
        "/admin/task/new/",
        {"model": str(sim_model.id), "prompt": "password = hunter2"},
    )
    assert "credentials must not be sent to a model" in flashes(response.get_data(as_text=True))
    assert db.session.execute(db.select(Task)).first() is None


def test_editing_a_task_into_a_blocked_prompt_is_refused(app, admin_client, admin_user, sim_model):
    task = make_task(admin_user, sim_model, prompt="fine", status=SUCCESS)
    block(app, *RULES)
    response = post_form(
        admin_client,
        f"/admin/task/edit/?id={task.id}",
        {"model": str(sim_model.id), "prompt": "password: x", "name": "t"},
    )
    assert "credentials must not be sent" in flashes(response.get_data(as_text=True))
    db.session.expire_all()
    assert db.session.get(Task, task.id).prompt == "fine"


def test_the_cli_refuses_with_the_reason(app, runner, sim_model):
    block(app, *RULES)
    result = runner.invoke(
        args=["create-task", "--model-id", str(sim_model.id), "--prompt", "SSN 123-45-6789"]
    )
    assert result.exit_code != 0
    assert "looks like a US social security number" in result.output
    assert db.session.execute(db.select(Task)).first() is None


def test_duplicating_old_tasks_is_refused_with_the_reason(app, admin_client, admin_user, sim_model):
    clean = make_task(admin_user, sim_model, prompt="fine")
    dirty = make_task(admin_user, sim_model, prompt="password: made before the rule")
    block(app, *RULES)
    response = post_form(
        admin_client,
        f"/admin/task/duplicate/?ids={clean.id},{dirty.id}",
        {"model_id": str(sim_model.id)},
        token_from="/admin/task/",
    )
    assert response.status_code == 200
    message = flashes(response.get_data(as_text=True))
    assert (
        "credentials must not be sent to a model" in message
        and f"copy of task #{dirty.id}" in message
    )
    db.session.expire_all()
    assert db.session.execute(db.select(db.func.count(Task.id))).scalar_one() == 2  # no copy at all
    # The session is still usable after the refusal:
    assert task_service.duplicate_tasks([clean.id], sim_model.id, admin_user.id).changed == 1


def test_bulk_duplicate_of_all_matching_rows_is_refused(app, admin_user, sim_model):
    from llmadmin.models import BulkOperation
    from llmadmin.services.bulk import run_operation, start_operation
    from llmadmin.services.selections import Selection

    make_task(admin_user, sim_model, prompt="password: x")
    block(app, *RULES)
    operation, _queued = start_operation(
        Selection("task", admin_user.id), "duplicate", {"model_id": sim_model.id}
    )
    assert run_operation(operation.id) == "FAILURE"
    db.session.expire_all()
    assert "credentials must not be sent" in db.session.get(BulkOperation, operation.id).error
    assert db.session.execute(db.select(db.func.count(Task.id))).scalar_one() == 1


def test_no_patterns_means_no_check(app, sim_model):
    block(app)
    task_service.create_task(
        prompt="password: fine here", model_id=sim_model.id, creator_id=None, run=False
    )


# --- issue 13, finding 7: default outbound blocks, numeric forms, what members see -----------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://169.254.170.2/v2/credentials",
        "http://[fd00:ec2::254]/latest",
        "http://[fe80::1]/v1",
        "http://100.100.100.200/latest/meta-data",  # Alibaba Cloud metadata
        "http://0xa9fea9fe/v1",  # 169.254.169.254 in hex
        "http://2852039166/v1",  # ... as one decimal number
        "http://0251.0376.0251.0376/v1",  # ... in octal
        "http://169.254.43518/v1",  # ... as two parts
        "http://[::ffff:169.254.169.254]/v1",
    ],
)
def test_metadata_and_link_local_addresses_are_blocked_without_any_setting(app, url):
    with pytest.raises(policy.BlockedURL, match="link-local and cloud-metadata"):
        policy.check_outbound_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:11434/v1",
        "http://10.1.2.3:8000/v1",
        "http://192.168.1.20/v1",
        "http://172.16.0.9/v1",
        "http://[fd12:3456::1]/v1",
        "http://llm.corp.internal/v1",
    ],
)
def test_private_networks_keep_working_without_configuration(app, dns, url):
    dns["llm.corp.internal"] = ["10.20.30.40"]
    policy.check_outbound_url(url)


def test_a_name_resolving_to_a_metadata_address_is_blocked(app, dns):
    dns["metadata.google.internal"] = ["169.254.169.254"]
    with pytest.raises(policy.BlockedURL, match="metadata.google.internal"):
        policy.check_outbound_url("http://metadata.google.internal/computeMetadata/v1")


def test_numeric_host_forms_are_normalised_before_the_allowlist(app, dns):
    allow(app, "10.0.0.0/8")
    policy.check_outbound_url("http://0x0a000001/v1")  # 10.0.0.1
    with pytest.raises(policy.BlockedURL, match="127.0.0.1"):
        policy.check_outbound_url("http://0x7f000001/v1")


def test_a_saved_numeric_host_is_stored_in_its_usual_form(app, admin_client):
    response = post_form(
        admin_client, "/admin/llmmodel/new/", model_form(base_url="http://0x7f000001:8000/v1")
    )
    assert response.status_code == 302
    assert db.session.execute(db.select(LLMModel.base_url)).scalar_one() == (
        "http://127.0.0.1:8000/v1"
    )
    response = post_form(
        admin_client, "/admin/llmmodel/new/", model_form(base_url="http://169.254.169.254/v1")
    )
    assert response.status_code == 200
    assert "link-local and cloud-metadata" in " ".join(
        field_errors(response.get_data(as_text=True), "base_url")
    )


def test_the_blocked_networks_follow_their_setting(database_uri, redis_url):
    app = make_test_app(database_uri, redis_url, OUTBOUND_BLOCKED_NETWORKS=["10.9.0.0/16"])
    with app.app_context():
        with pytest.raises(policy.BlockedURL):
            policy.check_outbound_url("http://10.9.1.1/v1")
        policy.check_outbound_url("http://169.254.169.254/v1")  # replaced, not added to
    with pytest.raises(RuntimeError, match="OUTBOUND_BLOCKED_NETWORKS"):
        make_test_app(database_uri, redis_url, OUTBOUND_BLOCKED_NETWORKS=["not-a-network"])


UPSTREAM_BODY = "INTERNAL-ONLY: db01.corp password=hunter2"


def test_members_see_a_classified_connection_test_admins_the_details(
    app, client, admin_user, member_user, sim_model
):
    from llmadmin.models.base import utcnow
    from tests.conftest import login

    sim_model.last_test_at = utcnow()
    sim_model.last_test_status = 500
    sim_model.last_test_latency_ms = 12.0
    sim_model.last_test_error = (
        f'The model endpoint had a server error (HTTP 500) ("{UPSTREAM_BODY}")'
    )
    db.session.commit()
    login(client, "member@example.com", "member-password")
    for url in ("/admin/llmmodel/", f"/admin/llmmodel/details/?id={sim_model.id}"):
        page = client.get(url).get_data(as_text=True)
        assert UPSTREAM_BODY not in page, url
        assert "5xx" in page and "12 ms" in page, url
    admin = app.test_client()
    login(admin, "admin@example.com", "admin-password")
    assert UPSTREAM_BODY in admin.get("/admin/llmmodel/").get_data(as_text=True)


@pytest.mark.parametrize("kind", ["connection_error", "connect_timeout", "server_error"])
def test_members_see_a_classified_task_error_admins_the_details(
    app, member_client, admin_user, member_user, sim_model, kind
):
    task = make_task(member_user, sim_model, status=FAILURE)
    task.error = f"Could not reach 10.0.0.5:6379 ({UPSTREAM_BODY})"
    task.error_kind = kind
    db.session.commit()
    page = member_client.get(f"/admin/task/details/?id={task.id}").get_data(as_text=True)
    assert UPSTREAM_BODY not in page and "10.0.0.5" not in page
    assert ("could not be reached" in page) == (kind != "server_error")
    status = member_client.get(f"/admin/task/status.json?ids={task.id}&with_result=1").get_json()
    assert UPSTREAM_BODY not in status[str(task.id)]["error"]
