"""Conversations: a chat's ``messages`` as a task carries them, one set of rules for every entry.

A task is one answer to the last user message of a conversation: leading ``system`` /
``developer`` messages become its system prompt, the last message (a ``user`` one) its
prompt, and the ``user``/``assistant`` messages between them its earlier turns
(``Task.messages``, sent in order by the llm layer). The gateway, ``/v1/batches`` lines,
the admin's batch upload and ``POST /api/v1/tasks`` all go through here, so a message is
refused with the same words everywhere, naming the exact field (``messages[2].content``).
Tools are not: a task cannot run them, so tool messages and tool calls are refused.
"""

from __future__ import annotations

from flask import current_app

from llmadmin.errors import ValidationError
from llmadmin.texts import say as _  # gettext that keeps msgid and values (texts.Said)

SYSTEM_ROLES = ("system", "developer")
TURN_ROLES = ("user", "assistant")
TOOL_ROLES = ("tool", "function")
MAX_TURNS = 1000
# Fields of an assistant message that only a tool-using client fills (empty ones are fine:
# an SDK's message object echoed back carries them as null).
TOOL_FIELDS = ("tool_calls", "function_call", "audio")


def split_chat(messages, where: str = "messages") -> tuple[str | None, list[dict] | None, str]:
    """Return (system prompt, earlier turns or None, prompt) of an OpenAI ``messages`` list.

    Raises ValidationError whose ``field`` is the exact place at fault, under ``where``.
    """
    if not isinstance(messages, list) or not messages:
        raise ValidationError(_("messages must be a non-empty array of messages."), field=where)
    system: list[str] = []
    turns: list[dict] = []
    for index, message in enumerate(messages):
        place = f"{where}[{index}]"
        role = _role(message, place)
        if role in SYSTEM_ROLES:
            if turns:
                raise ValidationError(
                    _(
                        "System and developer messages may only come first, before the "
                        "conversation's user and assistant messages."
                    ),
                    field=f"{place}.role",
                )
            system.append(content_text(message.get("content"), f"{place}.content"))
            continue
        turns.append(_turn(message, role, place))
    if not turns or turns[-1]["role"] != "user":
        raise ValidationError(
            _(
                "The last message must be a user message: a call answers it (a conversation "
                "may hold earlier user and assistant messages before it)."
            ),
            field=where,
        )
    prompt = turns.pop()["content"]
    return ("\n\n".join(system) or None), check_turns(turns, where, len(system)), prompt


def clean_turns(value, where: str = "messages") -> list[dict] | None:
    """Return a task's earlier turns (user/assistant messages) as stored, or None for none."""
    if value is None or value == []:
        return None
    if not isinstance(value, list):
        raise ValidationError(
            _("messages must be an array of earlier user and assistant messages."), field=where
        )
    turns = []
    for index, message in enumerate(value):
        place = f"{where}[{index}]"
        role = _role(message, place)
        if role in SYSTEM_ROLES:
            raise ValidationError(
                _(
                    "messages holds the earlier user and assistant turns only; give the "
                    "system message as system_prompt."
                ),
                field=f"{place}.role",
            )
        turns.append(_turn(message, role, place))
    return check_turns(turns, where)


def check_turns(
    turns: list[dict] | None, where: str = "messages", offset: int = 0
) -> list[dict] | None:
    """Check the sizes and characters of stored-form turns; return them (None for none).

    ``offset``: the index of the first turn in the list the person sent (after its system
    messages), so that an error names the message they wrote.
    """
    if not turns:
        return None
    if len(turns) > MAX_TURNS:
        raise ValidationError(
            _("A conversation may hold at most %(max)s earlier messages.", max=MAX_TURNS),
            field=where,
        )
    limit = current_app.config["MAX_PROMPT_CHARS"]
    total = 0
    for index, turn in enumerate(turns):
        text = turn["content"]
        place = f"{where}[{offset + index}].content"
        if "\x00" in text:
            raise ValidationError(_("The message contains a NUL byte."), field=place)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValidationError(
                _("The message contains invalid characters (lone surrogates)."), field=place
            ) from exc
        total += len(text)
    if total > limit:
        raise ValidationError(
            _(
                "The earlier messages are too long: %(length)s characters together (the "
                "maximum is %(limit)s).",
                length=f"{total:,}",
                limit=f"{limit:,}",
            ),
            field=where,
        )
    return turns


def _role(message, place: str) -> str:
    if not isinstance(message, dict):
        raise ValidationError(_("Each message must be an object with role and content."), place)
    role = message.get("role")
    if role in TOOL_ROLES:
        raise ValidationError(
            _(
                "Tool and function messages are not supported: a task is one answer, and "
                "this service runs no tools."
            ),
            field=f"{place}.role",
        )
    if role not in (*SYSTEM_ROLES, *TURN_ROLES):
        raise ValidationError(_("Unknown message role %(role)r.", role=role), f"{place}.role")
    return role


def _turn(message: dict, role: str, place: str) -> dict:
    for name in TOOL_FIELDS:
        if message.get(name) not in (None, [], {}):
            raise ValidationError(
                _(
                    "%(name)s is not supported: a task cannot run tools, so a conversation "
                    "cannot hold tool calls.",
                    name=name,
                ),
                field=f"{place}.{name}",
            )
    return {"role": role, "content": content_text(message.get("content"), f"{place}.content")}


def content_text(content, place: str) -> str:
    """Return a message's text: a string, or an array of text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise ValidationError(
                    _("Only text content parts are supported."), f"{place}[{index}].type"
                )
            if not isinstance(part.get("text"), str):
                raise ValidationError(
                    _("A text part needs a text string."), f"{place}[{index}].text"
                )
            texts.append(part["text"])
        return "".join(texts)
    raise ValidationError(_("content must be a string or an array of text parts."), place)
