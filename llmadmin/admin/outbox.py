"""The Code outbox panel: read-only, admins only, for the development (log) notifier."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from llmadmin.admin.read_only import ReadOnlyLogView


class CodeOutboxView(ReadOnlyLogView):
    """Sign-in codes written by the development (log) notifier, newest first."""

    column_list = ("at", "person_label", "channel", "destination", "body")
    column_details_list = (
        "at",
        "person_id",
        "person_label",
        "channel",
        "destination",
        "subject",
        "body",
    )
    column_filters = ("person_label", "at")
    column_searchable_list = ("person_label", "destination")
    column_sortable_list = ("at", "person_label")
    column_labels = {
        "at": _l("When"),
        "person_id": _l("Person ID"),
        "person_label": _l("Person"),
        "channel": _l("Channel"),
        "destination": _l("Destination"),
        "subject": _l("Subject"),
        "body": _l("Message"),
    }
    column_descriptions = {
        "body": _l(
            "Written by OTP_NOTIFIER=log (development); production notifiers "
            "send by email or SMS and never write here."
        )
    }
