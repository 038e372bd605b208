import json
import os
import socket
import subprocess
import sys

import pytest

from cpc.errors import UserError
from cpc.train.runlock import RunLock, holder_gone, this_process


def dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


def test_a_holder_is_gone_only_when_this_host_can_tell():
    me = this_process()
    assert not holder_gone(me)  # alive
    assert holder_gone({**me, "pid": dead_pid()})
    if me["pid_start"] is not None:  # Linux: the pid now names another process than the one that wrote the lock
        assert holder_gone({**me, "pid_start": me["pid_start"] - 1})
    if me["boot"] is not None:  # written before the last reboot
        assert holder_gone({**me, "boot": "another-boot"})
    assert not holder_gone({**me, "host": "node-17", "pid": dead_pid()})  # another host: never decided here
    assert not holder_gone({"host": "node-17"})


def test_one_holder_at_a_time_and_release_leaves_anothers_lock_alone(tmp_path):
    first, second = RunLock(tmp_path / "run"), RunLock(tmp_path / "run")
    first.acquire()
    written = json.loads(first.path.read_text())
    assert (written["host"], written["pid"]) == (socket.gethostname(), os.getpid())
    with pytest.raises(UserError, match=rf"is in use by a live run \(host {socket.gethostname()}, pid {os.getpid()}, "):
        second.acquire()
    second.release()  # never acquired: nothing happens
    assert first.path.exists()
    first.release()
    first.release()
    assert not first.path.exists()
    second.acquire()
    second.path.write_text(json.dumps({"host": "node-17", "pid": 1, "started": "then"}))  # replaced by someone else
    second.release()
    assert second.path.exists()  # not this process's lock any more: left alone


def test_an_unreadable_lock_is_named_not_broken(tmp_path):
    lock = RunLock(tmp_path)
    lock.path.write_text("garbage")
    with pytest.raises(UserError, match=rf"run folder {tmp_path} is locked by {lock.path}, which does not say who "
                                        rf"holds it \('garbage'\): if no run writes there, delete {lock.path}"):
        lock.acquire()
    assert lock.path.read_text() == "garbage"
