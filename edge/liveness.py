"""Whether an agent is running: an exclusive lock on a file in its data directory.

The running agent holds an `fcntl.flock` on `agent.lock` (beside its spool) for as long as its
process lives, and writes its pid into the file. The kernel releases the lock when the process
ends however it ends — a clean stop, a crash, `kill -9` — so a status reader that can take the
lock knows no agent holds it, whatever the status file last said. The same lock keeps a second
agent off the same spool.
"""

from __future__ import annotations

import errno
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from edge.errors import EdgeError
from tracehub.errors import ConflictError

__all__ = ["AgentLock", "AlreadyRunningError", "Liveness", "probe"]


class AlreadyRunningError(EdgeError, ConflictError):
    """Another agent process holds this data directory's lock."""


@dataclass(frozen=True)
class Liveness:
    """What the lock file says: held (by a live process) and by which pid."""

    running: bool
    pid: int | None


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


class AgentLock:
    """The running agent's hold on ``path``; released by `release()` or by the process ending."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                pid = _read_pid(path)
                raise AlreadyRunningError(
                    f"another agent (pid {pid}) is running on {path.parent}"
                ) from None
            raise
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


def probe(path: Path) -> Liveness:
    """Whether an agent holds ``path`` now (without disturbing it)."""
    pid = _read_pid(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return Liveness(False, pid)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        # Held. The pid check covers a lock inherited by a stray child of a dead agent.
        return Liveness(pid is None or _pid_alive(pid), pid)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return Liveness(False, pid)
    finally:
        os.close(fd)
