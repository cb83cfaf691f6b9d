"""Batch files and the batch service: parse, validate, create, counts, cancel, retry, results."""

from __future__ import annotations

import io
import json
import os
from datetime import timedelta

import pytest
from openpyxl import Workbook
from rq.job import Job
from sqlalchemy import event

from llmadmin.errors import Conflict, ItemsInvalid, NotFound, ValidationError
from llmadmin.extensions import db
from llmadmin.lifecycle import transition
from llmadmin.models import Batch, Task
from llmadmin.models.batch import BatchStatus
from llmadmin.models.task import FAILURE, QUEUED, RUNNING, SUCCESS
from llmadmin.queues import get_redis
from llmadmin.services import batch_files, batch_results, batch_uploads, batches
from tests.conftest import run_batch_jobs


def openai_line(custom_id, model="Sim", content="Hi", **body):
    return json.dumps(
        {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": model,
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": content},
                ],
                **body,
            },
        }
    )


def upload(person_id, name, data: bytes) -> str:
    return batches.store_upload(io.BytesIO(data), name, person_id)


def lines_of(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return list(batch_files.read_lines(str(path), batch_files.format_of(name)))


# --- reading files ---------------------------------------------------------------------


def test_openai_jsonl_lines_become_task_items(app, tmp_path):
    data = "\n".join([openai_line("a", temperature=0.2, max_completion_tokens=5), ""]).encode()
    (line,) = lines_of(tmp_path, "in.jsonl", data)
    assert line.ok and line.custom_id == "a"
    assert line.item["prompt"] == "Hi" and line.item["system_prompt"] == "Be brief."
    assert line.item["parameters"] == {"temperature": 0.2, "max_tokens": 5}


@pytest.mark.parametrize(
    "text, field, words",
    [
        ("{not json", None, "not JSON"),
        ("[1]", None, "JSON object"),
        (json.dumps({"prompt": "x", "model": "Sim", "colour": 1}), "colour", "Unknown field"),
        (
            json.dumps({"method": "POST", "url": "/v1/chat/completions", "body": {}}),
            "custom_id",
            "",
        ),
        (
            json.dumps({"custom_id": "a", "method": "GET", "url": "/v1/chat/completions"}),
            "method",
            "",
        ),
        (openai_line("a").replace("/v1/chat/completions", "/v1/embeddings"), "url", ""),
        (openai_line("a", tools=[]), "body.tools", "not supported"),
        (openai_line("a", stream=True), "body.stream", ""),
        (openai_line("a", n=2), "body.n", "one answer"),
    ],
)
def test_bad_jsonl_lines_say_which_field(app, tmp_path, text, field, words):
    good = json.dumps({"prompt": "ok", "model": "Sim"})
    lines = lines_of(tmp_path, "in.jsonl", f"{good}\n{text}\n".encode())
    assert lines[0].ok
    bad = lines[1]
    assert not bad.ok and bad.number == 2 and bad.field == field
    assert words in bad.message


def test_csv_with_bom_aliases_and_parameter_columns(app, tmp_path):
    data = "\ufeffName,Prompt,System prompt,Model,Custom ID,temperature\nA,Hello,,Sim,x1,0.5\n\n"
    (line,) = lines_of(tmp_path, "in.csv", data.encode("utf-8"))
    assert line.number == 2 and line.custom_id == "x1"
    assert line.item["name"] == "A" and line.item["prompt"] == "Hello"
    assert line.param_cells == {"temperature": "0.5"}


def test_csv_in_another_encoding_is_refused_clearly(app, tmp_path):
    data = "prompt,model\n退款申请,Sim\n".encode("gbk")
    with pytest.raises(ValidationError, match="not UTF-8"):
        lines_of(tmp_path, "in.csv", data)


@pytest.mark.parametrize(
    "header, words",
    [("prompt,name\n", "missing: Model"), ("prompt,model,colour\n", "Unknown column 'colour'")],
)
def test_csv_columns_missing_or_unknown(app, tmp_path, header, words):
    with pytest.raises(ValidationError, match=words):
        lines_of(tmp_path, "in.csv", header.encode())


def test_xlsx_rows(app, tmp_path):
    book = Workbook()
    sheet = book.active
    sheet.append(["prompt", "model", "max_tokens", "custom_id"])
    sheet.append(["Hello", "Sim", 12, 7])
    sheet.append([None, None, None, None])
    sheet.append(["Bye", "Sim", None, None])
    path = tmp_path / "in.xlsx"
    book.save(path)
    lines = list(batch_files.read_lines(str(path), "xlsx"))
    assert [line.number for line in lines] == [2, 4]
    assert lines[0].param_cells == {"max_tokens": 12} and lines[0].custom_id == "7"


def test_a_file_that_is_not_a_workbook(app, tmp_path):
    with pytest.raises(ValidationError, match="not a readable .xlsx"):
        lines_of(tmp_path, "in.xlsx", b"prompt,model\n")


def test_unknown_extension(app):
    with pytest.raises(ValidationError, match=".csv, .xlsx or .jsonl"):
        batch_files.format_of("prompts.txt")


# --- validating and creating -------------------------------------------------------------


def test_validation_summarises_and_creates_nothing(app, sim_model, member_user):
    data = "\n".join(
        [
            openai_line("a"),
            openai_line("b", model="Nope"),
            openai_line("a"),
            openai_line("c", temperature=9),
            openai_line("d"),
        ]
    ).encode()
    upload_id = upload(member_user.id, "in.jsonl", data)
    meta, summary = batches.validate_upload(upload_id, member_user.id)
    assert meta["format"] == "jsonl"
    assert (summary.lines, summary.valid, summary.invalid) == (5, 2, 3)
    assert summary.per_model == {"Sim": 2}
    assert [(e["line"], e["field"]) for e in summary.errors] == [
        (2, "model"),
        (3, "custom_id"),
        (4, "parameters.temperature"),
    ]
    assert db.session.query(Task).count() == 0 and db.session.query(Batch).count() == 0


def make(person_id, name, data: bytes, **kwargs) -> Batch:
    """Upload, preview and confirm a file, then run its creation job as a worker would."""
    upload_id = upload(person_id, name, data)
    batches.validate_upload(upload_id, person_id)
    batch_id = batches.create_batch(upload_id, person_id, **kwargs).id
    run_batch_jobs()
    return db.session.get(Batch, batch_id)


def test_create_batch_answers_at_once_then_a_job_makes_the_tasks(app, sim_model, member_user):
    data = "\n".join(openai_line(f"r{i}") for i in range(5)) + "\n" + openai_line("x", model="No")
    upload_id = upload(member_user.id, "in.jsonl", data.encode())
    batches.validate_upload(upload_id, member_user.id)
    batch = batches.create_batch(upload_id, member_user.id, "My batch")
    assert batch.status == BatchStatus.VALIDATING and batch.queued
    assert (batch.line_count, batch.expires_at - batch.created_at) == (6, timedelta(hours=24))
    assert db.session.query(Task).count() == 0  # nothing inserted inside the request
    job = Job.fetch(batch.job_id, connection=get_redis())
    assert job.func_name == "llmadmin.jobs.batches.create_batch_tasks"
    assert job.args == (batch.id, batch.job_id)

    assert run_batch_jobs() == [BatchStatus.IN_PROGRESS]
    batch = db.session.get(Batch, batch.id)
    assert batch.status == BatchStatus.IN_PROGRESS and batch.in_progress_at is not None
    assert (batch.total, batch.lines, batch.invalid_lines) == (5, 6, 1)
    assert batch.source_path is None
    tasks = db.session.query(Task).order_by(Task.id).all()
    assert [t.custom_id for t in tasks] == [f"r{i}" for i in range(5)]
    assert [t.batch_line for t in tasks] == [1, 2, 3, 4, 5]
    assert {t.status for t in tasks} == {QUEUED} and {t.batch_id for t in tasks} == {batch.id}
    found = batches.refresh([batch])[batch.id]
    assert found.as_dict() == {
        "total": 5,
        "queued": 5,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "canceled": 0,
    }
    with pytest.raises(NotFound):  # the upload is used up
        batches.upload_info(upload_id, member_user.id)
    assert not [n for n in os.listdir(batch_uploads.upload_dir()) if n.startswith(upload_id)]


def test_all_or_nothing_fails_the_batch_and_creates_no_task(app, sim_model, member_user):
    data = openai_line("a") + "\n" + openai_line("b", model="Nope")
    upload_id = upload(member_user.id, "in.jsonl", data.encode())
    batch_id = batches.create_batch(upload_id, member_user.id, all_or_nothing=True).id
    assert run_batch_jobs() == [BatchStatus.FAILED]
    batch = db.session.get(Batch, batch_id)
    assert batch.status == BatchStatus.FAILED and "nothing was created" in batch.error
    assert json.loads(batch.line_errors)[0]["line"] == 2
    assert db.session.query(Task).count() == 0


def test_a_previewed_file_without_valid_lines_is_refused_at_once(app, sim_model, member_user):
    upload_id = upload(member_user.id, "in.csv", b"prompt,model\nHi,Nope\n")
    batches.validate_upload(upload_id, member_user.id)
    with pytest.raises(ItemsInvalid, match="nothing was created"):
        batches.create_batch(upload_id, member_user.id)
    assert db.session.query(Batch).count() == 0
    batches.upload_info(upload_id, member_user.id)  # still usable


def test_a_file_without_valid_lines_fails_in_the_job(app, sim_model, member_user):
    upload_id = upload(member_user.id, "in.csv", b"prompt,model\nHi,Nope\n")
    batch_id = batches.create_batch(upload_id, member_user.id).id  # not previewed
    assert run_batch_jobs() == [BatchStatus.FAILED]
    batch = db.session.get(Batch, batch_id)
    assert "nothing was created" in batch.error and db.session.query(Task).count() == 0


def test_someone_elses_upload_is_not_found(app, sim_model, member_user, other_member):
    upload_id = upload(member_user.id, "in.csv", b"prompt,model\nHi,Sim\n")
    with pytest.raises(NotFound):
        batches.validate_upload(upload_id, other_member.id)
    with pytest.raises(NotFound):
        batches.upload_info("../../etc/passwd", member_user.id)


def _finish(ids, status, **values):
    transition(ids, RUNNING, from_statuses=(QUEUED,))
    transition(ids, status, **values)


def test_status_follows_the_tasks_and_retry_reopens(app, sim_model, member_user):
    data = "\n".join(openai_line(f"r{i}") for i in range(3))
    batch = make(member_user.id, "in.jsonl", data.encode())
    ids = [t.id for t in db.session.query(Task).order_by(Task.id)]
    _finish(ids[:2], SUCCESS, result="hello", prompt_tokens=3, completion_tokens=2)
    _finish(ids[2:], FAILURE, error="boom", error_kind="server_error")
    batches.refresh([batch])
    assert batch.status == BatchStatus.COMPLETED
    last = max(t.finished_at for t in db.session.query(Task))
    assert batch.completed_at == last
    out = list(batch_results.result_lines(batch.id, "output"))
    assert [o["custom_id"] for o in out] == ["r0", "r1"]
    assert out[0]["response"]["body"]["choices"][0]["message"]["content"] == "hello"
    assert out[0]["response"]["body"]["usage"]["total_tokens"] == 5
    (err,) = batch_results.result_lines(batch.id, "error")
    assert err["custom_id"] == "r2" and err["error"]["message"] == "boom"
    assert batch_results.openai_batch(batch, batches.counts([batch.id])[batch.id])[
        "request_counts"
    ] == {"total": 3, "completed": 2, "failed": 1}

    outcome = batches.retry_failed_lines(batch.id)
    assert outcome.changed == 1
    db.session.expire_all()
    assert db.session.get(Batch, batch.id).status == BatchStatus.IN_PROGRESS
    assert db.session.get(Task, ids[2]).status == QUEUED


def test_cancel_keeps_finished_results(app, sim_model, member_user):
    data = "\n".join(openai_line(f"r{i}") for i in range(3))
    batch = make(member_user.id, "in.jsonl", data.encode())
    ids = [t.id for t in db.session.query(Task).order_by(Task.id)]
    _finish(ids[:1], SUCCESS, result="kept")
    batches.cancel_batch(batch.id)
    db.session.expire_all()
    batch = db.session.get(Batch, batch.id)
    assert batch.status == BatchStatus.CANCELLED and batch.cancelled_at is not None
    assert batches.counts([batch.id])[batch.id].as_dict()["canceled"] == 2
    assert db.session.get(Task, ids[0]).result == "kept"
    with pytest.raises(Conflict):
        batches.cancel_batch(batch.id)


def test_counts_are_one_query_for_many_batches(app, sim_model, member_user):
    made = [make(member_user.id, "a.csv", b"prompt,model\nA,Sim\nB,Sim\n") for _ in range(3)]
    ids = [b.id for b in made]
    statements = []

    def count(*args):
        statements.append(args)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        found = batches.counts(ids)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(statements) == 1
    assert [found[i].total for i in ids] == [2, 2, 2]


def test_a_second_confirm_of_the_same_upload_makes_nothing(app, sim_model, member_user):
    upload_id = upload(member_user.id, "in.csv", b"prompt,model\nHi,Sim\n")
    batches.claim(upload_id)  # another request is creating it right now
    with pytest.raises(NotFound):
        batches.create_batch(upload_id, member_user.id)
    assert db.session.query(Batch).count() == 0


def test_a_refused_confirm_leaves_the_upload_usable(app, sim_model, member_user):
    upload_id = upload(
        member_user.id,
        "in.jsonl",
        (openai_line("a") + "\n" + openai_line("b", model="No")).encode(),
    )
    batches.validate_upload(upload_id, member_user.id)
    with pytest.raises(ItemsInvalid):
        batches.create_batch(upload_id, member_user.id, all_or_nothing=True)
    batch_id = batches.create_batch(upload_id, member_user.id).id
    run_batch_jobs()
    assert db.session.get(Batch, batch_id).total == 1


def test_a_long_csv_prompt_is_read(app, tmp_path):
    long_prompt = "长" * 150_000
    (line,) = lines_of(tmp_path, "in.csv", f"prompt,model\n{long_prompt},Sim\n".encode())
    assert line.item["prompt"] == long_prompt


def test_keep_failed_leaves_one_failed_batch_with_the_errors(app, sim_model, member_user, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(openai_line("a") + "\n" + openai_line("b", model="Nope") + "\n")
    batch = batches.create_batch_from_file(
        str(path), "jsonl", member_user.id, all_or_nothing=True, keep_failed=True
    )
    assert (
        batch_results.openai_batch(batch, batches.counts([batch.id])[batch.id])["status"]
        == "validating"
    )  # OpenAI's POST /v1/batches answers at once
    run_batch_jobs()
    batch = db.session.get(Batch, batch.id)
    assert batch.status == BatchStatus.FAILED and batch.failed_at is not None
    assert "nothing was created" in batch.error and db.session.query(Task).count() == 0
    info = batch_results.openai_batch(batch, batches.counts([batch.id])[batch.id])
    assert info["status"] == "failed" and info["errors"]["data"][0]["line"] == 2
    assert info["errors"]["data"][0]["param"] == "model"


def test_utf16_and_binary_uploads_are_refused_at_once(app, member_user):
    with pytest.raises(ValidationError, match="not UTF-8"):
        upload(member_user.id, "in.csv", "prompt,model\nHi,Sim\n".encode("utf-16"))
    with pytest.raises(ValidationError, match="binary"):
        upload(member_user.id, "in.jsonl", b"PK\x03\x04 zip")


# --- conversations in batch lines ------------------------------------------------------------

TALK = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
    {"role": "user", "content": "How are you?"},
]


def talk_line(custom_id, messages=TALK, **body):
    return json.dumps(
        {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "Sim", "messages": messages, **body},
        }
    )


