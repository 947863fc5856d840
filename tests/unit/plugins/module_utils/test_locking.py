# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from ansible_collections.persist.docker.plugins.module_utils import locking
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


@pytest.fixture(autouse=True)
def lock_dir(tmp_path, monkeypatch):
    path = tmp_path / "locks"
    monkeypatch.setenv(locking.LOCK_DIR_ENV, str(path))
    return path


def test_names_are_unique_for_names_that_read_alike():
    a = locking.lock_file_name("E1", "volume", "a/b")
    b = locking.lock_file_name("E1", "volume", "a_b")
    assert a != b
    assert a.startswith("volume-a_b-") and a.endswith(".lock")
    assert locking.lock_file_name("E2", "volume", "a/b") != a


def test_order_is_global_and_without_repeats():
    keys = [("E2", "volume", "x"), ("E1", "volume", "y"), ("E2", "volume", "x")]
    assert locking.lock_order(keys) == [("E1", "volume", "y"), ("E2", "volume", "x")]


def _hold(path, ready, seconds):
    os.environ[locking.LOCK_DIR_ENV] = path
    with locking.held("E", "volume", "data"):
        ready.set()
        time.sleep(seconds)


def test_second_run_waits_then_fails_naming_the_object_and_holder(lock_dir):
    ready = multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(str(lock_dir), ready, 5))
    holder.start()
    try:
        assert ready.wait(10)
        start = time.monotonic()
        with pytest.raises(DockerError) as exc, locking.held("E", "volume", "data", timeout=1):
            pass
        assert time.monotonic() - start >= 1
        assert "volume 'data' is busy" in str(exc.value)
        assert "pid %d" % holder.pid in str(exc.value)
    finally:
        holder.kill()
        holder.join()


def test_lock_goes_with_a_killed_holder(lock_dir):
    ready = multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(str(lock_dir), ready, 60))
    holder.start()
    assert ready.wait(10)
    holder.kill()
    holder.join()
    with locking.held("E", "volume", "data", timeout=0):
        pass


def test_released_after_the_block_and_other_objects_independent(lock_dir):
    with locking.held("E", "volume", "data"), locking.held("E", "volume", "other", timeout=0):
        pass
    with locking.held_all([("E", "volume", "data"), ("F", "volume", "data")], timeout=0):
        pass
    assert oct(os.stat(lock_dir).st_mode & 0o777) == "0o700"


def test_symlinked_lock_file_refused(lock_dir, tmp_path):
    lock_dir.mkdir(mode=0o700)
    target = tmp_path / "victim"
    target.write_text("keep")
    os.symlink(target, lock_dir / locking.lock_file_name("E", "volume", "data"))
    with pytest.raises(DockerError, match="cannot open the lock file"), locking.held("E", "volume", "data"):
        pass
    assert target.read_text() == "keep"
