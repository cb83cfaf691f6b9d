"""An app context for job functions, whether run by worker.py or by a plain RQ worker."""

from __future__ import annotations

from contextlib import contextmanager

from flask import current_app, has_app_context

from llmadmin import create_app
from llmadmin.extensions import db

_app = None


@contextmanager
def app_context():
    """Reuse the current app context, or build the app once per process and push one."""
    global _app
    if has_app_context():
        yield current_app
        return
    if _app is None:
        _app = create_app()
    with _app.app_context():
        try:
            yield _app
        finally:
            db.session.remove()
