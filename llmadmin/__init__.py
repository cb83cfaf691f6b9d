"""llmadmin: an admin-first tool for running LLM work inside a company."""

from __future__ import annotations

import logging
import os

from flask import Flask

from llmadmin import config as settings
from llmadmin.version import VERSION as __version__  # noqa: E402,F401  (public)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the Flask app; every subsystem is bound here with its own ``init_app``."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    app = Flask(
        __name__,
        instance_path=os.environ.get("LLMADMIN_INSTANCE", os.path.join(root, "instance")),
        instance_relative_config=False,
        template_folder=os.path.join(root, "templates"),
    )
    app.config.from_mapping(settings.from_environment())
    if test_config:
        app.config.from_mapping(test_config)
    settings.validate(app.config)
    os.makedirs(app.instance_path, exist_ok=True)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))

    # Imported here, not at the top: ``import llmadmin.models`` (migrations, workers' job
    # modules, scripts) must not load the whole web stack, and the web modules need this
    # package importable first.
    from llmadmin import (
        api,
        auth,
        cli,
        database,
        downloads_web,
        errorpages,
        health,
        i18n,
        queues,
        rqdash,
    )
    from llmadmin.admin import init_admin
    from llmadmin.extensions import csrf
    from llmadmin.security import init_app as init_security
    from llmadmin.services import audit  # noqa: F401  registers the audit session hook

    database.init_app(app)
    queues.init_app(app)
    csrf.init_app(app)
    i18n.init_app(app)  # before any page renders: language and time zone per person
    auth.init_app(app)
    init_admin(app)
    init_security(app)  # after init_admin: headers/CSP, policies, sign-in code notifiers
    rqdash.init_app(app)
    downloads_web.init_app(app)
    api.init_app(app)
    health.init_app(app)
    errorpages.init_app(app)
    cli.init_app(app)
    return app
