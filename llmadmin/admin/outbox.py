"""The Code outbox panel: read-only, admins only, for the development (log) notifier."""

from __future__ import annotations

from llmadmin.admin.base import ProtectedView


class CodeOutboxView(ProtectedView):
    admin_only = True
    can_create = False
    can_edit = False
    can_delete = False
    can_export = False
    action_disallowed_list = ["delete"]
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
    column_default_sort = ("at", True)
    column_labels = {"at": "When", "person_label": "Person", "body": "Message"}
    column_descriptions = {
        "body": "Written by OTP_NOTIFIER=log (development); production notifiers "
        "send by email or SMS and never write here."
    }
