"""Parts of admin pages rendered once and reused: navigation menu, static links, list headers.

A list page spends most of its time in HTML that is the same on every request of the same
kind: the navigation menu (~12 menu entries, each a translated name, an access check and a
``url_for``), the stylesheet and script tags (a dozen ``url_for``), the column headers with
their sort links. ``cached_fragment`` keeps such a part, rendered by Flask-Admin's own block
(``{% call cached_fragment(...) %}{{ super() }}{% endcall %}``), on the view that renders it,
keyed by everything it shows:

* always the language, the app's URL root (``request.script_root``) and the part's name;
* whatever else the template passes: the menu entries this person may see, the list URL the
  sort links are made from, the actions that add the tick-box column, ...

A per-request value inside a part is swapped, not cached: ``swap=`` names it (the CSP nonce
attribute, random per request so no other text of the page can equal it); the part is kept
cut at that value and each request joins the cuts with its own. The cache of each view is
bounded (``LIMIT`` parts); when full it starts again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import request
from flask_babel import get_locale
from jinja2 import pass_context
from markupsafe import Markup

if TYPE_CHECKING:
    from collections.abc import Callable

    from flask import Flask
    from flask_admin import Admin
    from jinja2.runtime import Context

LIMIT = 256  # parts per view: languages x list URLs x people's menus, with room to spare


@pass_context
def cached_fragment(
    context: Context, name: str, *key: Any, swap: Any = None, caller: Callable[[], str]
) -> Markup:
    """Return the part ``caller`` renders, from the view's cache when it was made already."""
    view = context.get("admin_view")
    if view is None:
        return Markup(caller())
    swapped = str(swap) if swap else ""
    full_key = (name, str(get_locale()), request.script_root, bool(swapped), *key)
    cache = view.__dict__.setdefault("_llmadmin_fragments", {})
    parts = cache.get(full_key)
    if parts is None:
        html = str(caller())
        if len(cache) >= LIMIT:
            cache.clear()
        parts = cache[full_key] = html.split(swapped) if swapped else [html]
    return Markup(swapped.join(parts))


def menu_state(admin: Admin) -> tuple:
    """The menu entries this person sees (what the navigation menu's HTML depends on)."""
    seen = []
    for item in admin.menu():
        if item.is_category():
            seen.append(tuple(id(child) for child in item.get_children()))
        else:
            seen.append(item.is_accessible() and item.is_visible())
    for link in admin.menu_links():
        seen.append(link.is_accessible() and link.is_visible())
    return tuple(seen)


def init_app(app: Flask) -> None:
    """Offer ``cached_fragment`` and ``menu_state`` to the admin templates."""
    app.jinja_env.globals.update(cached_fragment=cached_fragment, menu_state=menu_state)
