"""Stored API keys: re-encrypt them all under the first ENCRYPTION_KEY (key rotation)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmadmin import crypto
from llmadmin.extensions import db
from llmadmin.models import LLMModel


@dataclass
class RotationReport:
    """What ``rotate_stored_keys`` did: counts, and the models whose key could not be read."""

    rotated: int = 0
    without_key: int = 0
    unreadable: list[str] = field(default_factory=list)


def rotate_stored_keys() -> RotationReport:
    """Re-encrypt every stored LLM model key under the first ENCRYPTION_KEY; keep unreadable ones as they are.

    A key that no configured key can decrypt is left untouched (not lost): adding the old
    key back to ENCRYPTION_KEY and running the rotation again still recovers it.
    """
    report = RotationReport()
    models = db.session.execute(db.select(LLMModel).order_by(LLMModel.id)).scalars().all()
    for model in models:
        if not model.api_key_encrypted:
            report.without_key += 1
            continue
        try:
            rotated = crypto.rotate(model.api_key_encrypted)
        except crypto.SecretUnreadable:
            report.unreadable.append(f"#{model.id} {model.name}")
            continue
        if rotated != model.api_key_encrypted:
            model.api_key_encrypted = rotated
        report.rotated += 1
    db.session.commit()
    return report
