"""A bounded on-disk spool for record batches that could not be written (Postgres away).

Batches are pickled one per file, named by a zero-padded sequence number, fsync'd, and replayed in
order. Replaying is idempotent because every table deduplicates by constraint. A spool survives the
connector being killed; the next start replays it first. A batch that cannot be read, or that Postgres rejects
for its content, is set aside as ``<seq>.bad`` (never deleted) so it cannot block the batches after it.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

from warehouse.records import Record

log = logging.getLogger(__name__)


class SpoolFull(RuntimeError):
    pass


class Spool:
    def __init__(self, directory: Path, max_bytes: int = 2 * 1024**3) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        existing = self.files()
        self._seq = int(existing[-1].stem) + 1 if existing else 0

    def files(self) -> list[Path]:
        return sorted(self.dir.glob("*.batch"), key=lambda p: int(p.stem))

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files())

    def __len__(self) -> int:
        return len(self.files())

    def put(self, records: Sequence[Record]) -> Path:
        data = pickle.dumps(list(records), protocol=pickle.HIGHEST_PROTOCOL)
        if self.size_bytes() + len(data) > self.max_bytes:
            raise SpoolFull(f"spool {self.dir} is over its {self.max_bytes} byte budget")
        tmp = self.dir / f"{self._seq:012d}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # Two connectors on one machine may share this directory: link() never replaces a file, so a name the
        # other process took moves us to the next sequence number instead of overwriting its batch.
        while True:
            path = self.dir / f"{self._seq:012d}.batch"
            self._seq += 1
            try:
                os.link(tmp, path)
                break
            except FileExistsError:
                continue
        tmp.unlink()
        return path

    def peek(self) -> tuple[Path, list[Record]] | None:
        for path in self.files():
            try:
                with open(path, "rb") as f:
                    return path, pickle.load(f)  # noqa: S301 - our own files
            except FileNotFoundError:  # acknowledged meanwhile by another connector sharing the directory
                continue
            except Exception as exc:  # noqa: BLE001 - truncated, corrupt, or pickled against classes that changed
                log.error("spool file %s is unreadable (%s: %s); moving it aside", path, exc.__class__.__name__, exc)
                self.set_aside(path)
        return None

    def ack(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def set_aside(self, path: Path) -> Path | None:
        """Move a batch out of the replay order to ``<seq>.bad`` (``<seq>.<n>.bad`` if taken), kept for inspection.

        Never replaces a file (link, then unlink); None when the batch is gone (another connector sharing the
        directory set it aside or wrote it meanwhile).
        """
        n = 0
        while True:
            target = path.with_suffix(".bad") if n == 0 else path.with_suffix(f".{n}.bad")
            try:
                os.link(path, target)
                break
            except FileExistsError:
                n += 1
            except FileNotFoundError:
                return None
        path.unlink(missing_ok=True)
        return target

    def put_aside(self, records: Sequence[Record]) -> Path | None:
        """Write a batch straight to the set-aside files (a batch Postgres rejected before it was ever spooled)."""
        return self.set_aside(self.put(records))

    def set_aside_files(self) -> list[Path]:
        return sorted(self.dir.glob("*.bad"))
