# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Files written whole or not at all, private by default (backups, manifests, checksums, state).

A file is written to a temporary name beside it, synced, renamed over the
final name and its directory synced. The temporary file is created with
``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600 (or the mode asked for, set
exactly, whatever the umask), so a symlink planted at the temporary name is
never followed: it is refused with an error. A regular file left there by a
run that was killed is removed and created again.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat

from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

PRIVATE = 0o600
# Where the modules keep their state on a host when not below /var/lib/persist-docker (tests, unusual hosts); every
# run on one host must use the same directory.
STATE_DIR_ENV = "PERSIST_DOCKER_STATE_DIR"
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def open_new(path, mode=PRIVATE, flags=0, dir_fd=None):
    """A descriptor of a new file at path (opened write-only, plus flags), with exactly mode.

    DockerError when path is a symbolic link or something else than a regular
    file; a regular file there (a leftover) is replaced. With dir_fd, path is
    relative to that directory.
    """
    for _attempt in range(2):
        try:
            fd = os.open(path, _FLAGS | flags, PRIVATE, dir_fd=dir_fd)
        except FileExistsError:
            _remove_leftover(path, dir_fd)
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _refused(path, "a symbolic link") from None
            raise
        try:
            os.fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            raise
        return fd
    raise DockerError("%s appeared again while it was replaced; check what else writes there and run again" % path)


def _remove_leftover(path, dir_fd=None):
    st = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        raise _refused(path, "a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        raise _refused(path, "not a regular file")
    os.unlink(path, dir_fd=dir_fd)


def _refused(path, what):
    return DockerError("the temporary file %s is %s; refusing to write through it. Remove it, and check who put "
                       "it there" % (path, what))


def sync_directory(path):
    """fsync the directory at path, so that a rename in it lasts."""
    fd = os.open(path or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_file_system(fd):
    """Write what is not on disk yet of the file system that holds fd (syncfs(2), like ``sync -f``;
    os.sync() where the C library has no syncfs)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        os.sync()
        return
    if syncfs(ctypes.c_int(fd)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def write_text(path, text, mode=PRIVATE):
    """Write text (UTF-8) to path atomically, through path.tmp, with mode (0600 unless told)."""
    _write(path, text, mode, None)
    os.rename(path + ".tmp", path)
    sync_directory(os.path.dirname(path))


def write_text_in(directory, name, text, mode=PRIVATE):
    """write_text() of the file name in directory (an fdtree.Dir, e.g. a staging directory inside a volume):
    nothing is reached through a symlink, even if the directory's path changes meanwhile."""
    _write(name, text, mode, directory.fd)
    os.rename(name + ".tmp", name, src_dir_fd=directory.fd, dst_dir_fd=directory.fd)
    os.fsync(directory.fd)


def _write(path, text, mode, dir_fd):
    tmp = path + ".tmp"
    fd = open_new(tmp, mode, dir_fd=dir_fd)
    done = False
    try:
        data = memoryview(text.encode("utf-8", "surrogateescape"))
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
        done = True
    finally:
        os.close(fd)
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
