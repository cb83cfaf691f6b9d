"""Security headers on every response, and the wiring of the security subsystems.

Content-Security-Policy: scripts run only from our own origin or with this response's
nonce, so text that slips into a page unescaped still cannot run. Flask-Admin puts the nonce
on its ``<script>`` tags (``csp_nonce_generator``). Its templates also carry a few inline
handlers (``onclick="return modelActions.execute('run');"``, the row delete's confirm, the
filter links) and its create/edit modals one inline script; those exact texts are allowed by
their SHA-256 hashes with 'unsafe-hashes' (computed from the registered views' actions).

Why hashes rather than a nonce'd script that re-binds the handlers: Chromium reports every
blocked handler attribute as a violation when the page is parsed, so a re-binder leaves a
dozen console errors (and CSP reports) on every list page; the modal's script, which jQuery
inserts with the nonce of *its* response, would still be blocked; and the handlers would run
through our copy of Flask-Admin's logic rather than its own. A hash allows one exact text
only, so an injected handler with any other code stays blocked.

Inline *styles* stay allowed: Bootstrap and Flask-Admin use style attributes, and a style
cannot run code.

The RQ dashboard (a third-party blueprint) has inline scripts we cannot tag and compiles
underscore templates with ``new Function``; its pages get a policy that allows exactly the
inline scripts the page was rendered with (their hashes) plus 'unsafe-eval'.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from functools import lru_cache

import flask_admin
from babel.support import Translations
from flask import current_app, has_request_context, request
from flask_login import current_user

from llmadmin import notifiers, policy

NONCE_ENVIRON_KEY = "llmadmin.csp_nonce"
RQ_DASHBOARD_BLUEPRINT = "rq_dashboard"
INLINE_SCRIPT_RE = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.I | re.S)
JS_TYPES = {"", "text/javascript", "application/javascript", "module"}

COMMON_DIRECTIVES = (
    "default-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)


# Verbatim from Flask-Admin's bootstrap4 templates: admin/actions.html (one per action),
# admin/model/row_actions.html, admin/model/layout.html and admin/model/modals/{create,edit}.html.
# tests/security/test_csp_pages.py fails when a page carries an inline handler not covered here.
ACTION_HANDLER = "return modelActions.execute('{name}');"
DELETE_CONFIRM = "Are you sure you want to delete this record?"
FIXED_HANDLERS = (
    f"return faHelpers.safeConfirm('{DELETE_CONFIRM}');",
    "return false;",
)
# The row delete's confirmation is translated by Flask-Admin's own catalogue, so its handler
# text differs per language: allow the translated text of every locale we offer.
TRANSLATED_LOCALES = ("zh_Hans_CN",)


@lru_cache(maxsize=1)
def translated_handlers() -> tuple[str, ...]:
    """The row delete handler as Flask-Admin renders it in each of our other languages."""
    path = os.path.join(os.path.dirname(flask_admin.__file__), "translations")
    texts = []
    for locale in TRANSLATED_LOCALES:
        text = Translations.load(path, [locale], "admin").gettext(DELETE_CONFIRM)
        texts.append(f"return faHelpers.safeConfirm('{text}');")
    return tuple(texts)


MODAL_SCRIPTS = (
    "window.faForm.applyGlobalStyles(document.getElementsByClassName('modal-content'));",
)


def hash_source(text: str) -> str:
    """Return the CSP source allowing exactly ``text`` ('sha256-…')."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode('utf-8')).digest()).decode('ascii')}'"


@lru_cache(maxsize=8)
def _admin_inline_sources(action_names: tuple[str, ...]) -> str:
    texts = [ACTION_HANDLER.format(name=name) for name in action_names]
    texts += list(FIXED_HANDLERS) + list(translated_handlers())
    return " ".join(["'unsafe-hashes'", *(hash_source(t) for t in texts + list(MODAL_SCRIPTS))])


def admin_inline_sources(app) -> str:
    """Return the hash sources for Flask-Admin's inline handlers and modal script in ``app``."""
    admin = app.extensions.get("llmadmin.admin")
    views = admin._views if admin is not None else []
    names = sorted({name for view in views for name, _text in getattr(view, "_actions", [])})
    return _admin_inline_sources(tuple(names))


def csp_nonce() -> str:
    """Return this request's CSP nonce (made on first use; kept in the WSGI environ, one per request)."""
    if not has_request_context():
        return ""
    nonce = request.environ.get(NONCE_ENVIRON_KEY)
    if nonce is None:
        nonce = request.environ[NONCE_ENVIRON_KEY] = secrets.token_urlsafe(18)
    return nonce


def content_security_policy(nonce: str, inline_sources: str = "") -> str:
    """Return the policy of the app's own pages."""
    script = " ".join(filter(None, ("script-src 'self'", f"'nonce-{nonce}'", inline_sources)))
    return "; ".join((script, *COMMON_DIRECTIVES))


def inline_script_hashes(html: str) -> list[str]:
    """Return the CSP hash sources of the inline JavaScript blocks in ``html``."""
    sources = []
    for attrs, body in INLINE_SCRIPT_RE.findall(html):
        if re.search(r"\bsrc\s*=", attrs, re.I):
            continue
        kind = re.search(r"""\btype\s*=\s*["']?([^"'\s>]*)""", attrs, re.I)
        if kind and kind.group(1).lower() not in JS_TYPES:
            continue  # e.g. type="text/template": never executed
        sources.append(hash_source(body))
    return sources


def rq_dashboard_policy(response) -> str:
    """Return the policy of an RQ dashboard response (its own inline scripts, hashed)."""
    hashes = []
    if response.mimetype == "text/html" and not response.direct_passthrough:
        hashes = inline_script_hashes(response.get_data(as_text=True))
    script = " ".join(["script-src 'self' 'unsafe-eval'", *hashes])
    return "; ".join((script, *COMMON_DIRECTIVES))


NO_STORE_TYPES = {"text/html", "application/json"}


def _signed_in() -> bool:

    return bool(current_user and current_user.is_authenticated)


def set_security_headers(response):
    """Add CSP, anti-framing, no-sniffing and referrer headers (a view may set its own CSP)."""
    if request.blueprint == RQ_DASHBOARD_BLUEPRINT:
        policy = rq_dashboard_policy(response)
    else:
        policy = content_security_policy(csp_nonce(), admin_inline_sources(current_app))
    headers = response.headers
    headers.setdefault("Content-Security-Policy", policy)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype in NO_STORE_TYPES and _signed_in():
        # A signed-in page or JSON answer holds that person's data: no browser or proxy cache
        # may keep it (the back button after sign-out, a shared machine, a caching proxy).
        headers["Cache-Control"] = "no-store"
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        # Served over HTTPS (that is what the setting declares): browsers should never use plain HTTP.
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def init_app(app) -> None:
    """Bind headers, CSP nonces, the outbound/prompt policy and the sign-in code notifiers.

    Call after ``init_admin``: the admin gets the nonce generator and the Code outbox panel.
    """

    policy.init_app(app)
    notifiers.init_app(app)
    admin = app.extensions.get("llmadmin.admin")
    if admin is not None:
        # Same as Admin(csp_nonce_generator=...): read by Flask-Admin each time it renders.
        admin.csp_nonce_generator = csp_nonce
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.after_request(set_security_headers)
