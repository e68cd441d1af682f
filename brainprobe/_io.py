"""Atomic file writes shared by every part (standard library only, so any layer may import it)."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a file through a temporary beside it and a rename (readers never see half a file).

    On any failure the temporary is removed and an existing file at ``path`` is left as it was;
    an ``OSError`` (disk full, read-only folder) names ``path``, not the temporary.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if err.filename is None or str(err.filename) == str(tmp):
            err.filename = str(path)
        raise
    except BaseException:  # interrupted: no half-written temporary is left behind
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
