"""Bad input through the services, the CLI and the admin form: a clear error and nothing changed.

Text that is valid but unusual (right-to-left scripts, emoji, joiners, bidi controls) is
stored intact and read back equal, and survives a real worker run.
"""

from __future__ import annotations

import pytest

from llmadmin.errors import ValidationError
from llmadmin.extensions import db
from llmadmin.models import LLMModel, Person, Task
from llmadmin.models.task import SUCCESS
from llmadmin.queues import get_queue
from llmadmin.services import tasks as svc
from tests.admin.helpers import (  # noqa: F401 (fixtures)
    context_per_request_client,
    fast_passwords,
    field_errors,
    text,
)
from tests.conftest import post_form
from tests.faults.harness import rows

pytestmark = pytest.mark.slow

TEN_MB = "x" * (10 * 1024 * 1024)
UNUSUAL = (
    "مرحبا بالعالم — שלום עולם 👩🏽‍💻🚀 e\u0301 \u202eabc\u202c \u200f‏ 中文 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 "
    "\u2066isolate\u2069 🏳️‍🌈"
)

BAD_PROMPTS = [
    ("", "Prompt is required."),
    ("   \n\t ", "Prompt is required."),
    (TEN_MB, "Prompt is too long"),
    ("before\x00after", "Prompt contains a NUL byte"),
    ("lone \ud800 surrogate", "Prompt contains invalid characters"),
    ("lone \udfff low surrogate", "Prompt contains invalid characters"),
]


def _state() -> tuple:
    """What a rejected input must not change: every table we write, and the queue."""
    db.session.expire_all()
    counts = tuple(
        db.session.execute(db.select(db.func.count()).select_from(m)).scalar_one()
        for m in (Task, Person, LLMModel)
    )
    db.session.commit()
    return counts, get_queue("llm").count


@pytest.fixture
def model(app):
    row = LLMModel(
        name="Input checks", base_url="http://127.0.0.1:9/v1", model_name="sim-chat", simulated=True
    )
    db.session.add(row)
    db.session.commit()
    return row


def _cli(runner, *args):
    result = runner.invoke(args=[str(a) for a in args])
    # A clear error is click's "Error: ..." and exit status 1, never a traceback.
    assert isinstance(result.exception, SystemExit) or result.exception is None, repr(
        result.exception
    )
    return result


@pytest.mark.parametrize("prompt, message", BAD_PROMPTS, ids=lambda v: repr(v)[:20])
def test_bad_prompt_through_the_service(model, prompt, message):
    before = _state()
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        svc.create_task(prompt=prompt, model_id=model.id, creator_id=None)
    assert _state() == before


@pytest.mark.parametrize("prompt, message", BAD_PROMPTS, ids=lambda v: repr(v)[:20])
def test_bad_prompt_through_the_cli(runner, model, prompt, message):
    before = _state()
    result = _cli(runner, "create-task", "--model-id", model.id, "--prompt", prompt)
    assert result.exit_code == 1 and f"Error: {message}" in result.output, result.output[:300]
    assert _state() == before


@pytest.mark.parametrize(
    "args, message",
    [
        (("--system-prompt", "sys\x00"), "System prompt contains a NUL byte"),
        (("--system-prompt", TEN_MB), "System prompt is too long"),
        (("--name", "n" * 201), "Name is too long"),
        (("--name", "name\ud83d"), "Name contains invalid characters"),
        (("--creator-id", "424242"), "The chosen creator does not exist."),
    ],
    ids=["nul-system", "10mb-system", "long-name", "surrogate-name", "no-creator"],
)
def test_bad_task_fields_through_the_cli(runner, model, args, message):
    before = _state()
    result = _cli(runner, "create-task", "--model-id", model.id, "--prompt", "fine", *args)
    assert result.exit_code == 1 and message in result.output, result.output[:300]
    assert _state() == before


@pytest.mark.parametrize("model_id", ["0", "-1", "424242", "99999999999999999999"])
def test_bad_model_id_through_the_cli(runner, model, model_id):
    before = _state()
    result = _cli(runner, "create-task", "--model-id", model_id, "--prompt", "fine")
    # "Choose a model for the task." from the service, or click's own range error.
    assert result.exit_code in (1, 2) and "Error: " in result.output, result.output
    assert _state() == before


@pytest.mark.parametrize(
    "email, password, message",
    [
        ("no-at-sign", "long-enough-1", "Give a valid email address."),
        ("ok@example.com", "short", "at least 8 characters"),
    ],
)
def test_bad_account_through_the_cli(runner, app, email, password, message):
    before = _state()
    result = _cli(runner, "create-user", email, "--password", password)
    assert result.exit_code == 1 and message in result.output, result.output
    assert _state() == before


