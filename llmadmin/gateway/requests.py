"""What ``POST /v1/chat/completions`` accepts, checked field by field (``param`` names the culprit).

The call becomes a task: leading ``system``/``developer`` messages become its system prompt,
the last (``user``) message its prompt, the user/assistant messages between them its earlier
turns (``services.conversation``), and the sampling fields its per-task parameters
(``services.task_params`` then applies the task form's rules). Fields a task cannot carry
(tools, tool messages, n > 1, logprobs) are refused with a 400 rather than silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _

from llmadmin.errors import ValidationError
from llmadmin.gateway.errors import GatewayError
from llmadmin.services import conversation
from llmadmin.services.tasks import TASK_PARAMETERS

# The task's call parameters a body carries under their own names (max_tokens has two names).
PARAMETERS = tuple(name for name in TASK_PARAMETERS if name != "max_tokens")
IGNORED = ("user", "metadata", "store", "service_tier", "parallel_tool_calls")
UNSUPPORTED = (
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "audio",
    "modalities",
    "prediction",
    "reasoning_effort",
    "web_search_options",
)
KNOWN = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "n",
    "max_tokens",
    "max_completion_tokens",
    *PARAMETERS,
    *IGNORED,
    *UNSUPPORTED,
}


@dataclass(frozen=True)
class ChatSpec:
    """A validated chat-completions request, in the task's terms."""

    model: str
    prompt: str
    system_prompt: str | None
    parameters: dict
    stream: bool
    include_usage: bool
    max_tokens_param: str | None = None  # which of max_tokens / max_completion_tokens was sent
    turns: list[dict] | None = None  # the conversation's earlier user/assistant messages


def invalid(message: str, param: str | None) -> GatewayError:
    """A 400 invalid_request_error naming ``param``."""
    return GatewayError(400, message, "invalid_request_error", param, "invalid_value")


def chat_request(body: dict) -> ChatSpec:
    """Validate a request body; raise a 400 naming the first field at fault."""
    unknown = sorted(set(body) - KNOWN)
    if unknown:
        raise invalid(
            _("Unrecognized request argument supplied: %(name)s", name=unknown[0]), unknown[0]
        )
    for name in UNSUPPORTED:
        if body.get(name) not in (None, False, 0, [], {}):
            raise invalid(
                _("%(name)s is not supported by this gateway (a call is one task).", name=name),
                name,
            )
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise invalid(_("model is required: the name of one of the models in /v1/models."), "model")
    if body.get("n") not in (None, 1):
        raise invalid(_("n must be 1: one call gives one answer."), "n")
    stream = _boolean(body, "stream")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict) or set(options) - {"include_usage"}):
        raise invalid(_("stream_options may only hold include_usage."), "stream_options")
    if options is not None and not stream:
        raise invalid(_("stream_options is only allowed when stream is true."), "stream_options")
    include_usage = _boolean(options or {}, "include_usage", "stream_options.include_usage")
    system_prompt, turns, prompt = _messages(body.get("messages"))
    return ChatSpec(
        model=model,
        prompt=prompt,
        system_prompt=system_prompt,
        turns=turns,
        parameters=_parameters(body),
        stream=stream,
        include_usage=include_usage,
        max_tokens_param=next(
            (k for k in ("max_completion_tokens", "max_tokens") if body.get(k) is not None), None
        ),
    )


def _boolean(data: dict, key: str, param: str | None = None) -> bool:
    value = data.get(key)
    if value is not None and not isinstance(value, bool):
        raise invalid(_("%(name)s must be true or false.", name=param or key), param or key)
    return bool(value)


def _parameters(body: dict) -> dict:
    parameters = {k: body[k] for k in PARAMETERS if body.get(k) is not None}
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise invalid(
            _("Give max_tokens or max_completion_tokens, not both."), "max_completion_tokens"
        )
    for key in ("max_completion_tokens", "max_tokens"):
        if body.get(key) is not None:
            parameters["max_tokens"] = body[key]
    if isinstance(parameters.get("stop"), str):
        parameters["stop"] = [parameters["stop"]]
    return parameters


def _messages(messages) -> tuple[str | None, list[dict] | None, str]:
    """Return (system prompt, earlier turns, prompt); the last message must be the user's."""
    try:
        return conversation.split_chat(messages, "messages")
    except ValidationError as exc:
        raise invalid(str(exc), exc.field) from exc
