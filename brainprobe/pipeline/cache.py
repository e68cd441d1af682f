"""Content-addressed store of stage outputs, written atomically and verified by checksum.

An entry is a folder ``<root>/<stage>/<key>/`` holding the stage's files and ``_checksums.json``
(sha256 of every file). The key is the sha256 of the stage name, the stage's code version and its
inputs (which are themselves keys of upstream entries, settings and content hashes), so an
entry is valid for exactly those inputs. Entries are built in a temporary folder beside their
final place and renamed into it: a killed writer leaves only a temporary folder, never a
half-written entry. A reader verifies the checksums; a missing or corrupt entry is removed and
recomputed.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from brainprobe._hashing import sha256_file, sha256_json
from brainprobe._io import write_bytes_atomic  # noqa: F401  (re-exported: callers import it from here)

CHECKSUMS = "_checksums.json"


def make_key(stage: str, version: int, inputs: Any) -> str:
    """sha256 over the stage name, its code version and its (JSON-serialisable) inputs."""
    return sha256_json({"stage": stage, "version": version, "inputs": inputs})


class Cache:
    """A content-addressed folder of stage outputs.

    Parameters
    ----------
    root
        Folder of the cache; created on first write.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def valid(self, stage: str, key: str, *, verify: bool = True) -> bool:
        """True when the entry exists and every file matches its recorded checksum.

        A corrupt or incomplete entry is removed (with a warning naming it) so that it is recomputed.
        """
        entry = self.path(stage, key)
        if not entry.is_dir():
            return False
        problem = self._problem(entry, verify)
        if problem is None:
            return True
        warnings.warn(f"cache check: {stage} entry {key[:12]} is {problem}; recomputing it", stacklevel=2)
        shutil.rmtree(entry, ignore_errors=True)
        return False

    @staticmethod
    def _problem(entry: Path, verify: bool) -> str | None:
        sums_file = entry / CHECKSUMS
        if not sums_file.is_file():
            return "incomplete (no checksums)"
        try:
            sums = json.loads(sums_file.read_text())
        except (OSError, ValueError):
            return "corrupt (unreadable checksums)"
        for name, digest in sums.items():
            f = entry / name
            if not f.is_file():
                return f"incomplete (missing {name})"
            if verify and sha256_file(f) != digest:
                return f"corrupt ({name} fails its checksum)"
        return None

    @contextmanager
    def writer(self, stage: str, key: str) -> Iterator[Path]:
        """Yield a temporary folder to write an entry's files into; commit it atomically on exit.

        If the body raises, the temporary folder is removed and nothing is committed.
        """
        final = self.path(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{key[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            yield tmp
            sums = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            _write_text_atomic(tmp / CHECKSUMS, json.dumps(sums, indent=1, sort_keys=True))
            _fsync_dir(tmp)
            if final.exists():  # another worker committed the same content first
                shutil.rmtree(tmp, ignore_errors=True)
                return
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.exists():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
            _fsync_dir(final.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def clean_temporaries(self) -> int:
        """Remove temporary folders left by killed writers; return how many."""
        n = 0
        if not self.root.is_dir():
            return 0
        for stage_dir in self.root.iterdir():
            if stage_dir.is_dir():
                for tmp in stage_dir.glob(".tmp-*"):
                    shutil.rmtree(tmp, ignore_errors=True)
                    n += 1
        return n


def _write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))




def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