@pytest.mark.parametrize(
    "email, name",
    [
        ("nul\x00byte@example.com", None),
        ("ok@example.com", "lone \ud800 surrogate"),
        ("ok@example.com", TEN_MB),
        ("a" * 300 + "@example.com", None),
        ("@", None),
    ],
    ids=["nul-email", "surrogate-name", "10mb-name", "300-char-email", "bare-at"],
)
def test_bad_account_fields_through_the_cli(runner, app, email, name):
    before = _state()
    args = ["create-user", email, "--password", "long-enough-1"] + (
        ["--name", name] if name else []
    )
    result = runner.invoke(args=args)
    assert result.exit_code == 1 and result.output.startswith("Error: "), (
        repr(result.exception),
        result.output[:200],
    )
    assert _state() == before


def test_unusual_text_is_stored_intact(runner, app, model):
    task = svc.create_task(
        prompt=UNUSUAL,
        system_prompt=UNUSUAL[::-1],
        name=UNUSUAL[:100],
        model_id=model.id,
        creator_id=None,
        run=False,
    )
    result = _cli(
        runner,
        "create-task",
        "--model-id",
        model.id,
        "--prompt",
        UNUSUAL,
        "--name",
        "cli " + UNUSUAL[:50],
    )
    assert result.exit_code == 0, result.output
    user = _cli(
        runner,
        "create-user",
        "rtl@example.com",
        "--password",
        "long-enough-1",
        "--name",
        UNUSUAL[:60],
    )
    assert user.exit_code == 0, user.output

    db.session.expire_all()
    raw = db.session.execute(
        db.text("SELECT prompt, system_prompt, name FROM task ORDER BY id")
    ).all()
    name = db.session.execute(db.text("SELECT name FROM person")).scalar_one()
    db.session.commit()
    assert tuple(raw[0]) == (UNUSUAL, UNUSUAL[::-1], UNUSUAL[:100])
    assert raw[1][0] == UNUSUAL and raw[1][2] == "cli " + UNUSUAL[:50]
    assert name == UNUSUAL[:60]
    assert task.id


def test_unusual_text_survives_a_worker_run(fault):
    fault.name = "RTL/emoji prompt end to end"
    model = fault.model()
    fault.start_workers(1)
    task = svc.create_task(prompt=UNUSUAL, model_id=model.id, creator_id=None)
    elapsed = fault.wait_final([task.id], timeout=30)
    fault.keys.clear()  # no sim key in this prompt: the echo is the check
    report = fault.report([task.id], recovery_s=elapsed, note="prompt echoed back intact")
    assert report.stuck == 0, fault.workers.logs()
    row = rows([task.id])[task.id]
    assert row.status == SUCCESS and UNUSUAL in row.result, row


# --- the admin form ---------------------------------------------------------------------


def model_form(**overrides) -> dict:
    form = {
        "name": "DeepSeek",
        "base_url": "https://api.deepseek.com/v1",
        "new_api_key": "sk-test-key-1",
        "model_name": "deepseek-chat",
        "enabled": "y",
        "temperature": "0.7",
        "max_tokens": "1024",
        "timeout_seconds": "60",
        "max_concurrency": "8",
        "rpm_limit": "0",
        "max_attempts": "3",
        "breaker_threshold": "5",
        "breaker_cooldown_seconds": "30",
        "price_input_per_1k": "",
        "price_output_per_1k": "",
    }
    form.update(overrides)
    return form


@pytest.mark.parametrize(
    "field, value",
    [
        ("base_url", "javascript:alert(1)"),
        ("base_url", "http://exa mple.com/v1"),
        ("base_url", "http://example.com:0/v1"),
        ("base_url", "http://example.com:-1/v1"),
        ("base_url", "http://" + "a" * 64 + ".example.com/v1"),
        ("base_url", "http://example.com/" + "v" * 600),
        ("base_url", "http://example.com/v1\x00"),
        ("base_url", "http://[::1/v1"),
        ("base_url", "http://[not-an-ip]/v1"),
        ("max_concurrency", "-5"),
        ("max_concurrency", "99999999999999999999"),
        ("max_tokens", "-1"),
        ("max_tokens", "1e30"),
        ("timeout_seconds", "-1"),
        ("timeout_seconds", "1e400"),
        ("temperature", "nan"),
        ("temperature", "-inf"),
        ("rpm_limit", "-1"),
        ("rpm_limit", "10000000000"),
        ("max_attempts", "1000"),
        ("breaker_cooldown_seconds", "-30"),
        ("price_output_per_1k", "NaN"),
        ("price_output_per_1k", "1e999"),
    ],
    ids=lambda v: repr(v)[:24],
)
def test_bad_model_field_through_the_admin_form(admin_client, field, value):
    before = _state()
    response = post_form(admin_client, "/admin/llmmodel/new/", model_form(**{field: value}))
    assert response.status_code == 200, response.status_code
    assert field_errors(text(response), field), f"no error next to {field}"
    assert _state() == before
