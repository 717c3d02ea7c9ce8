"""The run folder's lock: one training at a time writes into a run folder.

`RunLock.acquire` takes an OS lock (`fcntl.flock`, exclusive, non-blocking) on `spsbench_run.lock` in the run
folder and writes its owner into it (pid, host, start time, command). The kernel drops an flock when its
process ends, however it ends, so a run that was killed (SIGKILL, OOM, a node lost) never blocks its own
`--resume` on the same host: the record it left behind is reported as stale and taken over.

A live owner on another host:
* where the filesystem's flock reaches across hosts (NFSv3 with lockd, NFSv4, Lustre mounted with `flock`,
  GPFS, BeeGFS), that owner holds the flock: refused, naming its host and pid;
* where flock is only local (Lustre `localflock`, NFS mounted `nolock`) or absent, the record decides: the
  owner renews the lock file's mtime every HEARTBEAT_S seconds, so a record from another host renewed within
  STALE_S seconds is refused as possibly alive, and an older one is taken over as stale (its host died or lost
  the job). Its age is measured against this host's clock (the file's mtime is the file server's); keep
  the hosts' clocks in sync, as clusters do.

Release (normal end, an exception, a refused run) empties the record and drops the flock. The file itself
stays: unlinking a lock file that another process may have opened lets two processes lock two files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spsbench.errors import TrainingError

LOCK_FILE = "spsbench_run.lock"
HEARTBEAT_S = 30.0
STALE_S = 300.0
# flock not available on this filesystem: the record alone decides
NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class RunLock:
    """An acquired run-folder lock; `release()` (or leaving `held`) gives it up."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="spsbench-run-lock", daemon=True)

    @classmethod
    def acquire(cls, folder: Path, on_note: Any = None) -> RunLock:
        """Lock `folder` (which must exist) or raise TrainingError naming the owner; `on_note(text)` hears
        about a stale record taken over."""
        path = Path(folder) / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            flocked = _flock(fd)
            if flocked is None:
                raise TrainingError(busy_message(folder, read_record(fd), None))
            stale = read_record(fd)
            if stale:
                _judge(folder, path, stale, flocked, on_note)
            _write_record(fd, owner_record())
        except BaseException:
            os.close(fd)
            raise
        lock = cls(path, fd)
        lock._beat.start()
        return lock

    def release(self) -> None:
        if self.fd < 0:
            return
        self._stop.set()
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)          # a clean end: no record left for the next owner to judge
        with contextlib.suppress(OSError):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = -1

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.fd)


@contextlib.contextmanager
def held(folder: Path, on_note: Any = None) -> Iterator[RunLock]:
    lock = RunLock.acquire(folder, on_note)
    try:
        yield lock
    finally:
        lock.release()


def _flock(fd: int) -> bool | None:
    """True: locked; False: this filesystem has no flock (the record decides); None: another process has it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno in NO_FLOCK:
            return False
        raise


def _judge(folder: Path, path: Path, stale: dict[str, Any], flocked: bool, on_note: Any) -> None:
    """A record left by an owner that did not release: refuse if that owner may be alive, else take over."""
    here = socket.gethostname()
    host, pid = stale.get("host"), stale.get("pid")
    if host == here:
        # On one host flock is authoritative: we hold it, so its owner is gone (unless there is no flock).
        alive = not flocked and isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid)
    else:
        age = time.time() - path.stat().st_mtime
        alive = age < STALE_S
    if alive:
        raise TrainingError(busy_message(folder, stale, None if host == here else time.time() - path.stat().st_mtime))
    if on_note is not None:
        on_note(f"{folder}: the previous training (pid {pid} on {host}, started {stale.get('started', '?')}) ended "
                "without releasing the run folder (killed); taking it over")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def busy_message(folder: Path, owner: dict[str, Any], age: float | None) -> str:
    """One line: who holds the run folder and what to do."""
    if not owner:
        who = "another process (it has not written its name yet)"
    else:
        who = (f"pid {owner.get('pid')} on host {owner.get('host')} since {owner.get('started', '?')} "
               f"(`{owner.get('command', '?')}`)")
    if age is None:
        return (f"run folder {folder} is in use by another training: {who}; wait for it to finish, or train into "
                "another --output-dir")
    return (f"run folder {folder} may be in use by another training: {who}, which renewed its lock {age:.0f} s "
            f"ago (this filesystem's locks may not reach across hosts); wait for it, or if it is gone, retry once "
            f"its lock is {STALE_S:.0f} s old, or delete {Path(folder) / LOCK_FILE}")


def owner_record() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv)[:300]}


def read_record(fd: int) -> dict[str, Any]:
    """The owner written into the lock file ({} when empty, released, or unreadable)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 65536)
        record = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_record(fd: int, record: dict[str, Any]) -> None:
    data = json.dumps(record).encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def lock_owner(folder: Path) -> dict[str, Any] | None:
    """Who holds `folder`'s lock now (None: nobody, as far as this host can tell), without taking it: the plan
    must not make a run that starts at the same moment fail (a probing flock would, for that moment)."""
    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        record, st = read_record(fd), os.fstat(fd)
    finally:
        os.close(fd)
    holder = flock_holder(st)
    if holder == os.getpid():
        return None
    if holder is not None:                   # held on this host (Linux: /proc/locks)
        return record or {"pid": holder, "host": socket.gethostname()}
    if not record:
        return None
    if record.get("host") == socket.gethostname():
        pid = record.get("pid")
        if holder is None and Path("/proc/locks").is_file():
            return None                      # its flock is gone: the owner ended (a stale record)
        return record if isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid) else None
    return record if time.time() - st.st_mtime < STALE_S else None


def flock_holder(st: os.stat_result) -> int | None:
    """The pid holding an flock on the file `st` describes, from Linux's /proc/locks (None: none, or unknown)."""
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (a waiting lock has "->" after the number)
        parts = [p for p in parts if p != "->"]
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == wanted and parts[4].isdigit():
            return int(parts[4])
    return None
