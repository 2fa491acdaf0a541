"""The on-disk spool: append-only segment files of JSON lines, one cursor per exporter.

- Segments are ``<seq>.seg`` (16-digit sequence number), each closed when it passes
  ``segment_bytes``; a new one is opened at every start, so a file is only ever appended to by
  one process run. A torn last line (crash mid-write) is cut off at start-up.
- Each exporter's cursor ``(segment, byte offset)`` lives in ``cursors/<name>``, replaced
  atomically (write, fsync, rename) after the exporter acknowledged the events before it.
- A segment is deleted when every exporter's cursor is past it; ``used_bytes`` is the sum of
  the segment files, which the service keeps under ``max_spool_bytes``.
- :meth:`Spool.claim` gives each process its own slot ``w<N>`` under the spool directory, held
  by an exclusive ``flock`` while it runs: gateway workers sharing one configuration never write
  the same files, and a restarted worker takes over a free slot with whatever it holds.

The methods are synchronous and called in a worker thread; a lock guards the segment table
(one writer thread and one reader per exporter).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("maestro_gateway.siem")


@dataclass(frozen=True, slots=True)
class Cursor:
    seq: int
    offset: int


class Spool:
    def __init__(self, directory: str | Path, segment_bytes: int, fsync: bool) -> None:
        self.dir = Path(directory)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        self._sizes: dict[int, int] = {}  # seq -> committed bytes (whole lines only)
        self._active = 0
        self._fd = -1
        self._lock_fd = -1
        self.used_bytes = 0

    def claim(self, slots: int = 64) -> None:
        """Move into the first free slot ``w<N>`` under the directory (an exclusive lock)."""
        base = self.dir
        base.mkdir(parents=True, exist_ok=True)
        for n in range(slots):
            slot = base / f"w{n}"
            slot.mkdir(exist_ok=True)
            fd = os.open(slot / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.dir, self._lock_fd = slot, fd
            return
        raise OSError(f"all {slots} spool slots under {base} are in use")

    # -- lifecycle --
    def open(self) -> None:
        (self.dir / "cursors").mkdir(parents=True, exist_ok=True)
        for path in sorted(self.dir.glob("*.seg")):
            try:
                seq = int(path.stem)
            except ValueError:
                continue
            self._sizes[seq] = _recover(path)
        self.used_bytes = sum(self._sizes.values())
        self._rotate()

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the slot
                self._lock_fd = -1

    def _rotate(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._active = max(self._sizes, default=0) + 1
        path = self._path(self._active)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._sizes[self._active] = 0
        if self.fsync:
            _fsync_dir(self.dir)

    def _path(self, seq: int) -> Path:
        return self.dir / f"{seq:016d}.seg"

    # -- writing --
    def append(self, lines: list[bytes]) -> None:
        """Write whole lines (each ending in a newline) and, by policy, fsync them."""
        data = b"".join(lines)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self.fsync:
            os.fsync(self._fd)
        with self._lock:
            self._sizes[self._active] += len(data)
            self.used_bytes += len(data)
            if self._sizes[self._active] >= self.segment_bytes:
                self._rotate()

    # -- reading --
    def first(self) -> Cursor:
        with self._lock:
            return Cursor(min(self._sizes), 0)

    def read(self, cursor: Cursor, max_events: int, max_bytes: int) -> tuple[list[bytes], Cursor]:
        """Up to ``max_events`` whole lines from ``cursor`` on, and the cursor after them.

        An empty list with a moved cursor means: skipped to the next segment (or past a
        deleted one); an empty list with the same cursor means: nothing new yet.
        """
        with self._lock:
            seqs = sorted(self._sizes)
            if cursor.seq not in self._sizes:
                later = [s for s in seqs if s > cursor.seq]
                return [], Cursor(later[0] if later else self._active, 0)
            size, active = self._sizes[cursor.seq], cursor.seq == self._active
        if cursor.offset >= size:
            if active:
                return [], cursor
            later = [s for s in seqs if s > cursor.seq]
            return [], Cursor(later[0], 0)
        try:
            with open(self._path(cursor.seq), "rb") as f:
                f.seek(cursor.offset)
                chunk = f.read(min(size - cursor.offset, max_bytes))
        except FileNotFoundError:  # removed behind our back: its events are gone, go on
            log.error("spool segment is missing", extra={"segment": cursor.seq})
            if active:  # the writer still holds it open; its next rotation moves on
                return [], cursor
            with self._lock:
                self.used_bytes -= self._sizes.pop(cursor.seq, 0)
            return [], Cursor(cursor.seq + 1, 0)
        lines = chunk.split(b"\n")[:-1]  # a partial line at the chunk's end waits
        if not lines and chunk:  # one line longer than max_bytes: read it whole
            with open(self._path(cursor.seq), "rb") as f:
                f.seek(cursor.offset)
                lines = [f.readline().rstrip(b"\n")]
        lines = lines[:max_events]
        used = sum(len(line) + 1 for line in lines)
        return lines, Cursor(cursor.seq, cursor.offset + used)

    # -- cursors and release --
    def load_cursor(self, name: str) -> Cursor:
        try:
            seq, offset = (self.dir / "cursors" / name).read_text().split()
            return Cursor(int(seq), int(offset))
        except (OSError, ValueError):
            return self.first()

    def save_cursor(self, name: str, cursor: Cursor) -> None:
        path = self.dir / "cursors" / name
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(f"{cursor.seq} {cursor.offset}\n")
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)

    def release(self, cursors: list[Cursor]) -> int:
        """Delete the segments every cursor has passed; returns the bytes freed."""
        if not cursors:
            return 0
        low = min(cursors, key=lambda c: (c.seq, c.offset))
        freed = 0
        with self._lock:
            for seq in [s for s in self._sizes if s < low.seq and s != self._active]:
                with contextlib.suppress(FileNotFoundError):
                    self._path(seq).unlink()
                freed += self._sizes.pop(seq)
            self.used_bytes -= freed
        return freed

    def pending_segments(self) -> int:
        with self._lock:
            return len(self._sizes)


def _recover(path: Path) -> int:
    """Cut a torn last line (a crash mid-write) and return the file's size."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        log.warning("spool segment had a torn last line; cut", extra={"segment": path.name})
        with open(path, "r+b") as f:
            f.truncate(end)
    return end


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
