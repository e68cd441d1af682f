"""Progress bars with ETA for long work (tqdm), silenced with BRAINPROBE_PROGRESS=0."""

from __future__ import annotations

import os
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", leave: bool = False) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar (elapsed, ETA) on stderr unless progress is disabled."""
    disable = os.environ.get("BRAINPROBE_PROGRESS", "1") == "0"
    return iter(tqdm(iterable, total=total, desc=desc, leave=leave, disable=disable, dynamic_ncols=True))
