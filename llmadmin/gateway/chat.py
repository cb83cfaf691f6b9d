"""``POST /v1/chat/completions``: one call is one task; the answer comes back plain or as SSE.

The request waits for the task without polling: it listens on the task's relay channel
(``services.chat_calls``). A streamed answer is sent as OpenAI's ``chat.completion.chunk``
events as the worker relays the text, ends with the finish reason, the usage chunk when
``stream_options.include_usage`` asks for it, and ``data: [DONE]``. A client that goes
away, or a wait past ``GATEWAY_TIMEOUT_SECONDS``, cancels the task (nobody will read it).
"""

from __future__ import annotations

import json
import time

from flask import Response, current_app, request, stream_with_context
from flask_babel import gettext as _

from llmadmin.errors import ItemsInvalid
from llmadmin.gateway import requests as shapes
from llmadmin.gateway.blueprint import bp, current_person, json_object
from llmadmin.gateway.errors import GatewayError
from llmadmin.models.task import SUCCESS
from llmadmin.services import chat_calls

KEEPALIVE_SECONDS = 10.0
# Task error kinds -> (status, type, code) of the gateway's answer; anything else is 502.
FAILURES = {
    "bad_request": (400, "invalid_request_error", "upstream_bad_request"),
    "context_too_long": (400, "invalid_request_error", "context_length_exceeded"),
    "blocked_prompt": (400, "invalid_request_error", "prompt_blocked"),
    "timeout": (504, "server_error", "upstream_timeout"),
    "connect_timeout": (504, "server_error", "upstream_timeout"),
    "model_disabled": (404, "invalid_request_error", "model_not_found"),
    "model_deleted": (404, "invalid_request_error", "model_not_found"),
    "canceled": (409, "invalid_request_error", "task_canceled"),
    "deleted": (409, "invalid_request_error", "task_canceled"),
}
NO_RETRY = {"x-should-retry": "false"}  # the engine already retried per the model's settings


@bp.post("/chat/completions")
def chat_completions():
    """Run one chat completion as a task; answer as OpenAI does (plain or streamed)."""
    spec = shapes.chat_request(json_object())
    model = chat_calls.usable_model(spec.model)
    try:
        call = chat_calls.start_call(
            current_person().id,
            model,
            spec.prompt,
            spec.system_prompt,
            spec.parameters,
            stream=spec.stream,
            request_key=request.headers.get("Idempotency-Key") or None,
            turns=spec.turns,
        )
    except ItemsInvalid as exc:  # the task rules refused a prompt or a parameter
        error = exc.errors[0]
        raise shapes.invalid(error["message"], _param(error["field"], spec)) from exc
    deadline = time.monotonic() + current_app.config["GATEWAY_TIMEOUT_SECONDS"]
    head = {"id": f"chatcmpl-{call.task_id}", "created": int(time.time()), "model": model.name}
    headers = {"X-LLMAdmin-Task-Id": str(call.task_id)}
    events = call.events(deadline)
    if not spec.stream:
        try:
            final = _final(call, events)
        finally:
            call.close()
        if final.status != SUCCESS:
            raise _failure(final)
        return _completion(head, final), 200, headers
    first = _first_event(call, events)
    if first[0] == "final" and first[1].status != SUCCESS:
        call.close()
        raise _failure(first[1])
    stream = _sse(call, events, first, head, spec.include_usage)
    return Response(
        stream_with_context(stream),
        mimetype="text/event-stream",
        headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _param(field: str | None, spec) -> str:
    """The request field behind a task field (prompt, turns -> messages; parameters.x -> x)."""
    field = field or "messages"
    if field in ("prompt", "system_prompt", "name") or field.startswith("messages"):
        return "messages"  # (a turn's own faults were named by the request's checks)
    name = field.removeprefix("parameters.")
    if name == "max_tokens" and spec.max_tokens_param:
        return spec.max_tokens_param
    return name


def _final(call, events):
    """Wait for the outcome of a plain call (relayed text is ignored: the row is the truth)."""
    for kind, value in events:
        if kind == "final":
            return value
        if kind == "timeout":
            raise _timed_out(call)
    raise _timed_out(call)  # pragma: no cover - events always ends with final or timeout


def _first_event(call, events):
    """Wait for the first text (or the outcome) so that an early failure gets its status."""
    try:
        for kind, value in events:
            if kind in ("text", "final"):
                return kind, value
            if kind == "timeout":
                raise _timed_out(call)
    except BaseException:
        call.close()
        raise
    raise _timed_out(call)  # pragma: no cover


def _timed_out(call) -> GatewayError:
    seconds = current_app.config["GATEWAY_TIMEOUT_SECONDS"]
    # Stored on the row as data (``texts.TASK_TEXTS``): each reader sees it in their language.
    if not chat_calls.abandon(call.task_id, "gateway_gave_up", seconds=seconds):
        final = chat_calls.outcome(call.task_id)  # it finished just now: the row decides
        if final is not None and final.status == SUCCESS:
            return GatewayError(
                504,
                _("Task #%(id)s finished just after the wait ran out.", id=call.task_id),
                "server_error",
                code="timeout",
                headers=NO_RETRY,
            )
    return GatewayError(
        504,
        _(
            "No answer within %(s)s s (GATEWAY_TIMEOUT_SECONDS); task #%(id)s was canceled.",
            s=seconds,
            id=call.task_id,
        ),
        "server_error",
        code="timeout",
        headers=NO_RETRY,
    )


def _failure(final) -> GatewayError:
    status, type_, code = FAILURES.get(final.error_kind, (502, "server_error", "upstream_error"))
    message = _(
        "Task #%(id)s failed: %(error)s", id=final.task_id, error=final.error or final.status
    )
    return GatewayError(status, message, type_, code=code, headers=NO_RETRY)


def _usage(final) -> dict:
    prompt, completion = final.prompt_tokens or 0, final.completion_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _completion(head: dict, final) -> dict:
    return {
        **head,
        "object": "chat.completion",
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": final.text or "", "refusal": None},
                "logprobs": None,
                "finish_reason": final.finish_reason or "stop",
            }
        ],
        "usage": _usage(final),
    }


