# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A volume's tree, read and changed from the host through directory descriptors, never through a symlink.

Containers can change a volume's tree while this process works on it: a
directory swapped for a symbolic link between two steps would lead a path
based walk (or a restored archive) onto the host's files, as root. Here every
directory is opened relative to its parent's descriptor with ``O_NOFOLLOW |
O_DIRECTORY``, starting from a root that is not a symlink itself, and every
entry is created, linked, read, changed and inspected relative to the
descriptor of its directory (``dir_fd=``, ``follow_symlinks=False``), so
nothing outside the tree is ever reached, whatever the tree holds or becomes.

* :func:`open_root`, :func:`open_dir`, :func:`open_file` -- open without following a symlink.
* :func:`walk` -- every entry below a root, sorted, with the descriptor of its directory.
* :class:`Tree` -- a tree being written: the directory of a relative path, walked component by component.
* :func:`chmod` -- a mode set on an entry by its descriptor (Linux has no lchmod).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
# O_NONBLOCK: a file swapped for a fifo does not block the open (regular files ignore it).
FILE_FLAGS = os.O_RDONLY | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
# What opening a symlink or a non-directory with DIR_FLAGS / FILE_FLAGS fails with.
_NOT_FOLLOWED = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)


class Dir:
    """An open directory of a tree: its descriptor and its path relative to the tree's root.

    The descriptor is closed when the last reference to the object goes, so a
    caller may keep the directory of an entry for as long as it needs it.
    """

    __slots__ = ("fd", "path")

    def __init__(self, fd, path):
        self.fd = fd
        self.path = path

    def __del__(self):
        with contextlib.suppress(OSError):
            os.close(self.fd)


def join(parent, name):
    """The relative path of name in the directory at relative path parent ('' is the root)."""
    return parent + "/" + name if parent else name


def open_root(path, follow=False):
    """The directory at path, opened without following a symlink there; DockerError if it is one.

    follow=True opens a root that is a symlink to a directory (for counting only, never for changes).
    """
    try:
        return Dir(os.open(path, DIR_FLAGS & ~_NOFOLLOW if follow else DIR_FLAGS), "")
    except OSError as exc:
        if exc.errno not in _NOT_FOLLOWED:
            raise
    if os.path.islink(path):
        raise DockerError("%s is a symbolic link; refusing to follow it (it could lead onto the host's files). "
                          "Give the real directory" % path)
    raise DockerError("%s is not a directory; give the directory of the volume or path" % path)


def open_dir(parent, name):
    """The directory name in parent (a Dir); OSError ELOOP or ENOTDIR when it is a symlink or not a directory."""
    return Dir(os.open(name, DIR_FLAGS, dir_fd=parent.fd), join(parent.path, name))


def open_below(path, rel):
    """The directory rel (relative path) below the directory at path, no symlink followed on the way."""
    current = open_root(path)
    for name in rel.split("/") if rel else ():
        try:
            current = open_dir(current, name)
        except OSError as exc:
            raise _not_a_directory(path, join(current.path, name), exc) from None
    return current


def open_file(parent, name, st=None):
    """A read-only descriptor of the regular file name in parent, opened without following a symlink.

    With st (its lstat), the file opened must still be that inode: a file
    swapped meanwhile raises OSError ESTALE instead of being read.
    """
    fd = os.open(name, FILE_FLAGS, dir_fd=parent.fd)
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (st is not None and (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino)):
            raise OSError(errno.ESTALE, "the file was replaced while it was read", join(parent.path, name))
    except BaseException:
        os.close(fd)
        raise
    return fd


def lstat(parent, name):
    return os.stat(name, dir_fd=parent.fd, follow_symlinks=False)


def readlink(parent, name):
    return os.readlink(name, dir_fd=parent.fd)


def chmod(parent, name, mode):
    """Set the mode of name in parent without following a symlink (a symlink itself is left alone).

    The entry is opened with O_PATH and changed through /proc/self/fd, which
    names that inode, as fchmodat(AT_SYMLINK_NOFOLLOW) does in newer C libraries.
    """
    fd = os.open(name, getattr(os, "O_PATH", os.O_RDONLY) | _NOFOLLOW | _CLOEXEC, dir_fd=parent.fd)
    try:
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            return
        os.chmod("/proc/self/fd/%d" % fd, mode)
    finally:
        os.close(fd)


def walk(root, skip=(), excluded=None, vanished_ok=False):
    """Yield (path, directory, name, lstat) for the root and every entry below it, each directory sorted.

    root is a path (opened with :func:`open_root`) or a Dir. directory is the
    Dir that holds the entry (for the root: the root itself, name '.'); pass
    it with name to the other functions here. Names in skip are left out at
    the root; so are the entries whose relative path excluded(path) is true
    (excludes.Excludes.matches), and a directory left out is not entered. A
    directory that is swapped for something else while the walk goes on is
    not entered: DockerError says so. With vanished_ok, entries removed
    while the walk goes on are left out instead of failing it (a tree that
    containers still change, read again later).
    """
    top = root if isinstance(root, Dir) else open_root(root)
    yield "", top, ".", os.fstat(top.fd)
    pending = [(top, "", None)]
    while pending:
        parent, rel, name = pending.pop()
        if name is None:
            current = parent
        else:
            try:
                current = open_dir(parent, name)
            except OSError as exc:
                if exc.errno in _NOT_FOLLOWED and not vanished_ok:
                    raise _changed(rel) from None
                if vanished_ok and exc.errno in _NOT_FOLLOWED + (errno.ENOENT,):
                    continue
                raise
        children = sorted(_children(current, rel, skip, vanished_ok))
        for child, st in children:
            path = join(rel, child)
            if excluded is not None and excluded(path):
                continue
            yield path, current, child, st
            if stat.S_ISDIR(st.st_mode):
                pending.append((current, path, child))


def _children(current, rel, skip, vanished_ok):
    """(name, lstat) of the entries of directory current (names in skip left out at the root)."""
    with os.scandir(current.fd) as it:
        for entry in it:
            if rel or entry.name not in skip:
                try:
                    yield entry.name, entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    if not vanished_ok:
                        raise


def _changed(path):
    return DockerError("%s changed while it was read (a directory became a symbolic link or a file); stop the "
                       "containers that write to the volume and run again; nothing outside the volume was read"
                       % path)


def _not_a_directory(top, path, exc):
    if exc.errno in _NOT_FOLLOWED:
        return DockerError("%s below %s is a symbolic link or not a directory; refusing to go through it"
                           % (path, top))
    return exc


class Tree:
    """A tree being written below a root directory (a Dir): directories found by relative path.

    Each path is walked from the root component by component, none of them
    followed if it is a symlink; the last few directories are kept open.
    """

    KEEP = 64

    def __init__(self, root):
        self.root = root
        self.cache = {}

    def dir(self, path):
        """The Dir at relative path ('' is the root); DockerError if a component is not a directory."""
        if not path:
            return self.root
        found = self.cache.get(path)
        if found is not None:
            return found
        head, _sep, name = path.rpartition("/")
        parent = self.dir(head)
        try:
            found = open_dir(parent, name)
        except OSError as exc:
            if exc.errno in _NOT_FOLLOWED:
                raise DockerError("%r is a symbolic link or not a directory; nothing is written below it" % path) \
                    from None
            raise
        if len(self.cache) >= self.KEEP:
            self.cache.pop(next(iter(self.cache)))
        self.cache[path] = found
        return found

    def parent(self, path):
        """(Dir of the directory that holds path, the last name of path)."""
        head, _sep, name = path.rpartition("/")
        return self.dir(head), name
