"""Jobs of the Download Center: write an export, remove deleted files."""

from __future__ import annotations

from llmadmin.jobs.context import app_context
from llmadmin.services.download_cleanup import remove_files
from llmadmin.services.downloads import run_export


def export_download(download_id: int) -> str:
    """Write the file of a PENDING download (a duplicate delivery is a no-op)."""

    with app_context():
        return run_export(download_id)


def remove_download_files(paths: list[str]) -> int:
    """Remove the stored files of deleted downloads (queued after the delete committed)."""

    with app_context():
        return remove_files(paths)
