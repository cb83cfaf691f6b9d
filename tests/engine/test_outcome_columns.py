"""A task column the worker fills is one entry in the writer's mapping."""

from decimal import Decimal

from llmadmin.engine.writer import OUTCOME_COLUMNS, failure_columns, success_columns
from llmadmin.llm.request import ChatResult
from llmadmin.models import Task


def test_outcome_columns_are_task_columns():
    assert set(OUTCOME_COLUMNS) <= set(Task.__table__.columns.keys())


def test_success_and_failure_fill_only_outcome_columns():
    result = ChatResult(
        text="hi", prompt_tokens=3, completion_tokens=1, status_code=200, finish_reason="length"
    )
    success = success_columns(result, 12.5, Decimal("0.000004"), calls=2)
    failure = failure_columns("HTTP 500", "server_error", 3.0, "partial", calls=1)
    assert set(success) <= set(OUTCOME_COLUMNS)
    assert set(failure) <= set(OUTCOME_COLUMNS)
    assert success["result"] == "hi" and success["prompt_tokens"] == 3
    assert success["finish_reason"] == "length" and success["calls"] == 2
    assert failure == {
        "result": "partial",
        "error": "HTTP 500",
        "error_kind": "server_error",
        "latency_ms": 3.0,
        "calls": 1,
        "error_frame": None,  # a failure without a frame (engine.final_error gives one)
    }
