"""One message to one person, and the error a channel raises when it cannot deliver it."""

from __future__ import annotations

from dataclasses import dataclass

from llmadmin.errors import LLMAdminError


class NotifyError(LLMAdminError):
    """A message could not be delivered; the job fails (and RQ retries it)."""


@dataclass(frozen=True)
class Message:
    """One message to one person."""

    person_id: int
    person_label: str
    destination: str
    subject: str
    body: str
