"""Progress of a long step, for the person at the terminal and for the Prefect UI (the
flows' tasks and the `apo` commands alike).

On a terminal: a tqdm bar on stderr. Elsewhere (CI logs, a worker's log file): one line
each time another tenth of the work is done, never a redraw. Under a flow run: a Prefect
progress artifact updated as the step goes.
"""

from __future__ import annotations

import sys
import time

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import TaskRunContext
from tqdm import tqdm


class StepProgress:
    def __init__(self, label: str, total: int | None, unit: str):
        self.label, self.total, self.unit = label, total, unit
        self.started = time.monotonic()
        self._bar = tqdm(total=total, desc=label, unit=unit, file=sys.stderr, leave=False) if sys.stderr.isatty() else None
        self._last_tenth = 0
        self._artifact = create_progress_artifact(0.0, description=label) if TaskRunContext.get() else None

    def update(self, done: int, total: int | None = None, **figures: str) -> None:
        """``done`` of ``total`` units finished; ``figures`` are shown beside the count."""
        self.total = total or self.total
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.n = done
            self._bar.set_postfix(figures, refresh=True)
        tenth = int(10 * done / self.total) if self.total else 0
        if self._bar is None and tenth > self._last_tenth:
            self._last_tenth = tenth
            elapsed = time.monotonic() - self.started
            eta = elapsed * (self.total - done) / done if done else 0.0
            shown = "".join(f", {name} {value}" for name, value in figures.items())
            print(f"  {self.label}: {done}/{self.total} {self.unit}{shown}, {elapsed:.0f}s elapsed, ETA {eta:.0f}s",
                  flush=True)
        if self._artifact is not None and self.total:
            update_progress_artifact(self._artifact, 100.0 * done / self.total)

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
