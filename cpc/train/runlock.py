"""One writer per run folder: `train.out/run.lock`, held for the life of a run (by rank 0 under torchrun).

The lock file is created atomically (O_CREAT | O_EXCL, atomic on local disks and on NFS v3 and later, so it works
across hosts sharing a file system) and names its holder: host, pid, start time, and on Linux the boot id and the
process's start tick. A lock whose holder is gone on this host (the pid is dead, or now another process, or the
machine rebooted since) is taken over with a one-line notice; a lock from another host is never broken
automatically, since its writer cannot be checked from here: the refusal names host and pid and how to remove it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cpc.checkpoint import process_alive
from cpc.errors import UserError

LOCK_NAME = "run.lock"


def boot_id() -> str | None:
    """This machine's boot id (Linux): processes of an earlier boot are all gone."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (Linux), which tells a reused pid from the original process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])  # field 22; the name before ")" may hold spaces


def this_process() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "boot": boot_id(),
            "pid_start": process_start(os.getpid()),
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}


def holder_gone(holder: dict[str, Any]) -> bool:
    """Whether the process that wrote `holder` has certainly ended; only decidable for this host's processes."""
    me = this_process()
    if holder.get("host") != me["host"]:
        return False
    if holder.get("boot") and me["boot"] and holder["boot"] != me["boot"]:
        return True  # written before this machine last booted
    pid = holder.get("pid")
    if not isinstance(pid, int) or not process_alive(pid):
        return True
    started = process_start(pid)
    return holder.get("pid_start") is not None and started is not None and started != holder["pid_start"]


class RunLock:
    """`acquire()` makes this process the folder's one writer or raises UserError naming the holder;
    `release()` (idempotent) removes the lock if it is still this process's."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # create; or find a dead holder, remove its lock and create again
            if self.create():
                self.held = True
                return
            text, holder = self.read()
            if text is None:  # released meanwhile
                continue
            if holder is None:
                raise UserError(f"run folder {self.path.parent} is locked by {self.path}, which does not say who "
                                f"holds it ({text[:60]!r}): if no run writes there, delete {self.path}")
            if not holder_gone(holder):
                raise UserError(self.refusal(holder))
            if self.remove_stale(text):
                print(f"took over {self.path} from a run that is gone ({describe(holder)})")
        raise UserError(f"run folder {self.path.parent}: another run took {self.path} at the same time; "
                        "start one run per folder")

    def create(self) -> bool:
        try:
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w") as stream:
            stream.write(json.dumps(this_process()) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        return True

    def read(self) -> tuple[str | None, dict[str, Any] | None]:
        """The lock's text (None: no lock) and holder (None: unreadable); an empty file may be a lock being
        written this instant: read again."""
        text = ""
        for _ in range(20):
            try:
                text = self.path.read_text(errors="replace")
            except FileNotFoundError:
                return None, None
            if text.strip():
                break
            time.sleep(0.05)
        try:
            holder = json.loads(text)
        except ValueError:
            return text, None
        return text, holder if isinstance(holder, dict) else None

    def remove_stale(self, text: str) -> bool:
        """Remove the lock if it still holds `text`. Moved aside first, so two runs finding the same dead holder
        cannot delete each other's new lock: one that is not the dead holder's goes back in place."""
        aside = self.path.with_name(f"{LOCK_NAME}.stale-{socket.gethostname()}-{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return False
        dead = aside.read_text(errors="replace") == text
        if not dead:  # a live run's new lock: put it back
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
        aside.unlink(missing_ok=True)
        return dead

    def refusal(self, holder: dict[str, Any]) -> str:
        folder = self.path.parent
        if holder.get("host") == socket.gethostname():
            return (f"run folder {folder} is in use by a live run ({describe(holder)}): wait for it to end, stop it "
                    f"(kill -TERM {holder['pid']} saves a checkpoint), or choose another train.out")
        return (f"run folder {folder} is in use by a run on another host ({describe(holder)}), which cannot be "
                f"checked from here: if that run is dead, delete {self.path} and start again")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        _, holder = self.read()
        me = this_process()
        if holder and (holder.get("host"), holder.get("pid")) == (me["host"], me["pid"]):
            self.path.unlink(missing_ok=True)


def describe(holder: dict[str, Any]) -> str:
    return f"host {holder.get('host')}, pid {holder.get('pid')}, started {holder.get('started')}"
