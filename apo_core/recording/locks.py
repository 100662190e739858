"""One writer per robot: a collection holds an exclusive lock for its robot while it
records, so two collectors for one robot (which would play the same seeds and record the
same episodes twice) cannot run at once. The lock is an advisory ``flock`` on a file under
``<workdir>/locks/`` (:mod:`apo_core.workdir`): it goes with the process that holds it, a crash included. On a fleet
whose robots share the workdir over a network file system, the file system must honour
``flock`` (NFSv4 does)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from apo_core.errors import ApoError
from apo_core.workdir import robot_lock_path


@contextmanager
def robot_lock(workdir: Path, robot: str) -> Iterator[None]:
    """Hold ``robot``'s writer lock for the block; a second holder gets one clear error."""
    path = robot_lock_path(workdir, robot)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ApoError(f"robot {robot}: {holder} is already collecting for it ({path}); one writer per "
                           f"robot: wait for it, or collect as another robot (--robot)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
