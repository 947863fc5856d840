# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The files of scheduled jobs on the host: the state directory, the textfile directory, the files in them.

Each directory is opened without following a symlink (``fdtree.open_root``), and every file in it is read,
listed and written relative to that descriptor: a state file is read only when it is a regular file, and
written whole (``atomic.write_text_in``: a new temporary file, synced, renamed over the old one), so a reader,
node_exporter included, sees the old file or the new one, never a part, and never a file a symlink leads to.
What the files hold is decided in ``jobstate.py``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from ansible_collections.persist.docker.plugins.module_utils import atomic, fdtree, jobstate
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError, os_errors

STATE_MODE = 0o600
TEXTFILE_MODE = 0o644


def open_directory(path, what):
    """The directory at path (an fdtree.Dir), or None when nothing is there; DockerError when it is a symbolic
    link or not a directory. what names it in messages (``state_dir``)."""
    with os_errors("reading %s %s" % (what, path), "check the path and its permissions"):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            raise DockerError("%s %s is a symbolic link; refusing to follow it, give the real directory" % (what, path))
        if not stat.S_ISDIR(st.st_mode):
            raise DockerError("%s %s is not a directory; give a directory" % (what, path))
        return fdtree.open_root(path)


def make_directory(path, mode, what):
    """The directory at path, created with its missing parents and exactly mode when it does not exist."""
    with os_errors("creating %s %s" % (what, path), "check the path and its permissions"):
        directory = open_directory(path, what)
        if directory is not None:
            return directory
        os.makedirs(path, mode, exist_ok=True)
        directory = open_directory(path, what)
        os.fchmod(directory.fd, mode)
        return directory


def read_file(directory, name, where):
    """The text of the regular file name in directory, or None when there is none; DockerError when it is a
    symbolic link or not a regular file. where names it in messages."""
    with os_errors("reading %s" % where, "check the file and its permissions"):
        try:
            fd = fdtree.open_file(directory, name)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ESTALE, errno.ENXIO):
                raise DockerError("%s is a symbolic link or not a regular file; refusing to read it. Remove it, the "
                                  "job's next run writes it again" % where) from None
            raise
        with os.fdopen(fd, "rb") as f:
            return f.read().decode("utf-8", "replace")


def write_file(directory, name, text, mode, where):
    """Write the file name in directory whole, with mode (atomic.write_text_in)."""
    with os_errors("writing %s" % where, "check the directory and its permissions, and run the job again"):
        atomic.write_text_in(directory, name, text, mode)


def state_of(directory, path, job):
    """The state of job in the state directory (at path), or None when it has no state file."""
    where = os.path.join(path, jobstate.state_name(job))
    text = read_file(directory, jobstate.state_name(job), where)
    return None if text is None else jobstate.read_state(text, job, where)


def jobs_in(directory):
    """The names of the jobs that have a state file in directory (regular files ``<job>.json``), sorted."""
    found = []
    with os_errors("listing the state directory", "check the directory and its permissions"):
        for name in sorted(os.listdir(directory.fd)):
            job = name[:-len(".json")]
            if not name.endswith(".json") or not jobstate.JOB.fullmatch(job):
                continue
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                if stat.S_ISREG(fdtree.lstat(directory, name).st_mode):
                    found.append(job)
    return found
