"""Login and logout (Flask-Login) and the role checks every view uses.

Signing in: the password (failures limited per account and IP, see services/login_guard),
then — for people who need it — a one-time code (services/otp). Between the two steps the
session holds only a "pending 2FA" marker; ``login_user`` runs after the code. Every
sign-in, failed sign-in and sign-out is written to the audit log.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import refresh as refresh_locale
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length, Regexp

from llmadmin.extensions import db, login_manager
from llmadmin.models import Person
from llmadmin.models.person import spend_password_check
from llmadmin.services import audit, login_guard, otp, sessions

logger = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    email = EmailField(
        _l("Email"),
        validators=[DataRequired(), Email(), Length(max=255)],
        filters=[lambda value: value.strip() if value else value],
    )
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1024)])
    remember = BooleanField(_l("Keep me signed in"))


@login_manager.user_loader
def load_person(token: str) -> Person | None:
    """Return the person whose session (or remember-me) cookie carries ``token``, if still live.

    The cookies hold a session token (``Person.get_id``), checked against ``login_session``
    on every request: a session that was signed out, expired or ended by a password, role
    or active change opens nothing. A deactivated person is not authenticated either way.
    """
    return sessions.load(token)


def is_admin() -> bool:
    """Tell whether the current visitor is a logged-in admin."""
    return bool(current_user.is_authenticated and current_user.is_admin)


def require_admin() -> None:
    """Abort with 403 unless the current visitor is an admin."""
    if not current_user.is_authenticated:
        abort(401)
    if not current_user.is_admin:
        abort(403)


def safe_next(target: str | None) -> str:
    """Accept only a local path as the post-login target (no open redirect)."""
    if target and _is_local_path(target):
        return target
    return url_for("admin.index")


def _is_local_path(target: str) -> bool:
    # Browsers read "//host", "///host" and "/\\host" as another site, and drop tabs and
    # newlines before parsing, so any of those makes the target suspect.
    if not target.startswith("/") or target.startswith("//"):
        return False
    if "\\" in target or any(ord(c) < 32 or c == "\x7f" for c in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form and sign the person in (or start the one-time code step)."""
    form = LoginForm()
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        lockout = login_guard.check(email, request.remote_addr)
        if lockout is not None:
            _audit_failure(email, f"refused: {lockout.scope} locked out for {lockout.seconds} s")
            flash(lockout.message(), "error")
            return render_template("auth/login.html", form=form)
        person = db.session.execute(
            db.select(Person).where(db.func.lower(Person.email) == email)
        ).scalar_one_or_none()
        # The same hash work whether or not the account exists (no tell by timing).
        if person is None:
            password_ok = spend_password_check(form.password.data)
        else:
            password_ok = person.check_password(form.password.data)
        if not password_ok:
            login_guard.record_failure(email, request.remote_addr)
            _audit_failure(email, "unknown account" if person is None else "wrong password")
            flash(_("Wrong email or password."), "error")
        elif not person.active:
            _audit_failure(email, "account deactivated")
            flash(_("This account is deactivated; ask an administrator."), "error")
        else:
            return _after_password(person, email, form.remember.data, request.args.get("next"))
    return render_template("auth/login.html", form=form)


def _after_password(person: Person, email: str, remember: bool, next_url: str | None):
    """Finish signing in, or ask for a one-time code (configured, or the account is under attack)."""
    if otp.required_for(person):
        return _start_code_step(person, remember, next_url)
    if login_guard.needs_code(email):
        # Many failures from elsewhere: the owner is not locked out, but must prove it with a code.
        if otp.can_send_to(person):
            audit.record(
                "login_step_up",
                "person",
                person.id,
                "Asked for a one-time code: many failed sign-ins on this account lately",
                person=person,
            )
            flash(
                _("This account had many failed sign-ins lately, so a code is needed too."), "info"
            )
            return _start_code_step(person, remember, next_url)
        audit.record(
            "login_step_up",
            "person",
            person.id,
            "Many failed sign-ins lately, but no one-time code can be sent: password alone",
            person=person,
        )
    return _finish_login(person, remember, next_url)


def _finish_login(person: Person, remember: bool, next_url: str | None, with_code: bool = False):
    session.pop(PENDING_KEY, None)
    _rotate_csrf_token()
    sessions.start(person, remember)  # a new token (and remember-me cookie) for every sign-in
    login_user(person, remember=remember)
    login_guard.record_success((person.email or "").lower(), request.remote_addr)
    audit.record(
        "login",
        "person",
        person.id,
        "Signed in with password and one-time code" if with_code else "Signed in",
        person=person,
    )
    logger.info("login person_id=%s", person.id)
    return redirect(safe_next(next_url))


def _rotate_csrf_token() -> None:
    """Drop the CSRF token of the signed-out visitor: the signed-in session gets a new one."""
    session.pop("csrf_token", None)
    g.pop("csrf_token", None)


