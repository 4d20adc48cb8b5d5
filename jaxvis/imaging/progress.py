"""A dependency-free progress bar for long jobs (units/s, ETA), written to stderr."""

from __future__ import annotations

import sys
import time


class Progress:
    """`Progress(total, label, unit)`; call `.update(n)` as work completes and `.close()` at the end.

    Disabled (`enabled=False`) it does nothing. Redraws at most every 0.2 s on a terminal; when
    stderr is not a terminal it prints a line at most every 10 s, so logs stay short.
    """

    def __init__(self, total: int, label: str, unit: str = "steps", enabled: bool = True, file=None):
        self.total, self.label, self.unit, self.enabled = max(int(total), 1), label, unit, enabled
        self.file = file or sys.stderr
        self.done, self.t0, self._last = 0, time.perf_counter(), 0.0
        self._tty = hasattr(self.file, "isatty") and self.file.isatty()

    def update(self, n: int) -> None:
        self.done += int(n)
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.done < self.total and now - self._last < (0.2 if self._tty else 10.0):
            return
        self._last = now
        el = now - self.t0
        rate = self.done / el if el > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        frac = self.done / self.total
        bar = "#" * int(24 * frac) + "." * (24 - int(24 * frac))
        msg = (f"{self.label}: {100 * frac:5.1f}% [{bar}] {self.done}/{self.total} {self.unit}, "
               f"{rate:.1f} {self.unit}/s, elapsed {el:.0f}s, ETA {eta:.0f}s")
        print(("\r" + msg) if self._tty else msg, end="" if self._tty else "\n", file=self.file, flush=True)

    def close(self) -> None:
        if self.enabled and self._tty:
            print(file=self.file, flush=True)
