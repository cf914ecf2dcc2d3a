"""How much a folder holds over time."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path


class FolderPeak:
    """The most bytes a folder held (files under it, sampled every few milliseconds)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.002):
            total = 0
            with contextlib.suppress(OSError):  # a folder removed while it is walked
                for path in self.folder.rglob("*"):
                    with contextlib.suppress(OSError):
                        total += path.stat().st_size if path.is_file() else 0
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak
