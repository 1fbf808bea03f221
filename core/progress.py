"""A one-line progress display for commands that run for minutes between two lines of output.

:class:`Stages` shows the stage a command is in (``build``, ``simulate``, ``synth``, ...), its
number among the stages, the time spent in it and, where the caller knows one, an estimate of the
time left; a background thread keeps the elapsed time moving while a tool runs in a subprocess.
It draws with tqdm on standard error only when that is a terminal: logs and pipes stay quiet.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import TextIO

__all__ = ["Stages"]


class Stages:
    """Context manager: ``with Stages(["build", "simulate"], label="simulate") as p: p.stage("build")``."""

    def __init__(self, stages: Sequence[str], *, label: str = "", stream: TextIO | None = None,
                 enabled: bool | None = None, refresh_s: float = 0.5):
        self.stages = list(stages)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(isatty and isatty()) if enabled is None else enabled
        self.refresh_s = refresh_s
        self.current: str | None = None
        self.history: list[str] = []  # stages entered, in order (also when the display is off)
        self._started = time.monotonic()
        self._eta: float | None = None
        self._bar = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> Stages:
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=len(self.stages), file=self.stream, leave=False, dynamic_ncols=True,
                             bar_format="{desc}")
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self._bar.close()

    def stage(self, name: str, eta_s: float | None = None) -> None:
        """Enter stage ``name``; ``eta_s``: the seconds it is expected to take, if known."""
        with self._lock:
            self.current = name
            self.history.append(name)
            self._started = time.monotonic()
            self._eta = eta_s
        self._draw()

    def text(self) -> str:
        """The line the display shows now."""
        if self.current is None:
            return self.label
        number = (self.stages.index(self.current) + 1) if self.current in self.stages else len(self.history)
        spent = time.monotonic() - self._started
        line = f"{self.label + ': ' if self.label else ''}[{number}/{len(self.stages)}] {self.current} {spent:.0f} s"
        if self._eta is not None:
            line += f", about {max(0.0, self._eta - spent):.0f} s left"
        return line

    def _draw(self) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.set_description_str(self.text())

    def _tick(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self._draw()
