"""Command-line interface: ``flask --app app <command>``."""

from __future__ import annotations

import click
from flask import current_app

from llmadmin.emails import login_email
from llmadmin.engine.dispatch import dispatch_waiting
from llmadmin.errors import LLMAdminError
from llmadmin.extensions import db
from llmadmin.models import Person
from llmadmin.services import api_tokens, audit
from llmadmin.services.demo import seed_demo
from llmadmin.services.keys import rotate_stored_keys
from llmadmin.services.people import create_user
from llmadmin.services.task_params import ParamError
from llmadmin.services.tasks import create_task


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc)) from exc


@click.command("create-user")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--name", default=None, help="Display name (defaults to the part before @).")
@click.option("--admin", is_flag=True, help="Give the admin role.")
def create_user_command(email: str, password: str, name: str | None, admin: bool) -> None:
    """Create a login account, or reset its password and role."""

    try:
        person = create_user(email, password, name=name, admin=admin)
    except LLMAdminError as exc:
        _fail(exc)
    click.echo(f"{'Admin' if person.is_admin else 'Member'} {person.email} ready (id {person.id}).")


@click.command("seed-demo")
@click.option("--simulator-url", default=None, help="Base URL of the simulated endpoint.")
@click.option("--admin-email", default="admin@example.com")
@click.option("--admin-password", default="admin12345")
def seed_demo_command(simulator_url: str | None, admin_email: str, admin_password: str) -> None:
    """Create the demo admin and a clearly labelled simulated model (idempotent)."""

    url = simulator_url or current_app.config.get("SIMULATOR_URL") or "http://127.0.0.1:8099/v1"
    try:
        seed_demo(url, admin_email, admin_password)
    except LLMAdminError as exc:
        _fail(exc)
    click.echo(f"Demo ready: {admin_email} / {admin_password}; simulated model at {url}")


@click.command("create-task")
@click.option("--model-id", type=click.IntRange(1, 2**31 - 1), required=True)
@click.option("--prompt", required=True)
@click.option("--system-prompt", default=None)
@click.option("--name", default=None)
@click.option("--creator-id", type=click.IntRange(1, 2**31 - 1), default=None)
@click.option("--temperature", default=None, help="0 to 2 (default: the model's).")
@click.option("--max-tokens", default=None, help="1 to 1,000,000 (default: the model's).")
@click.option("--top-p", default=None, help="0 to 1 (default: not sent).")
@click.option("--stop", multiple=True, help="A stop sequence (up to 4: repeat the option).")
@click.option("--seed", default=None, help="A whole number (default: not sent).")
@click.option(
    "--response-format",
    default=None,
    help='"text", "json_object" or a JSON schema object (default: not sent).',
)
def create_task_command(model_id, prompt, system_prompt, name, creator_id, **params) -> None:
    """Create a task and queue it."""

    params["stop"] = list(params["stop"]) or None
    try:
        task = create_task(
            prompt=prompt,
            model_id=model_id,
            creator_id=creator_id,
            name=name,
            system_prompt=system_prompt,
            params=params,
        )
    except ParamError as exc:
        raise click.BadParameter(str(exc), param_hint=f"--{exc.field.replace('_', '-')}") from exc
    except LLMAdminError as exc:
        _fail(exc)
    click.echo(f"Task #{task.id} {task.status}")


@click.command("dispatch-waiting")
def dispatch_waiting_command() -> None:
    """Queue tasks that asked to run while Redis was unreachable."""

    queued, waiting = dispatch_waiting()
    click.echo(f"{queued} queued, {waiting} still waiting")


@click.command("rotate-encryption-key")
def rotate_encryption_key_command() -> None:
    """Re-encrypt every stored API key under the first key in ENCRYPTION_KEY."""

    token = audit.cli_actor.set("cli")
    try:
        report = rotate_stored_keys()
        audit.record(
            "rotate_encryption_key",
            "llm_model",
            None,
            f"API keys re-encrypted: {report.rotated}; unreadable: {len(report.unreadable)}",
        )
    finally:
        audit.cli_actor.reset(token)
    click.echo(
        f"{report.rotated} key(s) re-encrypted under the first ENCRYPTION_KEY; "
        f"{report.without_key} model(s) without a key."
    )
    if report.unreadable:
        click.echo(
            f"{len(report.unreadable)} key(s) could not be decrypted with any configured key and were "
            "left unchanged: "
            + ", ".join(report.unreadable)
            + ". Add the old key to ENCRYPTION_KEY "
            "and run this again, or re-enter these keys on the models.",
            err=True,
        )
        raise click.exceptions.Exit(1)


@click.command("require-code")
@click.argument("email")
@click.option("--off", is_flag=True, help="Stop asking this person for a one-time code.")
def require_code_command(email: str, off: bool) -> None:
    """Ask a person for a one-time sign-in code after the password (or stop with --off)."""

    person = db.session.execute(
        db.select(Person).where(db.func.lower(Person.email) == login_email(email))
    ).scalar_one_or_none()
    if person is None:
        raise click.ClickException(f"No person has the email {email!r}.")
    token = audit.cli_actor.set("cli")
    try:
        person.otp_required = not off
        db.session.commit()
    finally:
        audit.cli_actor.reset(token)
    state = "no longer needs" if off else "now needs"
    click.echo(f"{person.email} {state} a one-time code to sign in.")


@click.command("create-token")
@click.argument("email")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
@click.option(
    "--expires-days",
    type=click.IntRange(1, api_tokens.MAX_EXPIRES_DAYS),
    default=None,
    help="Days until it expires (default: never).",
)
def create_token_command(email: str, name: str, expires_days: int | None) -> None:
    """Make a personal API token for a person; the token alone is the last line printed."""

    person = db.session.execute(
        db.select(Person).where(db.func.lower(Person.email) == email.strip().lower())
    ).scalar_one_or_none()
    if person is None:
        raise click.ClickException(f"No person has the email {email!r}.")
    token_var = audit.cli_actor.set("cli")
    try:
        row, token = api_tokens.create_token(person.id, name, expires_days)
    except LLMAdminError as exc:
        _fail(exc)
    finally:
        audit.cli_actor.reset(token_var)
    expiry = f"expires {row.expires_at:%Y-%m-%d %H:%M} UTC" if row.expires_at else "no expiry"
    click.echo(f"API token “{row.name}” for {person.email} ({expiry}). Shown once; keep it safe:")
    click.echo(token)


def init_app(app) -> None:
    """Register the commands."""
    for command in (
        create_user_command,
        seed_demo_command,
        create_task_command,
        dispatch_waiting_command,
        rotate_encryption_key_command,
        require_code_command,
        create_token_command,
    ):
        app.cli.add_command(command)
