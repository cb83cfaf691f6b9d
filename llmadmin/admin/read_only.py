"""A base for admin-only logs that nobody edits (the audit log, the code outbox)."""

from __future__ import annotations

from llmadmin.admin.base import ProtectedView


class ReadOnlyLogView(ProtectedView):
    """Admins read and filter it; no one creates, edits, deletes or exports rows here."""

    admin_only = True
    can_create = False
    can_edit = False
    can_delete = False
    can_export = False
    action_disallowed_list = ["delete"]
    column_default_sort = ("at", True)
