"""The relay's rules without a worker: what is published, and how the web side reads it."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from llmadmin.engine import relay
from llmadmin.models.task import SUCCESS
from llmadmin.queues import get_redis
from llmadmin.services import chat_calls
from llmadmin.services.chat_calls import ChatCall, Outcome


def _outcome(text: str) -> Outcome:
    return Outcome(1, SUCCESS, text, None, None, "stop", 1, 1)


def test_text_is_handed_out_once_even_when_a_retry_repeats_it():
    call = ChatCall(1, pubsub=None)
    call.current = "Hello"
    assert call._advance() == "Hello"
    call.current = "Hel"  # a retry starts again: nothing new to send, nothing contradicted
    assert call._advance() == ""
    call.current = "Hello, world"
    assert call._advance() == ", world"
    assert call.rest_of(_outcome("Hello, world!")) == "!"


def test_a_retry_that_contradicts_the_sent_text_is_noticed():
    call = ChatCall(1, pubsub=None)
    call.current = "Hello"
    call._advance()
    call.current = "Goodbye"
    assert call._advance() == "" and call.diverged
    assert call.rest_of(_outcome("Goodbye")) is None


def test_only_gateway_tasks_are_relayed_and_only_streams_get_text(app):
    prefix = app.config["QUEUE_PREFIX"]
    pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(relay.channel(prefix, 1), relay.channel(prefix, 2), relay.channel(prefix, 3))

    async def worker_side():
        client = aioredis.Redis.from_url(app.config["REDIS_URL"])
        hub = relay.Relay(client, prefix)
        assert hub.watch(1, relay.STREAM_PREFIX + "a") is True
        assert hub.watch(2, relay.KEY_PREFIX + "b") is False
        assert hub.watch(3, "form-token") is False  # an ordinary task: nothing is published
        pump = asyncio.ensure_future(hub.pump())
        for task_id in (1, 2, 3):
            hub.delta(task_id, "x")
        hub.reset(1)
        hub.delta(1, "y")
        await asyncio.sleep(0.2)
        hub.written([{"id": 1}, {"id": 2}, {"id": 3}])
        pump.cancel()
        await client.aclose()

    asyncio.run(worker_side())
    seen = []
    for _ in range(20):  # subscribe confirmations read as None too: read a fixed number of times
        message = pubsub.get_message(timeout=0.1)
        if message is not None:
            seen.append(
                (message["channel"].decode().rsplit(":", 1)[1], json.loads(message["data"]))
            )
    pubsub.close()
    assert seen == [
        ("1", {"d": "x"}),
        ("1", {"r": 1}),
        ("1", {"d": "y"}),
        ("1", {"done": 1}),
        ("2", {"done": 1}),
    ]


def test_a_broken_listener_falls_back_to_reading_the_row(app, sim_model, member_user):
    """redis-py can fail a listener ("I/O operation on closed file"): the row still answers."""
    import time

    from llmadmin.extensions import db
    from llmadmin.models import Task

    class Broken:
        closed = False

        def get_message(self, timeout):
            raise ValueError("I/O operation on closed file.")

        def close(self):
            self.closed = True

    task = Task(name="t", prompt="p", model_id=sim_model.id, status=SUCCESS, result="done")
    db.session.add(task)
    db.session.commit()
    broken = Broken()
    call = ChatCall(task.id, broken)
    kinds = [kind for kind, _value in call.events(time.monotonic() + 30)]
    assert kinds[-1] == "final" and broken.closed and call.pubsub is None


def test_done_carries_the_outcome_only_when_the_write_committed_it_as_given():
    row = {
        "id": 7,
        "status": SUCCESS,
        "result": "Hello",
        "error": None,
        "error_kind": None,
        "finish_reason": "stop",
        "prompt_tokens": 3,
        "completion_tokens": 1,
        "latency_ms": 12.5,
    }
    carried = json.loads(relay.done_message(row, committed=True))
    assert carried == {
        "done": 1,
        "o": {
            "status": str(SUCCESS),
            "result": "Hello",
            "error": None,
            "error_kind": None,
            "finish_reason": "stop",
            "prompt_tokens": 3,
            "completion_tokens": 1,
        },
    }
    final = chat_calls.relayed_outcome(7, carried["o"])
    assert (final.status, final.text, final.finish_reason) == (SUCCESS, "Hello", "stop")
    assert json.loads(relay.done_message(row, committed=False)) == {"done": 1}
    huge = {**row, "result": "x" * (relay.MAX_RELAYED_RESULT + 1)}
    assert json.loads(relay.done_message(huge, committed=True)) == {"done": 1}
    assert chat_calls.relayed_outcome(7, {"status": "RUNNING"}) is None


class _Scripted:
    """A listener that hands out the given raw messages, then nothing."""

    def __init__(self, raws):
        self.raws = list(raws)
        self.asked = 0

    def get_message(self, timeout):
        self.asked += 1
        return self.raws.pop(0) if self.raws else None

    def close(self):
        pass


def test_the_subscription_confirmation_is_not_taken_for_silence(app, sim_model):
    """A skipped message (the subscribe reply, an earlier call's) costs no read of the row."""
    import time

    from llmadmin.extensions import db
    from llmadmin.models import Task
    from llmadmin.models.task import RUNNING

    task = Task(name="t", prompt="p", model_id=sim_model.id, status=RUNNING)
    db.session.add(task)
    db.session.commit()
    done = relay.done_message(
        {"id": task.id, "status": SUCCESS, "result": "hi", "finish_reason": "stop"}, True
    )
    name = relay.channel("x", task.id)
    listener = _Scripted(
        [
            None,  # redis-py hands the subscribe reply out as None (ignore_subscribe_messages)
            {"type": "message", "channel": "x:gateway:task:0", "data": done},
            {"type": "message", "channel": name.encode(), "data": done},
        ]
    )
    events = list(ChatCall(task.id, listener, name).events(time.monotonic() + 30))
    assert [kind for kind, _value in events] == ["final"]  # no "idle": the row was not read
    assert events[0][1].text == "hi" and listener.asked == 3


def test_a_repeated_call_reads_its_finished_task_before_waiting(app, sim_model):
    import time

    from llmadmin.extensions import db
    from llmadmin.models import Task

    task = Task(name="t", prompt="p", model_id=sim_model.id, status=SUCCESS, result="done")
    db.session.add(task)
    db.session.commit()
    listener = _Scripted([])
    call = ChatCall(task.id, listener, relay.channel("x", task.id))
    call.read_first = True
    events = list(call.events(time.monotonic() + 30))
    assert events[0][0] == "final" and events[0][1].text == "done" and listener.asked == 0