def _chunk(head: dict, choices: list, usage=False, with_usage: bool = False) -> str:
    body = {**head, "object": "chat.completion.chunk", "system_fingerprint": None}
    body["choices"] = choices
    if with_usage:
        body["usage"] = usage or None
    return f"data: {json.dumps(body, ensure_ascii=False, separators=(',', ':'))}\n\n"


def _delta(head: dict, delta: dict, finish_reason, with_usage: bool) -> str:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    return _chunk(head, [choice], with_usage=with_usage)


def _sse(call, events, first, head: dict, with_usage: bool):
    """Yield the SSE events of a streamed answer, relaying text as it comes."""
    finished = False
    try:
        yield _delta(head, {"role": "assistant", "content": ""}, None, with_usage)
        pending = [first]
        last_write = time.monotonic()
        while True:
            kind, value = pending.pop() if pending else next(events)
            if kind == "text":
                yield _delta(head, {"content": value}, None, with_usage)
                last_write = time.monotonic()
            elif kind == "idle" and time.monotonic() - last_write >= KEEPALIVE_SECONDS:
                yield ": keep-alive\n\n"  # also how a vanished client is noticed
                last_write = time.monotonic()
            elif kind == "timeout":
                finished = True
                yield _error_event(_timed_out(call))
                return
            elif kind == "final":
                finished = True
                yield from _ending(call, value, head, with_usage)
                return
    finally:
        call.close()
        if not finished:  # the client went away: nobody will read this answer
            chat_calls.abandon(call.task_id, "gateway_disconnected")


def _ending(call, final, head: dict, with_usage: bool):
    if final.status != SUCCESS:
        yield _error_event(_failure(final))
        return
    rest = call.rest_of(final)
    if rest is None:
        message = _(
            "Task #%(id)s was retried after part of its answer was streamed, and the new "
            "answer differs; read the task for the complete text.",
            id=call.task_id,
        )
        yield _error_event(GatewayError(502, message, "server_error", code="stream_retried"))
        return
    if rest:
        yield _delta(head, {"content": rest}, None, with_usage)
    yield _delta(head, {}, final.finish_reason or "stop", with_usage)
    if with_usage:
        yield _chunk(head, [], _usage(final), with_usage=True)
    yield "data: [DONE]\n\n"


def _error_event(error: GatewayError) -> str:
    """An error after the stream began: the SDKs raise APIError on a chunk carrying "error"."""
    return f"data: {json.dumps(error.body(), ensure_ascii=False)}\n\n"
