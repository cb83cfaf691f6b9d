"""Language and local time for each person: Flask-Babel's selectors, the switch, date display.

The language is the person's saved choice (``Person.locale``), else the best match of the
browser's Accept-Language, else DEFAULT_LOCALE. The time zone is the person's saved choice
(``Person.timezone``), else DEFAULT_TIMEZONE. Flask-Admin's own texts come from its
``zh_Hans_CN`` catalogue, which is why that is the name of our Chinese locale too.
"""

from __future__ import annotations

import logging
from datetime import datetime

from babel import dates as babel_dates
from flask import (
    Blueprint,
    current_app,
    g,
    has_request_context,
    redirect,
    request,
    session,
    url_for,
)
from flask_babel import Babel, format_timedelta, get_locale, get_timezone, gettext
from flask_login import current_user
from markupsafe import Markup, escape
from sqlalchemy.exc import SQLAlchemyError

from llmadmin import localtime
from llmadmin.auth import LOCALE_SESSION_KEY, safe_next
from llmadmin.extensions import db
from llmadmin.services import people as people_service

logger = logging.getLogger(__name__)
bp = Blueprint("i18n", __name__)
babel = Babel()

CHINESE = "zh_Hans_CN"
ENGLISH = "en"
LOCALES = {CHINESE: "中文", ENGLISH: "English"}
SESSION_KEY = LOCALE_SESSION_KEY  # a visitor's choice (the sign-in page's switch)


def _person():
    """Return the signed-in person, or None (also when loading them fails: error pages)."""
    try:
        return current_user if current_user.is_authenticated else None
    except SQLAlchemyError:  # the error page of a database outage must still render
        logger.debug("no person for the locale selector", exc_info=True)
        db.session.rollback()
        return None


def browser_locale() -> str | None:
    """Return the supported locale the browser asks for first (any zh-* is Chinese), or None."""
    for language, _quality in request.accept_languages:
        primary = language.replace("_", "-").split("-")[0].lower()
        if primary == "zh":
            return CHINESE
        if primary == "en":
            return ENGLISH
    return None


def select_locale() -> str:
    """Flask-Babel's locale selector: the person's choice, the browser's, the site default."""
    if has_request_context():
        person = _person()
        if person is not None and person.locale in LOCALES:
            return person.locale
        if person is None and session.get(SESSION_KEY) in LOCALES:
            return session[SESSION_KEY]
        found = browser_locale()
        if found:
            return found
    return current_app.config["DEFAULT_LOCALE"]


def select_timezone() -> str:
    """Flask-Babel's time zone selector: the person's zone, else DEFAULT_TIMEZONE."""
    return people_service.zone_of(_person() if has_request_context() else None)


def viewer_zone_name() -> str:
    """Return the IANA name of the zone times are shown in for this request."""
    return select_timezone()


def _viewer_zone_pair():
    """Return (IANA name, ZoneInfo) of this request's zone, looked up once per request.

    A list page shows dozens of times; the selector (the signed-in person, the zone check)
    runs once. Keyed by Flask-Babel's own per-request zone, so ``flask_babel.refresh()`` after
    a change of settings is followed here too.
    """
    if not has_request_context():
        name = viewer_zone_name()
        return name, localtime.zone(name, current_app.config["DEFAULT_TIMEZONE"])
    cache = g.setdefault("_viewer_zones", {})
    key = get_timezone()
    pair = cache.get(key)
    if pair is None:
        name = viewer_zone_name()
        pair = cache[key] = (name, localtime.zone(name, current_app.config["DEFAULT_TIMEZONE"]))
    return pair


def viewer_zone():
    """Return the ZoneInfo times are shown in for this request."""
    return _viewer_zone_pair()[1]


def exact_time(value: datetime | None) -> str:
    """Return a stored time as the viewer's local time, without microseconds ("" for None)."""
    if value is None:
        return ""
    return localtime.exact(value, viewer_zone())


def relative_time(value: datetime | None) -> str:
    """Return how long ago (or how soon) ``value`` is, in the viewer's language."""
    if value is None:
        return ""
    return format_timedelta(localtime.utc_age(value), add_direction=True)


# Babel's relative texts by (language, unit, number, future): see ``relative_key``.
_RELATIVE_TEXTS: dict[tuple, str] = {}


