# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A volume's tree copied on this host, file by file, through directory descriptors.

* :func:`copy_tree` -- a tree copied into a new directory, with the source's manifest and both sides hashed.
* :class:`TreeWriter` -- the entries of a new tree made with their owner, mode and times (also used
  by the extraction of tar streams).
* :func:`copy_content`, :func:`data_segments`, :func:`copy_segment` -- file content copied by the kernel
  (``copy_file_range``, which may share blocks), through a buffer where it cannot, keeping holes.
* :class:`FdJobs` -- work on open descriptors (hashing the copies) run by two threads.
* :func:`new_directory` -- the root of a new tree, made in a parent that is not a symlink.
"""

from __future__ import annotations

import collections
import errno
import functools
import os
import stat
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.persist.docker.plugins.module_utils import fdtree, manifest
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manifest import BUFFER

try:
    _SEEK_DATA, _SEEK_HOLE = os.SEEK_DATA, os.SEEK_HOLE
except AttributeError:  # not Linux
    _SEEK_DATA = _SEEK_HOLE = None


# copy_file_range(2) copies inside the kernel (and may share blocks); cleared when the kernel or the
# file system cannot, after which the copy goes through a buffer.
_KERNEL_COPY = [hasattr(os, "copy_file_range")]
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM)


def data_segments(fd, size, sparse):
    """The (start, end) ranges of a file that hold data: all of it unless it is sparse."""
    if not sparse:
        return [(0, size)] if size else []
    segments = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, _SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            break
        end = min(os.lseek(fd, start, _SEEK_HOLE), size)
        segments.append((start, end))
        pos = end
    return segments


def copy_segment(fin, fout, start, end, view, counter, shift=0):
    """Copy bytes start..end of fin to the same offsets of fout, less shift."""
    pos = start
    while pos < end:
        if _KERNEL_COPY[0]:
            try:
                n = os.copy_file_range(fin, fout, min(end - pos, 1 << 30), pos, pos - shift)
            except OSError as exc:
                if exc.errno not in _NO_KERNEL_COPY:
                    raise
                _KERNEL_COPY[0] = False
                continue
        else:
            n = os.preadv(fin, [view[:min(len(view), end - pos)]], pos)
            done = 0
            while done < n:
                done += os.pwrite(fout, view[done:n], pos - shift + done)
        if not n:
            raise OSError(errno.EIO, "the file shrank while it was copied")
        pos += n
        counter[0] += n


def copy_content(fin, fout, st, *, buf, counter):
    """Copy the content of the regular file open as fin (lstat st) into the empty file open as fout,
    keeping the holes of a sparse file."""
    view = memoryview(buf)
    sparse = _SEEK_DATA is not None and st.st_blocks * 512 < st.st_size
    for start, end in data_segments(fin, st.st_size, sparse):
        copy_segment(fin, fout, start, end, view, counter)
    if sparse:
        os.ftruncate(fout, st.st_size)


def _same(uid, gid):
    return uid, gid


_NEW_FILE = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class TreeWriter:
    """Makes the entries of a new tree (an fdtree.Tree), owned as its engine's host needs.

    Entries are named by their path relative to the tree's root and made
    relative to the descriptor of their directory, which was reached without
    following any symlink: nothing is ever made, linked or changed outside the
    tree. ids maps the owners as the containers see them to host ids. A file
    gets its owner, mode and times through its open descriptor; a directory
    gets them last (its entries change its mtime), chmod always after chown,
    which clears setuid and setgid.
    """

    def __init__(self, tree, ids=None):
        self.tree = tree
        self.ids = ids or _same
        self.dirs = []

    def directory(self, path, mode, uid, gid, times, make=True):
        """A directory (made already unless make); its mode, owner and times are set by finish()."""
        if make:
            parent, name = self.tree.parent(path)
            os.mkdir(name, 0o700, dir_fd=parent.fd)
        self.dirs.append((path, self.ids(uid, gid), mode, times))

    def file(self, path, mode, uid, gid, times, fill, keep=False):
        """A regular file whose content fill(fd) writes; with keep, a new descriptor of it (the caller closes)."""
        parent, name = self.tree.parent(path)
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=parent.fd)
        try:
            fill(fd)
            os.fchown(fd, *self.ids(uid, gid))
            os.fchmod(fd, mode)
            os.utime(fd, ns=times)
            return os.dup(fd) if keep else None
        finally:
            os.close(fd)

    def symlink(self, path, target, uid, gid, times):
        parent, name = self.tree.parent(path)
        os.symlink(target, name, dir_fd=parent.fd)
        os.chown(name, *self.ids(uid, gid), dir_fd=parent.fd, follow_symlinks=False)
        os.utime(name, ns=times, dir_fd=parent.fd, follow_symlinks=False)

    def node(self, path, fmt, mode, rdev, uid, gid, times):
        """A fifo or a device (fmt: stat.S_IFIFO, S_IFCHR or S_IFBLK)."""
        parent, name = self.tree.parent(path)
        os.mknod(name, fmt | 0o600, rdev, dir_fd=parent.fd)
        os.chown(name, *self.ids(uid, gid), dir_fd=parent.fd, follow_symlinks=False)
        fdtree.chmod(parent, name, mode)
        os.utime(name, ns=times, dir_fd=parent.fd, follow_symlinks=False)

    def link(self, path, target, what):
        """A hard link at path to the regular file at target (both relative paths); what names it in errors."""
        first, first_name = self.tree.parent(target)
        if not stat.S_ISREG(fdtree.lstat(first, first_name).st_mode):
            raise DockerError("%s is a hard link to %r, which is not a file" % (what, target))
        parent, name = self.tree.parent(path)
        os.link(first_name, name, src_dir_fd=first.fd, dst_dir_fd=parent.fd, follow_symlinks=False)

    def finish(self):
        for path, (uid, gid), mode, times in reversed(self.dirs):
            fd = self.tree.dir(path).fd
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            os.utime(fd, ns=times)


class FdJobs:
    """work(*fds) run by two threads on open descriptors, at most LIMIT at a time; each job closes its fds."""

    LIMIT = 64

    def __init__(self, work):
        self.work = work
        self.pool = ThreadPoolExecutor(max_workers=2)
        self.jobs = collections.deque()
        self.done = []

    def add(self, tag, *fds):
        self.jobs.append((tag, fds, self.pool.submit(self._run, fds)))
        while len(self.jobs) > self.LIMIT:
            self._collect()

    def _run(self, fds):
        try:
            return self.work(*fds)
        finally:
            for fd in fds:
                os.close(fd)

    def _collect(self):
        tag, _fds, future = self.jobs.popleft()
        self.done.append((tag, future.result()))

    def results(self):
        """[(tag, work's result)] of every job, in the order they were added."""
        while self.jobs:
            self._collect()
        return self.done

    def close(self):
        for _tag, fds, future in self.jobs:
            if future.cancel():
                for fd in fds:
                    os.close(fd)
        self.pool.shutdown(wait=True)


def new_directory(path):
    """Make the directory path (mode 0700) in a parent that is not a symlink; return it open (fdtree.Dir)."""
    parent = fdtree.open_root(os.path.dirname(path) or ".")
    name = os.path.basename(path)
    os.mkdir(name, 0o700, dir_fd=parent.fd)
    return fdtree.open_dir(parent, name)


def _hash_pair(src, dst):
    """The sha256 of the source and of the copy, and the copy's (inode, size, mtime_ns)."""
    st = os.fstat(dst)
    return manifest.hash_fd(src), (st.st_ino, st.st_size, st.st_mtime_ns, manifest.hash_fd(dst))


def copy_tree(src_root, dst_root, checksum, *, src_ids=None, dst_ids=None, counter=None):  # noqa: PLR0912,PLR0915
    """Copy the tree at src_root (a path or an fdtree.Dir) to the new directory dst_root.

    Both trees are reached through directory descriptors, no symlink
    followed (fdtree). Returns (the source's manifest, hashes of the copies):
    the content of each file is hashed on both sides by two worker threads
    while the copy goes on, each side read back from its own file. The hashes
    of the copies are {path: (inode, size, mtime_ns, sha256)} for
    manifest.from_directory(known=). Owners are carried as the containers see
    them: src_ids maps the source engine's host ids to that view, dst_ids maps
    it to the destination's.
    """
    counter = counter if counter is not None else [0]
    buf = bytearray(BUFFER)
    entries = []
    links = {}
    writer = TreeWriter(fdtree.Tree(new_directory(dst_root)), dst_ids)
    hashes = FdJobs(_hash_pair) if checksum else None
    try:
        for path, parent, name, st in manifest.walk(src_root):
            mode = st.st_mode
            uid, gid = src_ids(st.st_uid, st.st_gid) if src_ids else (st.st_uid, st.st_gid)
            times = (st.st_atime_ns, st.st_mtime_ns)
            target = None
            copy = None
            if stat.S_ISDIR(mode):
                writer.directory(path, stat.S_IMODE(mode), uid, gid, times, make=bool(path))
            elif stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    first, group = links[key]
                    writer.link(path, first["path"], "file %r" % path)
                    entry = dict(first, path=path)
                    entry.pop("hardlink", None)
                    entries.append(entry)
                    group.append(path)
                    continue
                fin = fdtree.open_file(parent, name, st)
                try:
                    copy = writer.file(path, stat.S_IMODE(mode), uid, gid, times,
                                       functools.partial(copy_content, fin, st=st, buf=buf, counter=counter),
                                       keep=hashes is not None)
                    if copy is not None:
                        copy = (os.dup(fin), copy)
                finally:
                    os.close(fin)
            elif stat.S_ISLNK(mode):
                target = fdtree.readlink(parent, name)
                writer.symlink(path, target, uid, gid, times)
                target = os.fsdecode(target)
            elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                writer.node(path, stat.S_IFMT(mode), stat.S_IMODE(mode), st.st_rdev, uid, gid, times)
            else:
                continue
            entry = manifest.entry_from_stat(path, st, src_ids, None, target)
            entries.append(entry)
            if copy is not None:
                hashes.add(entry, *copy)
            if stat.S_ISREG(mode) and st.st_nlink > 1:
                links[(st.st_dev, st.st_ino)] = (entry, [path])
        writer.finish()
        copies = {}
        for entry, (src_sha, copied) in hashes.results() if hashes is not None else ():
            entry["sha256"] = src_sha
            copies[entry["path"]] = copied
    finally:
        if hashes is not None:
            hashes.close()
    by_path = dict((e["path"], e) for e in entries)
    for first, group in links.values():
        for path in group[1:]:
            if "sha256" in first:
                by_path[path]["sha256"] = first["sha256"]
    return manifest.link_groups(entries, [group for _e, group in links.values()]), copies
