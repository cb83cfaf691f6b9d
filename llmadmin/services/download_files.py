"""Where the Download Center keeps its files, and safe ways to find and remove them.

Every path stored on a Download row is relative to the storage root (DOWNLOAD_DIR, or
``instance/downloads``); it is only ever opened through ``resolve_storage_path``, which
refuses anything that would leave the root.
"""

from __future__ import annotations

import logging
import os

from flask import current_app

logger = logging.getLogger(__name__)


def storage_root() -> str:
    """Return the folder that holds every generated file."""
    return current_app.config.get("DOWNLOAD_DIR") or os.path.join(
        current_app.instance_path, "downloads"
    )


def resolve_storage_path(relative: str | None) -> str | None:
    """Map a stored relative path to a real path inside the storage root, or None."""
    if not relative or "\x00" in relative or os.path.isabs(relative):
        return None
    root = os.path.realpath(storage_root())
    path = os.path.realpath(os.path.join(root, relative))
    if os.path.commonpath([root, path]) != root or path == root:
        return None
    return path


def remove_quietly(path: str | None) -> None:
    """Remove a file if it is there; a failure is logged, never raised."""
    if path:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("could not remove %s: %s", path, exc)
