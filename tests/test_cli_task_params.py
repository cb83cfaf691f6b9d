"""``create-task`` takes the task's call parameters; a bad one is a clear error and creates nothing."""

from __future__ import annotations

import pytest

from llmadmin.extensions import db
from llmadmin.models import Task


def invoke(runner, model, *args):
    return runner.invoke(
        args=["create-task", "--model-id", str(model.id), "--prompt", "hello", *args]
    )


def test_create_task_with_parameters(runner, sim_model):
    result = invoke(
        runner,
        sim_model,
        "--temperature",
        "0.3",
        "--max-tokens",
        "100",
        "--top-p",
        "0.8",
        "--stop",
        "END",
        "--stop",
        "###",
        "--seed",
        "42",
        "--response-format",
        "json_object",
    )
    assert result.exit_code == 0, result.output
    task = db.session.execute(db.select(Task)).scalar_one()
    assert (task.temperature, task.max_tokens, task.top_p, task.seed) == (0.3, 100, 0.8, 42)
    assert task.stop == '["END", "###"]' and task.response_format == '{"type": "json_object"}'


@pytest.mark.parametrize(
    "args, message",
    [
        (("--temperature", "5"), "Temperature must be a number from 0 to 2."),
        (("--max-tokens", "lots"), "Max tokens must be a whole number"),
        (("--top-p", "1.01"), "Top p must be a number from 0 to 1."),
        (("--seed", "0x1"), "Seed must be a whole number"),
        (("--stop", "a", "--stop", "b", "--stop", "c", "--stop", "d", "--stop", "e"), "At most 4"),
        (("--response-format", '{"type": "object", "required": 1}'), "required must be a list"),
    ],
)
def test_a_bad_parameter_is_a_clear_error_and_creates_nothing(runner, sim_model, args, message):
    result = invoke(runner, sim_model, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Invalid value for --" in result.output
    assert db.session.execute(db.select(db.func.count()).select_from(Task)).scalar_one() == 0
