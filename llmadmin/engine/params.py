"""The parameters one call sends: the task's own, else its model's (temperature, max_tokens).

Stored on the task by ``services.task_params`` (validated there); read here from the
claimed row, so a chunk of one model may run tasks with different parameters.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, fields

from llmadmin.models import Task

# The task columns a claim reads besides id, prompt and system prompt.
PARAM_COLUMNS = (
    Task.temperature,
    Task.max_tokens,
    Task.top_p,
    Task.stop,
    Task.seed,
    Task.response_format,
    Task.frequency_penalty,
    Task.presence_penalty,
)


@dataclass(frozen=True)
class CallParams:
    """What a ChatRequest sends besides the messages; None is not sent."""

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    response_format: dict | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None

    @classmethod
    def of(cls, row, model) -> CallParams:
        """Combine a claimed task row with its model's defaults (a ``ModelSettings``)."""
        temperature = row.temperature if row.temperature is not None else model.temperature
        max_tokens = row.max_tokens if row.max_tokens is not None else model.max_tokens
        if all(getattr(row, name) in (None, "") for name in _TASK_ONLY):
            return _plain(temperature, max_tokens)  # most tasks: shared, its JSON made once
        return cls(
            temperature=temperature,
            max_tokens=max_tokens,
            top_p=row.top_p,
            stop=json.loads(row.stop) if row.stop else None,
            seed=row.seed,
            response_format=json.loads(row.response_format) if row.response_format else None,
            frequency_penalty=row.frequency_penalty,
            presence_penalty=row.presence_penalty,
        )

    def sent(self) -> dict:
        """The parameters as sent (and stored on the run): only those that are set."""
        # Not dataclasses.asdict: its recursive deep copy ran twice per task (request, run row).
        values = ((name, getattr(self, name)) for name in _FIELDS)
        return {name: value for name, value in values if value is not None}

    @functools.cached_property
    def sent_json(self) -> str:
        """``sent()`` as the JSON a run row keeps."""
        return json.dumps(self.sent(), ensure_ascii=False)

    @property
    def json_mode(self) -> bool:
        """Tell whether the call asks for JSON output (JSON mode or a JSON schema)."""
        return (self.response_format or {}).get("type") in ("json_object", "json_schema")


def output_is_json(text: str | None, params: CallParams | None) -> bool | None:
    """For a JSON-mode call, whether ``text`` parses as JSON; None otherwise."""
    if params is None or not params.json_mode or text is None:
        return None
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


_FIELDS = tuple(f.name for f in fields(CallParams))
# The parameters only a task sets (no model default): none set -> the shared instance.
_TASK_ONLY = tuple(name for name in _FIELDS if name not in ("temperature", "max_tokens"))


@functools.lru_cache(maxsize=256)
def _plain(temperature: float | None, max_tokens: int | None) -> CallParams:
    return CallParams(temperature=temperature, max_tokens=max_tokens)
