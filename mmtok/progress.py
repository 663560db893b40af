"""Progress on stderr: a tqdm bar on a terminal, plain lines everywhere else.

tqdm redraws its bar with carriage returns many times a second; written to a log file (stderr
redirected, a batch job) an hour-long run leaves megabytes of frames. When stderr is not a
terminal, a :class:`PlainProgress` writes one line every few seconds instead (count, rate,
postfix such as the error count) and a last one when the run ends.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

INTERVAL_ENV = "MMTOK_PROGRESS_SECONDS"  # seconds between plain lines (default 10)
DEFAULT_INTERVAL = 10.0


class PlainProgress:
    """The part of tqdm's interface mmtok uses, printing plain lines at most every
    ``interval`` seconds."""

    def __init__(self, total: int | None, desc: str, unit: str, initial: int = 0,
                 disable: bool = False, file: TextIO | None = None,
                 interval: float | None = None) -> None:
        self.total, self.desc, self.unit, self.disable = total, desc, unit, disable
        self.n = self.initial = initial
        self.file = file if file is not None else sys.stderr
        if interval is None:
            interval = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL))
        self.interval = interval
        self.postfix: dict[str, Any] = {}
        self.started = self.last = time.monotonic()
        self.shown: int | None = None  # the count of the last line printed

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n != self.shown and time.monotonic() - self.last >= self.interval:
            self._print()

    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        self.postfix.update(values)

    def close(self) -> None:
        if self.n != self.shown:
            self._print()
        self.disable = True  # a second close prints nothing

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _print(self) -> None:
        self.last = time.monotonic()
        if self.disable:
            return
        elapsed = max(self.last - self.started, 1e-9)
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        rate = (self.n - self.initial) / elapsed
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        print(f"{self.desc}: {count} {self.unit}s{share}, {rate:.1f} {self.unit}s/s, "
              f"{elapsed:.0f} s{extra}", file=self.file, flush=True)
        self.shown = self.n


def progress_bar(*, total: int | None, desc: str, unit: str, initial: int = 0,
                 disable: bool = False, **tqdm_options: Any) -> Any:
    """A tqdm bar when stderr is a terminal, else a :class:`PlainProgress`."""
    if disable or sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=disable,
                    file=sys.stderr, dynamic_ncols=True, **tqdm_options)
    return PlainProgress(total, desc, unit, initial)