def _audit_failure(email: str, reason: str) -> None:
    """Record a failed sign-in: the address typed (never the password) and why it failed."""
    audit.record("login_failed", "person", None, f"Failed sign-in as {email[:255]}: {reason}")


# --- second step: one-time code -------------------------------------------------------------

PENDING_KEY = "pending_2fa"
LOCALE_SESSION_KEY = "locale"  # a visitor's language (i18n's switch on the sign-in pages)


class CodeForm(FlaskForm):
    code = StringField(
        _l("Code"),
        validators=[
            DataRequired(_l("Type the 6-digit code.")),
            Regexp(r"^\s*\d{6}\s*$", message=_l("The code has 6 digits.")),
        ],
    )


def _start_code_step(person: Person, remember: bool, next_url: str | None):
    """Send a code and remember who passed the password step (they are not signed in yet)."""
    if person.locale:  # the code step comes before sign-in: speak the person's language already
        session[LOCALE_SESSION_KEY] = person.locale
        refresh_locale()
    if not _send_code(person):
        _audit_failure((person.email or "").lower(), "the one-time code could not be sent")
        return redirect(url_for("auth.login"))
    session[PENDING_KEY] = {
        "person_id": person.id,
        "remember": bool(remember),
        "next": safe_next(next_url),
        "until": int(time.time()) + current_app.config["OTP_PENDING_SECONDS"],
    }
    return redirect(url_for("auth.login_code"))


def _send_code(person: Person) -> bool:
    """Queue a new code (or say the last one is still valid); False when none can be sent."""
    try:
        ttl = otp.issue(person)
    except otp.CodeStillLive as exc:
        flash(str(exc), "info")
    except otp.CodeUnavailable as exc:
        flash(str(exc), "error")
        return False
    else:
        flash(
            _("A sign-in code was sent to you; it is valid for %(seconds)s seconds.", seconds=ttl),
            "info",
        )
    return True


def _pending_person() -> Person | None:
    """Return the person half-way through signing in, or None (nothing pending, expired, deactivated)."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or pending.get("until", 0) < time.time():
        session.pop(PENDING_KEY, None)
        return None
    person = db.session.get(Person, pending.get("person_id"))
    if person is None or not person.active:
        session.pop(PENDING_KEY, None)
        return None
    return person


@bp.route("/login/code", methods=["GET", "POST"])
def login_code():
    """Ask for the one-time code and finish signing in."""
    person = _pending_person()
    if person is None:
        flash(_("Please sign in (again)."), "info")
        return redirect(url_for("auth.login"))
    form = CodeForm()
    if form.validate_on_submit():
        email = (person.email or "").lower()
        lockout = login_guard.check(email, request.remote_addr)
        if lockout is not None:
            _audit_failure(email, f"one-time code refused: {lockout.scope} locked out")
            flash(lockout.message(), "error")
        else:
            try:
                otp.verify(person.id, form.code.data)
            except (otp.WrongCode, otp.CodeLocked) as exc:
                login_guard.record_failure(email, request.remote_addr)
                _audit_failure(email, "wrong one-time code")
                flash(str(exc), "error")
            except otp.OtpError as exc:
                flash(str(exc), "error")
            else:
                pending = session[PENDING_KEY]
                return _finish_login(person, pending["remember"], pending["next"], with_code=True)
    return render_template(
        "auth/code.html", form=form, person=person, seconds_left=otp.seconds_left(person.id)
    )


@bp.route("/login/code/resend", methods=["POST"])
def resend_code():
    """Send a new code, unless the last one is still valid."""
    person = _pending_person()
    if person is None:
        flash(_("Please sign in (again)."), "info")
        return redirect(url_for("auth.login"))
    _send_code(person)
    return redirect(url_for("auth.login_code"))


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Sign the current person out, ending this session on the server too."""
    audit.record("logout", "person", current_user.id, "Signed out", person=current_user)
    sessions.end(current_user.login_token)
    logout_user()
    _rotate_csrf_token()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/logout/everywhere", methods=["POST"])
@login_required
def logout_everywhere():
    """Sign the current person out on every browser and device."""
    count = sessions.end_all(current_user.id)
    audit.record(
        "logout_everywhere",
        "person",
        current_user.id,
        f"Signed out everywhere ({count} session(s) ended)",
        person=current_user,
    )
    logout_user()
    _rotate_csrf_token()
    flash(_("You are signed out on every browser and device."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/")
def home():
    """Send visitors to the admin home page."""
    return redirect(url_for("admin.index"))


def init_app(app) -> None:
    """Register the login manager and the auth routes."""
    login_manager.init_app(app)
    app.config["REMEMBER_COOKIE_DURATION"] = timedelta(days=app.config["REMEMBER_COOKIE_DAYS"])
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Please sign in to continue.")
    login_manager.localize_callback = str  # the lazy text, in the visitor's language
    login_manager.login_message_category = "info"
    app.register_blueprint(bp)
