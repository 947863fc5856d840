# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One lock for each object a run changes: a volume's data or a registry's state.

Two runs that change the same object (two relocations of one volume, a restore
and a backup, two garbage collections of one registry) must not interleave: the
second would resume the first one's live staging or remove its helper. Every
module that changes a volume's data or a registry's state holds :func:`held`
around that work.

The lock is an ``fcntl.flock`` on a file below :data:`LOCK_DIR` on the host
that runs the module, named by the engine's identity (:func:`engine_id`), the
kind of object and its name. The kernel releases it when the process that holds
it dies, so a killed run never leaves a stale lock behind. Runs of the
collection on the same managing host exclude each other; the file holds the
holder's pid so that the message of a run that gave up can name it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import time

from ansible_collections.persist.docker.plugins.module_utils.client import api_errors
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

LOCK_DIR = "/run/lock/persist-docker"
# Tests and unusual hosts may point the locks elsewhere; every run on one host must use the same directory.
LOCK_DIR_ENV = "PERSIST_DOCKER_LOCK_DIR"
DEFAULT_TIMEOUT = 300
_POLL = 0.2
# The option every module that takes a lock adds to its spec (doc fragment persist.docker.lock).
LOCK_TIMEOUT_SPEC = dict(lock_timeout=dict(type="int", default=DEFAULT_TIMEOUT))


def lock_file_name(engine_id, kind, name):
    """The lock file's name for object ``name`` of ``kind`` on the engine ``engine_id`` (pure).

    Readable where the name allows it, and always unique: a digest of the exact triple ends it,
    so names that differ only in characters that are replaced still get files of their own.
    """
    key = "%s\0%s\0%s" % (engine_id, kind, name)
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", "%s-%s" % (kind, name))[:80]
    return "%s-%s.lock" % (readable, hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16])


def lock_order(keys):
    """The (engine_id, kind, name) keys in the order they are taken, without repeats (pure).

    Runs that lock two objects (a relocation's source and destination) take them in one global
    order, so two such runs never wait for each other crosswise.
    """
    return sorted(set(keys))


def _directory():
    path = os.environ.get(LOCK_DIR_ENV) or LOCK_DIR
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise DockerError("cannot create the lock directory %s (%s); run the module as root or set %s to a "
                          "writable directory" % (path, exc.strerror or exc, LOCK_DIR_ENV)) from None
    st = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != os.geteuid():
        raise DockerError("the lock directory %s is not a directory owned by this user (or it is a symlink); "
                          "remove it and run again" % path)
    return path


def _holder(fd):
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return " (pid %s)" % text if text.isdigit() else ""


@contextlib.contextmanager
def held(engine_id, kind, name, timeout=DEFAULT_TIMEOUT, subject=None):
    """Hold the lock of ``kind`` ``name`` on engine ``engine_id`` for the block.

    Waits up to ``timeout`` seconds for another run to finish, then raises DockerError naming
    the object and the run that holds it.
    """
    subject = subject or "%s '%s'" % (kind, name)
    path = os.path.join(_directory(), lock_file_name(engine_id, kind, name))
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise DockerError("cannot open the lock file %s for %s (%s)" % (path, subject, exc.strerror or exc)) from None
    try:
        deadline = time.monotonic() + max(0, timeout)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    raise DockerError("cannot lock %s for %s (%s)" % (path, subject, exc.strerror)) from None
                if time.monotonic() >= deadline:
                    raise DockerError(
                        "%s is busy: another persist.docker run%s has changed it for more than %s seconds; "
                        "nothing was done. Wait for that run to finish, or raise lock_timeout"
                        % (subject, _holder(fd), timeout)) from None
                time.sleep(_POLL)
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"%d\n" % os.getpid(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the flock


@contextlib.contextmanager
def held_all(keys, timeout=DEFAULT_TIMEOUT):
    """Hold the locks of several (engine_id, kind, name) keys, taken in :func:`lock_order`."""
    with contextlib.ExitStack() as stack:
        for engine_id, kind, name in lock_order(keys):
            stack.enter_context(held(engine_id, kind, name, timeout))
        yield


def engine_id(api, subject="the Docker daemon"):
    """The engine's identity, the key of its locks and records: its ID, host name and root directory.

    The ID alone is not enough: engines that share /etc/docker/key.json (two engines on one host,
    cloned machines) report the same ID, and one engine's lock or record must never be another's.
    """
    with api_errors(subject):
        info = api.info()
    return "%s %s %s" % (info.get("ID") or "unknown", info.get("Name") or "", info.get("DockerRootDir") or "")
