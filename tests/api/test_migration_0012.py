"""Migration 0012 renames duplicate model names visibly before making names unique."""

from __future__ import annotations

import pytest
from flask_migrate import upgrade
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from llmadmin import create_app
from llmadmin.extensions import db


def test_duplicate_model_names_become_name_2_name_3(tmp_path, redis_url, capsys):
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/m.db",
            "REDIS_URL": redis_url,
        }
    )
    with app.app_context():
        upgrade(revision="0007")
        for name in ("GPT", "GPT", "Qwen", "GPT", "GPT (2)"):
            db.session.execute(
                text(
                    "INSERT INTO llm_model (name, base_url, model_name, enabled, simulated, stream,"
                    " temperature, max_tokens, timeout_seconds, max_concurrency, rpm_limit,"
                    " max_attempts, breaker_threshold, breaker_cooldown_seconds, created_at,"
                    " updated_at) VALUES (:n, 'http://h/v1', 'm', 1, 0, 0, 0.7, 10, 60, 8, 0, 3,"
                    " 5, 30, '2026-01-01', '2026-01-01')"
                ),
                {"n": name},
            )
        db.session.commit()
        upgrade(revision="0012")
        names = db.session.execute(text("SELECT name FROM llm_model ORDER BY id")).scalars().all()
        assert names == ["GPT", "GPT (3)", "Qwen", "GPT (4)", "GPT (2)"]
        assert "renamed to 'GPT (3)'" in capsys.readouterr().out
        with pytest.raises(IntegrityError):
            db.session.execute(text("UPDATE llm_model SET name = 'Qwen' WHERE name = 'GPT'"))
        db.session.rollback()
        db.engine.dispose()
