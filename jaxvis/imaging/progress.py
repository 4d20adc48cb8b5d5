"""A dependency-free progress bar for long jobs (units/s, ETA), written to stderr.

One rule for every tool, in Python as on the command line: ``progress=None`` (the default) shows the
bar where someone is watching, a terminal or a Jupyter notebook, and stays silent in logs, pipes and
test runs; ``True`` shows it anywhere (a line at most every 10 s where the stream is not interactive);
``False`` never.
"""

from __future__ import annotations

import sys
import time


def interactive(file) -> bool:
    """Whether `file` is watched live: a terminal, or a Jupyter kernel's stream (which honours ``\\r``)."""
    try:
        if file.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
    # ipykernel's OutStream is no tty, but the notebook redraws a line on '\r' as a terminal does.
    return type(file).__module__.split(".")[0] == "ipykernel"


def wanted(progress: bool | None, file=None) -> bool:
    """Resolve a tool's `progress` argument: None → on where the stream is :func:`interactive`."""
    return interactive(file or sys.stderr) if progress is None else bool(progress)


class Progress:
    """`Progress(total, label, unit)`; call `.update(n)` as work completes and `.close()` at the end.

    Args:
      total: units of work in all.
      label: what is running (shown first).
      unit: the name of a unit of work ("steps", "units", "images").
      enabled: True, False, or None (default): on where stderr is a terminal or a notebook (:func:`wanted`).
      file: the stream (default sys.stderr, read when the bar is made).

    Redraws in place at most every 0.2 s where the stream is interactive; elsewhere (``enabled=True``
    into a log) it prints a line at most every 10 s, so logs stay short. ``note`` is shown after the
    counts (e.g. the current octave).
    """

    def __init__(self, total: int, label: str, unit: str = "steps", enabled: bool | None = None, file=None):
        self.total, self.label, self.unit = max(int(total), 1), label, unit
        self.file = file or sys.stderr
        self.enabled = wanted(enabled, self.file)
        self.done, self.t0, self._last = 0, time.perf_counter(), 0.0
        self._tty = interactive(self.file)
        self.note = ""
        self._width = 0

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
        eta = f"{(self.total - self.done) / rate:.0f}s" if rate > 0 else "?"
        frac = min(self.done / self.total, 1.0)
        bar = "#" * int(24 * frac) + "." * (24 - int(24 * frac))
        msg = (f"{self.label}: {100 * frac:5.1f}% [{bar}] {self.done}/{self.total} {self.unit}, "
               f"{rate:.1f} {self.unit}/s, elapsed {el:.0f}s, ETA {eta}" + (f"; {self.note}" if self.note else ""))
        if self._tty:  # pad over a longer previous line
            msg, self._width = "\r" + msg.ljust(self._width), max(self._width, len(msg))
        print(msg, end="" if self._tty else "\n", file=self.file, flush=True)

    def close(self) -> None:
        if self.enabled and self._tty:
            print(file=self.file, flush=True)
