"""A task's run history: every execution, newest first, each with a diff against the one before."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field

from sqlalchemy import select

from llmadmin.extensions import db
from llmadmin.models import TaskRun

MAX_DIFF_LINES = 2000


@dataclass
class RunEntry:
    """One run as the details page shows it."""

    run: TaskRun
    number: int  # 1 = the first run of the task
    params: dict = field(default_factory=dict)
    diff: list[tuple[str, str]] | None = None  # (kind, line); None: no earlier output to compare
    same_output: bool = False


def runs_of(task_id: int) -> list[TaskRun]:
    """Return the runs of a task, newest first."""
    return list(
        db.session.execute(
            select(TaskRun).where(TaskRun.task_id == task_id).order_by(TaskRun.id.desc())
        ).scalars()
    )


def history(task_id: int) -> list[RunEntry]:
    """Return the task's runs, newest first, each compared with the run before it."""
    runs = runs_of(task_id)
    entries = []
    for index, run in enumerate(runs):
        previous = runs[index + 1] if index + 1 < len(runs) else None
        entry = RunEntry(run, number=len(runs) - index, params=json.loads(run.params or "{}"))
        if previous is not None:
            entry.same_output = (previous.result or "") == (run.result or "")
            entry.diff = None if entry.same_output else output_diff(previous.result, run.result)
        entries.append(entry)
    return entries


def output_diff(old: str | None, new: str | None) -> list[tuple[str, str]]:
    """A unified diff of two outputs as (kind, line) pairs: kind is "add", "del", "hunk" or "same".

    Plain text: the template escapes every line.
    """
    lines = difflib.unified_diff(
        (old or "").splitlines(), (new or "").splitlines(), "previous", "this run", lineterm=""
    )
    out: list[tuple[str, str]] = []
    for line in lines:
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        out.append((kind, line))
        if len(out) >= MAX_DIFF_LINES:
            out.append(("hunk", f"… (diff cut at {MAX_DIFF_LINES} lines)"))
            break
    return out
