"""Files and batches through the gateway, driven by the official ``openai`` SDK unchanged."""

from __future__ import annotations

import json

import openai
import pytest

from llmadmin.extensions import db
from llmadmin.models import LLMModel, Task
from llmadmin.services.api_tokens import create_token
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def files_dir(app, tmp_path):
    app.config["GATEWAY_FILES_DIR"] = str(tmp_path / "gateway-files")
    app.config["BATCH_UPLOAD_DIR"] = str(tmp_path / "batch-uploads")


@pytest.fixture
def sim2(app, sim_row):
    """A second model row on the same simulated endpoint (lines may name different models)."""
    row = LLMModel(
        name="Sim2",
        base_url=sim_row.base_url,
        model_name="sim-chat-2",
        simulated=True,
        max_attempts=1,
        max_concurrency=8,
    )
    db.session.add(row)
    db.session.commit()
    return row


def line(custom_id: str, model: str, content: str) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": content}]},
    }


def jsonl(lines: list[dict]) -> bytes:
    return "".join(json.dumps(x) + "\n" for x in lines).encode()


def upload(client, lines: list[dict], name: str = "in.jsonl"):
    return client.files.create(file=(name, jsonl(lines)), purpose="batch")


def poll(client, batch_id: str, statuses: tuple[str, ...]):
    def done():
        found = client.batches.retrieve(batch_id)
        return found if found.status in statuses else None

    return wait_until(done, 60, 0.2, f"batch {batch_id} in {statuses}")


def test_a_batch_runs_and_its_output_and_error_files_match_custom_ids(client, sim2, workers):
    workers.start(1)
    lines = [
        line("a", "Sim", "hello"),
        line("b", "Sim2", "world"),
        line("c", "Sim", "boom [[sim: status=500]]"),
    ]
    uploaded = upload(client, lines)
    assert uploaded.purpose == "batch" and uploaded.bytes == len(jsonl(lines))
    assert uploaded.filename == "in.jsonl"
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    assert client.files.content(uploaded.id).content == jsonl(lines)

    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "nightly"},
    )
    assert batch.status == "validating" and batch.input_file_id == uploaded.id
    assert batch.metadata == {"run": "nightly"} and batch.endpoint == "/v1/chat/completions"

    done = poll(client, batch.id, ("completed",))
    assert done.request_counts.total == 3
    assert done.request_counts.completed == 2 and done.request_counts.failed == 1
    assert done.completed_at and done.in_progress_at and done.created_at
    assert done.output_file_id and done.error_file_id

    output = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(o["custom_id"] for o in output) == ["a", "b"]
    for item in output:
        assert item["response"]["status_code"] == 200
        assert item["response"]["body"]["choices"][0]["message"]["content"]
    errors = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    assert [e["custom_id"] for e in errors] == ["c"]
    assert client.files.retrieve(done.output_file_id).purpose == "batch_output"
    with pytest.raises(openai.BadRequestError):  # a batch's files are not stored: no delete
        client.files.delete(done.output_file_id)

    # the input file can be deleted afterwards; the batch's files stay
    assert client.files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    assert client.files.content(done.output_file_id).text


def test_an_invalid_file_makes_a_failed_batch_with_errors(client, sim_row, workers):
    workers.start(1)
    bad = [line("a", "Sim", "ok"), line("b", "NoSuchModel", "x"), {"custom_id": "c"}]
    uploaded = upload(client, bad)
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    failed = poll(client, batch.id, ("failed",))
    assert failed.errors is not None and failed.errors.object == "list"
    assert {e.line for e in failed.errors.data} >= {2, 3}
    assert all(e.message for e in failed.errors.data)
    assert failed.output_file_id is None
    assert db.session.query(Task).count() == 0


def test_cancel_keeps_finished_results(client, sim_row, workers):
    uploaded = upload(
        client, [line(f"s{i}", "Sim", "slow [[sim: latency_ms=4000]]") for i in range(3)]
    )
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    canceled = client.batches.cancel(batch.id)
    assert canceled.status in ("cancelling", "cancelled")
    workers.start(1)  # the creation job finds the batch canceled
    final = poll(client, batch.id, ("cancelled",))
    assert final.cancelled_at and final.request_counts.completed == 0
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_list_paginates_and_is_per_person(client, server, sim_row, other_member):
    uploaded = upload(client, [line("a", "Sim", "x")])
    made = [
        client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id
        for _ in range(3)
    ]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == made[::-1][:2] and first.has_more
    rest = client.batches.list(limit=2, after=first.data[-1].id)
    assert [b.id for b in rest.data] == [made[0]] and not rest.has_more
    assert [b.id for b in client.batches.list(limit=2)] == made[::-1]
    assert [f.id for f in client.files.list()] == [uploaded.id]

    other = openai.OpenAI(
        base_url=f"{server}/v1", api_key=create_token(other_member.id, "x")[1], max_retries=0
    )
    assert other.batches.list().data == [] and other.files.list().data == []
    with pytest.raises(openai.NotFoundError):
        other.batches.retrieve(made[0])
    with pytest.raises(openai.NotFoundError):
        other.files.content(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        other.files.delete(uploaded.id)
    with pytest.raises(openai.NotFoundError):  # someone else's file is unknown to them
        other.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )


def test_bad_requests_have_openais_shape(app, client, sim_row):
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=("in.jsonl", b'{"a": 1}\n'), purpose="fine-tune")
    assert err.value.param == "purpose"
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=("in.csv", b"prompt\nx\n"), purpose="batch")
    assert err.value.param == "file"
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-0123456789abcdef0123456789abcdef")
    with pytest.raises(openai.NotFoundError):
        client.files.content("file-batch-999-output")
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_999")
    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    uploaded = upload(client, [line("a", "Sim", "x")])
    for endpoint, window, param in (
        ("/v1/embeddings", "24h", "endpoint"),
        ("/v1/chat/completions", "1h", "completion_window"),
    ):
        with pytest.raises(openai.BadRequestError) as err:
            client.batches.create(
                input_file_id=uploaded.id, endpoint=endpoint, completion_window=window
            )
        assert err.value.param == param
        assert err.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        client.files.delete("file-batch-999-error")
    app.config["BATCH_MAX_UPLOAD_BYTES"] = 100
    with pytest.raises(openai.APIStatusError) as err:  # counted while it is written
        client.files.create(
            file=("big.jsonl", jsonl([line("a", "Sim", "x" * 200)])), purpose="batch"
        )
    assert err.value.status_code == 413 and err.value.body["param"] == "file"
    assert [f.id for f in client.files.list()] == [uploaded.id]  # nothing half-written kept
    with pytest.raises(openai.APIStatusError) as err:
        client.files.create(file=("big.jsonl", b"x" * 200_000), purpose="batch")
    assert err.value.status_code == 413
