"""Column formatters ``(view, context, model, name)`` shared by the admin views."""

from __future__ import annotations

from markupsafe import Markup, escape

BADGE_CLASSES = {
    "PENDING": "secondary",
    "QUEUED": "info",
    "RUNNING": "primary",
    "SUCCESS": "success",
    "FAILURE": "danger",
    "CANCELED": "dark",
}


def status_badge(view, context, model, name):
    """Render a status as a coloured badge that the list page can refresh in place."""
    status = getattr(model, name) or ""
    css = BADGE_CLASSES.get(status, "light")
    note = getattr(model, "queue_note", None)
    title = f' title="{escape(note)}"' if note else ""
    badge = Markup('<span class="badge badge-{} js-status" data-id="{}"{}>{}</span>').format(
        css, model.id, Markup(title), status
    )
    if note:
        badge += Markup(' <small class="text-muted">{}</small>').format(note.split(":")[0])
    return badge


def preformatted(view, context, model, name):
    """Show long text with its line breaks kept (escaped: untrusted text never runs)."""
    value = getattr(model, name)
    if value is None:
        return ""
    return Markup('<pre class="llm-text" data-field="{}">{}</pre>').format(name, value)


def truncated(view, context, model, name, length: int = 80):
    """Show the first line of long text in a list cell, the whole text as a tooltip."""
    value = getattr(model, name) or ""
    short = value if len(value) <= length else value[:length] + "…"
    return Markup('<span title="{}">{}</span>').format(value[:1000], short)


def milliseconds(view, context, model, name):
    """Show a latency in ms or s."""
    value = getattr(model, name)
    if value is None:
        return ""
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def byte_size(view, context, model, name):
    """Show a size in human units."""
    value = getattr(model, name)
    if value is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def yes_no_badge(view, context, model, name):
    """Show a boolean as a small badge."""
    value = getattr(model, name)
    return Markup('<span class="badge badge-{}">{}</span>').format(
        "success" if value else "secondary", "yes" if value else "no"
    )
