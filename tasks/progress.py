"""Progress of a long step, for the person at the terminal and for the Prefect UI (the
flows' tasks and the `apo` commands alike).

On a terminal: a tqdm bar on stderr. Elsewhere (CI logs, a worker's log file): one line
each time another tenth of the work is done, never a redraw. Under a flow or task run: the
same lines in the run's log (the UI's Logs tab), and a Prefect progress artifact updated
as the step goes, with the running figures. A step running on a Ray worker (whose output
is not forwarded) also keeps its progress in a small file the driver shows
(:class:`ProgressFile`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging import get_run_logger
from tqdm import tqdm

# The Prefect progress artifact is one API call per update: a training step takes ~20 ms
# here, and updating the artifact at every step made an update of 1030 steps ~20 s slower.
ARTIFACT_EVERY_SECONDS = 2.0


def in_run() -> bool:
    """Whether this code runs inside a Prefect flow or task run."""
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def log(message: str) -> None:
    """A line for the run's log in the Prefect UI (nothing outside a run)."""
    if in_run():
        get_run_logger().info(message)


def say(message: str) -> None:
    """A progress line: on the terminal, and in the run's log (the UI's Logs tab)."""
    print(message, flush=True)
    log(message)


class StepProgress:
    def __init__(self, label: str, total: int | None, unit: str, *, elapsed: float = 0.0):
        self.label, self.total, self.unit = label, total, unit
        self.started = time.monotonic() - elapsed  # (shown for a step that began elsewhere)
        self._bar = tqdm(total=total, desc=label, unit=unit, file=sys.stderr, leave=False) if sys.stderr.isatty() else None
        self._last_tenth = 0
        self._artifact = create_progress_artifact(0.0, description=label) if in_run() else None
        self._artifact_updated = time.monotonic()

    def update(self, done: int, total: int | None = None, **figures: str) -> None:
        """``done`` of ``total`` units finished; ``figures`` are shown beside the count."""
        self.total = total or self.total
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.n = done
            self._bar.set_postfix(figures, refresh=True)
        tenth = int(10 * done / self.total) if self.total else 0
        shown = "".join(f", {name} {value}" for name, value in figures.items())
        if tenth > self._last_tenth:
            self._last_tenth = tenth
            elapsed = time.monotonic() - self.started
            eta = elapsed * (self.total - done) / done if done else 0.0
            line = f"{self.label}: {done}/{self.total} {self.unit}{shown}, {elapsed:.0f}s elapsed, ETA {eta:.0f}s"
            if self._bar is None:
                print(f"  {line}", flush=True)
            log(line)
        if self._artifact is not None and self.total:
            now = time.monotonic()
            if now - self._artifact_updated >= ARTIFACT_EVERY_SECONDS or done >= self.total:
                self._artifact_updated = now
                update_progress_artifact(self._artifact, 100.0 * done / self.total,
                                         description=f"{self.label}: {done}/{self.total} {self.unit}{shown}")

    def note(self, message: str) -> None:
        """A line for the person at the terminal (above the bar, if there is one), on stderr."""
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class ProgressFile:
    """A step's progress (units done, total, figures, notices) in a JSON file, rewritten
    atomically at most every ``every`` seconds, so that another process can show it."""

    def __init__(self, path: Path, every: float = 1.0):
        self.path, self.every = Path(path), every
        self.started = time.monotonic()
        self._written = -every
        self._state: dict = {"done": 0, "total": None, "figures": {}, "notices": [], "elapsed": 0.0}
        self._write()  # (over whatever an earlier, interrupted run of the step left)

    def update(self, done: int, total: int | None = None, **figures: str) -> None:
        self._state.update(done=done, total=total or self._state["total"], figures=figures)
        if time.monotonic() - self._written >= self.every or done == self._state["total"]:
            self._write()

    def note(self, message: str) -> None:
        self._state["notices"].append(message)
        self._write()

    def _write(self) -> None:
        self._written = time.monotonic()
        self._state["elapsed"] = self._written - self.started
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(self._state))
        os.replace(partial, self.path)

    @staticmethod
    def read(path: Path) -> dict | None:
        """The last progress written to ``path``, or None before the step's first write."""
        try:
            return json.loads(Path(path).read_text())
        except FileNotFoundError:
            return None


class RemoteProgress:
    """Shows on this terminal the progress a step on another process keeps in a
    :class:`ProgressFile`: call :meth:`poll` now and then, :meth:`close` at the end."""

    def __init__(self, label: str, path: Path, unit: str):
        self.label, self.path, self.unit = label, Path(path), unit
        self._shown: StepProgress | None = None
        self._notices = 0

    def poll(self) -> None:
        state = ProgressFile.read(self.path)
        if state is None:
            return
        if self._shown is None:
            self._shown = StepProgress(self.label, state["total"], self.unit, elapsed=state["elapsed"])
        for notice in state["notices"][self._notices:]:
            self._shown.note(f"{self.label}: {notice}")
        self._notices = len(state["notices"])
        self._shown.update(state["done"], state["total"], **state["figures"])

    def close(self) -> None:
        self.poll()  # the last figures (a step that finished between two polls)
        if self._shown is not None:
            self._shown.close()
