"""The OpenAPI document and a docs page that reads it (our own small script; no CDN)."""

from __future__ import annotations

from flask import jsonify, render_template

from llmadmin.api.blueprint import bp
from llmadmin.api.openapi import document


@bp.get("/openapi.json")
def openapi_json():
    """Serve the OpenAPI 3.1 document (no token needed)."""
    return jsonify(document())


@bp.get("/docs")
def docs():
    """Show the API's operations, parameters and shapes, read from openapi.json."""
    return render_template("api/docs.html")
