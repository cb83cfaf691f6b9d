"""The OpenAPI document and a docs page that reads it (our own small script; no CDN).

Both speak the reader's language: the person's, else the browser's (Accept-Language), or the
one ``?lang=`` names (the docs page asks for its own). Only the prose is translated; names,
codes and shapes are the same in every language, so the document stays one valid API.
"""

from __future__ import annotations

from flask import jsonify, render_template, request
from flask_babel import get_locale

from llmadmin.api.blueprint import bp
from llmadmin.api.openapi import document
from llmadmin.config import LOCALES


def _language() -> str:
    """Return the locale the document is written in for this request."""
    asked = request.args.get("lang", "")
    return asked if asked in LOCALES else str(get_locale())


@bp.get("/openapi.json")
def openapi_json():
    """Serve the OpenAPI 3.1 document (no token needed), its prose in the reader's language."""
    locale = _language()
    response = jsonify(document(locale))
    response.headers["Content-Language"] = locale.replace("_", "-")
    response.vary.add("Accept-Language")
    return response


@bp.get("/docs")
def docs():
    """Show the API's operations, parameters and shapes, read from openapi.json."""
    return render_template("api/docs.html", locale=str(get_locale()))
