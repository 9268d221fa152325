"""Source bundles (``sourcedir.tar.gz``) made on the spot for job tests."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def source_bundle(files: dict[str, str]) -> bytes:
    """A gzip tar holding ``files`` (member names taken as given, even unsafe ones)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_source_bundle(path: Path, files: dict[str, str]) -> Path:
    """:func:`source_bundle` written to ``path``."""
    path.write_bytes(source_bundle(files))
    return path