def test_an_openai_line_with_earlier_turns_becomes_a_task_with_them(app, sim_model, member_user):
    data = "\n".join(
        [
            talk_line("talk", frequency_penalty=0.5),
            json.dumps({"prompt": "And now?", "model": "Sim", "messages": TALK[1:3]}),
            openai_line("plain"),
        ]
    ).encode()
    batch = make(member_user.id, "in.jsonl", data)
    assert (batch.total, batch.invalid_lines) == (3, 0)
    talk, plain_line, plain = db.session.query(Task).order_by(Task.id).all()
    expected = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
    assert (talk.system_prompt, talk.prompt, talk.messages) == (
        "Be brief.",
        "How are you?",
        expected,
    )
    assert talk.frequency_penalty == 0.5
    assert (plain_line.prompt, plain_line.messages) == ("And now?", expected)
    assert plain.messages is None


@pytest.mark.parametrize(
    "messages, field, words",
    [
        (TALK[:3], "body.messages", "last message must be a user message"),
        (
            [TALK[1], {"role": "assistant", "content": None, "tool_calls": [{"id": "x"}]}, TALK[3]],
            "body.messages[1].tool_calls",
            "tool_calls",
        ),
        ([TALK[1], {"role": "tool", "content": "x"}, TALK[3]], "body.messages[1].role", "Tool"),
        (
            [TALK[1], {"role": "assistant", "content": {"a": 1}}, TALK[3]],
            "body.messages[1].content",
            "",
        ),
    ],
)
def test_bad_conversations_in_batch_lines_name_the_field(app, tmp_path, messages, field, words):
    (line,) = lines_of(tmp_path, "in.jsonl", talk_line("a", messages).encode())
    assert not line.ok and line.field == field and line.custom_id == "a"
    assert words in line.message


