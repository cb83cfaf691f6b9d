"""Multi-turn conversations through the gateway: the official SDK, a real worker, and the
simulated endpoint echoing every message it received (``[[sim: echo=messages]]``)."""

from __future__ import annotations

import json

import openai
import pytest

from llmadmin.extensions import db
from llmadmin.models import Task
from llmadmin.models.task import SUCCESS
from tests.gateway.test_files_batches import jsonl, poll

pytestmark = pytest.mark.slow

ECHO = "[[sim: echo=messages]]"
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "first question"},
    {
        "role": "assistant",
        "content": [{"type": "text", "text": "first "}, {"type": "text", "text": "answer"}],
    },
    {"role": "user", "content": "second question"},
    {"role": "assistant", "content": "second answer"},
    {"role": "user", "content": f"third question {ECHO}"},
]
# What the endpoint saw, in order (text parts joined, the directive left out by the echo).
SEEN = (
    "[simulated] messages: system: Be brief. | user: first question | "
    "assistant: first answer | user: second question | assistant: second answer | "
    "user: third question"
)


def _task(task_id: int) -> Task:
    db.session.expire_all()
    row = db.session.get(Task, task_id)
    db.session.commit()
    return row


@pytest.fixture(autouse=True)
def files_dir(app, tmp_path):
    app.config["GATEWAY_FILES_DIR"] = str(tmp_path / "gateway-files")
    app.config["BATCH_UPLOAD_DIR"] = str(tmp_path / "batch-uploads")


def test_a_conversation_is_sent_in_order_and_stored_on_the_task(client, sim_row, workers):
    workers.start(1)
    raw = client.chat.completions.with_raw_response.create(
        model="Sim", messages=CONVERSATION, frequency_penalty=0.5, presence_penalty=-1
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == SEEN
    task = _task(int(raw.headers["X-LLMAdmin-Task-Id"]))
    assert task.status == SUCCESS and task.system_prompt == "Be brief."
    assert task.prompt == f"third question {ECHO}"
    assert task.messages == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "second answer"},
    ]
    assert (task.frequency_penalty, task.presence_penalty) == (0.5, -1.0)


def test_a_streamed_conversation_is_sent_in_order(client, sim_row, workers):
    workers.start(1)
    chunks = list(
        client.chat.completions.create(
            model="Sim",
            messages=CONVERSATION,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == SEEN
    assert chunks[-1].usage.prompt_tokens > 0
    assert _task(int(chunks[0].id.removeprefix("chatcmpl-"))).messages[0]["content"] == (
        "first question"
    )


@pytest.mark.parametrize(
    "messages, param, words",
    [
        (CONVERSATION[:-1], "messages", "The last message must be a user message"),
        ([{"role": "system", "content": "x"}], "messages", "The last message must be a user"),
        (
            [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c", "type": "function"}],
                },
                {"role": "user", "content": "go on"},
            ],
            "messages[1].tool_calls",
            "tool_calls is not supported",
        ),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": 5},
                {"role": "user", "content": "x"},
            ],
            "messages[1].content",
            "content must be a string or an array of text parts",
        ),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "image_url", "image_url": {}}]},
                {"role": "user", "content": "x"},
            ],
            "messages[1].content[0].type",
            "Only text content parts are supported",
        ),
        (
            [{"role": "user", "content": "hi"}, {"role": "function", "content": "x", "name": "f"}],
            "messages[1].role",
            "Tool and function messages are not supported",
        ),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "late"},
                {"role": "user", "content": "x"},
            ],
            "messages[1].role",
            "may only come first",
        ),
        (
            [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "a\x00b"},
                {"role": "user", "content": "x"},
            ],
            "messages[1].content",
            "NUL byte",
        ),
    ],
)
def test_a_bad_conversation_is_a_precise_400(client, sim_row, messages, param, words):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="Sim", messages=messages)
    assert err.value.param == param, err.value.body
    assert words in err.value.body["message"]
    assert err.value.type == "invalid_request_error"
    assert db.session.query(Task).count() == 0


def test_a_batch_of_conversations_runs_and_its_files_report_their_size(client, sim_row, workers):
    workers.start(1)
    lines = [
        {
            "custom_id": "talk",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "Sim", "messages": CONVERSATION, "presence_penalty": 0.25},
        },
        {
            "custom_id": "fail",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "Sim",
                "messages": [{"role": "user", "content": "x [[sim: status=500]]"}],
            },
        },
    ]
    uploaded = client.files.create(file=("talk.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = poll(client, batch.id, ("completed",))
    output = client.files.content(done.output_file_id).content
    assert json.loads(output)["response"]["body"]["choices"][0]["message"]["content"] == SEEN
    errors = client.files.content(done.error_file_id).content
    for file_id, content in ((done.output_file_id, output), (done.error_file_id, errors)):
        found = client.files.retrieve(file_id)
        assert found.bytes > 0 and found.bytes == len(content)
        assert client.files.retrieve(file_id).bytes == len(content)  # the stored size
    task = db.session.query(Task).filter_by(custom_id="talk").one()
    assert len(task.messages) == 4 and task.presence_penalty == 0.25