def relative_key(seconds: float) -> tuple[str, int, bool]:
    """What Babel's ``format_timedelta`` (second granularity, threshold 0.85) says of an age.

    Its text is made of the unit it picks, the rounded number of units and the direction
    only; this picks them as it does (its own loop over ``TIMEDELTA_UNITS``), so a page of
    rows a second apart asks Babel once for "11 months ago", not once per cell.
    """
    for unit, per_unit in babel_dates.TIMEDELTA_UNITS:
        value = abs(seconds) / per_unit
        if value >= 0.85 or unit == "second":
            if unit == "second" and value > 0:
                value = max(1, value)
            return unit, int(round(value)), seconds >= 0
    return "", 0, seconds >= 0


class TimeCells:
    """List time cells for one page: zone, its name and the language read once, not per cell.

    ``cell`` is what ``time_cell`` returns; the relative text is Babel's ``format_timedelta``
    with Flask-Babel's defaults (what ``flask_babel.format_timedelta`` calls), kept by
    ``relative_key``.
    """

    def __init__(self) -> None:
        self.zone_name, self.zone = _viewer_zone_pair()
        self.zone_text = escape(self.zone_name)
        self.locale = get_locale()
        self.locale_name = str(self.locale)

    def cell(self, value: datetime | None) -> Markup:
        """Relative time ("3 分钟前") with the exact local time and zone on hover."""
        if value is None:
            return Markup("")
        local = localtime.to_local(value, self.zone)
        age = localtime.utc_age(value)
        key = (self.locale_name, *relative_key(age.total_seconds()))
        relative = _RELATIVE_TEXTS.get(key)
        if relative is None:
            if len(_RELATIVE_TEXTS) > 4096:
                _RELATIVE_TEXTS.clear()
            relative = _RELATIVE_TEXTS[key] = babel_dates.format_timedelta(
                age, "second", threshold=0.85, add_direction=True, locale=self.locale
            )
        return Markup(
            f'<time datetime="{escape(local.isoformat())}" '
            f'title="{escape(local.strftime(localtime.EXACT_FORMAT))} {self.zone_text}">'
            f"{escape(relative)}</time>"
        )


def time_cell(value: datetime | None) -> Markup:
    """Relative time ("3 分钟前") with the exact local time and zone on hover: list cells."""
    if value is None:
        return Markup("")
    return TimeCells().cell(value)


def exact_cell(value: datetime | None) -> Markup:
    """The exact local time, with the zone and the relative time on hover: details pages."""
    if value is None:
        return Markup("")
    name, tz = _viewer_zone_pair()
    local = localtime.to_local(value, tz)
    return Markup('<time datetime="{}" title="{} · {}">{}</time>').format(
        local.isoformat(), name, relative_time(value), local.strftime(localtime.EXACT_FORMAT)
    )


def markup_text(msgid: str, **values) -> Markup:
    """Translate an HTML message and fill it in: plain values escaped, Markup values kept."""
    return Markup(gettext(msgid)) % values


def list_datetime_formatter(view, value, name):
    """Flask-Admin type formatter for datetimes in lists."""
    return time_cell(value)


def detail_datetime_formatter(view, value, name):
    """Flask-Admin type formatter for datetimes on details pages."""
    return exact_cell(value)


def current_locale() -> str:
    """Return the locale of this request as its catalogue name (zh_Hans_CN or en)."""
    locale = get_locale()
    return CHINESE if locale is not None and locale.language == "zh" else ENGLISH


@bp.route("/locale", methods=["POST"])
def set_locale():
    """Switch the language (saved on the person; for visitors, in the session) and go back."""
    wanted = request.form.get("locale", "")
    person = _person()
    if wanted in LOCALES:
        if person is not None:
            people_service.set_preferences(person.id, locale=wanted)
        else:
            session[SESSION_KEY] = wanted
    back = request.form.get("next")
    if person is None and not back:
        back = url_for("auth.login")
    return redirect(safe_next(back))


def html_lang() -> str:
    """The value of <html lang>: zh-CN or en."""
    return "zh-CN" if current_locale() == CHINESE else "en"


def init_app(app) -> None:
    """Bind Flask-Babel (our catalogue in llmadmin/translations) and the switch route."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", app.config["DEFAULT_LOCALE"])
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", app.config["DEFAULT_TIMEZONE"])
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    app.register_blueprint(bp)
    app.jinja_env.globals.update(
        LOCALES=LOCALES,
        current_locale=current_locale,
        html_lang=html_lang,
        viewer_zone_name=viewer_zone_name,
    )
    app.jinja_env.filters["localtime"] = exact_time
    app.jinja_env.filters["reltime"] = time_cell
