"""Private key files: created once, atomically, readable by the owner only."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def create_private_file(file: Path, content: bytes) -> None:
    """Write ``content`` to a 0600 temp file, then link it into place; losing a race is fine
    (whoever linked first wins, and both callers then read the same file)."""
    file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".key-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, file)
    finally:
        os.unlink(tmp)
