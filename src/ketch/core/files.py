"""Small file helpers shared by the server and the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_private_json(path: Path, data: dict[str, object]) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only (0600).

    The file is created with mode 0600 from the start (never world-readable for an
    instant), fsynced, then renamed over any previous version.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