def test_a_batch_line_with_a_bad_penalty_is_refused(app, sim_model, member_user):
    upload_id = upload(member_user.id, "in.jsonl", talk_line("a", presence_penalty=-3).encode())
    summary = batches.validate_upload(upload_id, member_user.id)[1]
    assert [(e["line"], e["field"]) for e in summary.errors] == [(1, "parameters.presence_penalty")]


def test_a_batch_files_size_is_measured_once_per_state_of_its_tasks(app, sim_model, member_user):
    from llmadmin.services import openai_files

    data = "\n".join(openai_line(f"r{i}") for i in range(3))
    batch = make(member_user.id, "in.jsonl", data.encode())
    ids = [t.id for t in db.session.query(Task).order_by(Task.id)]
    _finish(ids[:2], SUCCESS, result="hello")
    _finish(ids[2:], FAILURE, error="boom", error_kind="server_error")

    real = openai_files._result_chunks

    def content(kind):
        return b"".join(real(batch.id, kind))

    assert openai_files.result_file_size(batch, "output") == len(content("output")) > 0
    assert openai_files.result_file_size(batch, "error") == len(content("error")) > 0
    stored = json.loads(db.session.get(Batch, batch.id).result_file_bytes)
    assert stored["output"]["bytes"] == len(content("output"))
    reads = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(openai_files, "_result_chunks", lambda *a: reads.append(a) or real(*a))
        assert openai_files.result_file_size(batch, "output") == len(content("output"))
        assert reads == []  # nothing changed: the stored size, no read of the file
        batches.retry_failed_lines(batch.id)
        _finish(ids[2:], SUCCESS, result="a longer answer this time")
        assert openai_files.result_file_size(batch, "output") == len(content("output"))
        assert openai_files.result_file_size(batch, "error") == 0
        assert len(reads) == 2


@pytest.mark.parametrize(
    "header", ["提示词,模型,温度\n", "Prompt,Model,Temperature\n", "prompt,MODEL,Max tokens\n"]
)
def test_csv_headers_may_be_the_labels_of_either_language(app, tmp_path, header):
    cells = "0.5" if "温度" in header or "Temperature" in header else "7"
    (line,) = lines_of(tmp_path, "in.csv", (header + f"Hello,Sim,{cells}\n").encode())
    assert line.ok and line.item["prompt"] == "Hello" and line.item["model"] == "Sim"
    assert list(line.param_cells.values()) == [cells]


def test_unknown_column_lists_the_accepted_names_in_the_persons_language(app, tmp_path):
    from flask_babel import force_locale

    with force_locale("zh_Hans_CN"), pytest.raises(ValidationError) as refused:
        lines_of(tmp_path, "in.csv", "提示词,模型,颜色\n".encode())
    assert "'颜色'" in str(refused.value) and "温度 (temperature)" in str(refused.value)
    with pytest.raises(ValidationError, match="names no task ID"):
        lines_of(tmp_path, "in.csv", b"ID,prompt,model\n")
