# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A staged tree kept in step with a source tree on this host, pass after pass (incremental copy, pre-copy).

:class:`TreeSync` holds what a run knows between its passes: the record of the
source entries each staged entry was made from (resync.py), and the digests of
the files it copied, on both sides, with the stat key they were read at. A pass
lists both trees, plans (resync.plan_delta) and carries the plan out through
directory descriptors (fdtree, tree_copy.TreeWriter): nothing outside the two
trees is ever read or written. The first pass may be *seeded* with the files of
an earlier copy (the destination's visible tree) by hard links: they stay as
they are for the containers until the verified staged tree replaces them
(transfer.py), and a changed file is always written as a new inode, never into
a linked one.

Passes before the last run while containers write to the source: an entry that
vanishes or changes while it is copied is left for the next pass. The last pass
(``final=True``), with the containers stopped, fails on any error.
"""

from __future__ import annotations

import errno
import functools
import os
import stat

from ansible_collections.persist.docker.plugins.module_utils import fdtree, manifest, resync, tree_copy
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manifest import BUFFER, STAGING

# What an entry changed or removed by the containers during a pass before the last raises.
_MOVING = (errno.ENOENT, errno.ESTALE, errno.EIO, errno.ENOTDIR, errno.ELOOP, errno.EEXIST)


def _open(root):
    """root opened: a path (fdtree.open_root), or a function that opens it (fdtree.open_below)."""
    return root() if callable(root) else fdtree.open_root(root)


def listing(root, ids=None, vanished_ok=False, lenient=False):
    """{path: resync.Meta} of the tree at root (see _open), the staging directory left out.

    lenient: an owner that ids cannot map (a directory this process made, not set yet) is listed as
    (-1, -1), which no source entry has: such an entry is made or set again.
    """
    if lenient and ids is not None:
        ids = functools.partial(_lenient, ids)
    out = {}
    for path, _parent, _name, st in fdtree.walk(_open(root), skip=(STAGING,), vanished_ok=vanished_ok):
        meta = resync.meta_of(st, ids)
        if meta is not None:
            out[path] = meta
    return out


def _lenient(ids, uid, gid):
    try:
        return ids(uid, gid)
    except DockerError:
        return -1, -1


def _hash_pair(src, dst):
    """The source's sha256 with its stat key (sha None when the file changed while it was read), and the
    copy's (inode, size, mtime_ns, sha256)."""
    before = manifest.stat_key(os.fstat(src))
    sha = manifest.hash_fd(src)
    after = manifest.stat_key(os.fstat(src))
    st = os.fstat(dst)
    return (sha if before == after else None, after), (st.st_ino, st.st_size, st.st_mtime_ns, manifest.hash_fd(dst))


def _remove(parent, name):
    """Remove name in parent (a Dir): a directory with its tree, anything else by unlinking it; no symlink followed."""
    st = fdtree.lstat(parent, name)
    if stat.S_ISDIR(st.st_mode):
        below = fdtree.open_dir(parent, name)
        for child in os.listdir(below.fd):
            _remove(below, child)
        os.rmdir(name, dir_fd=parent.fd)
    else:
        os.unlink(name, dir_fd=parent.fd)


class TreeSync:
    """Keeps the staged tree at ``staged`` (a directory that exists) in step with the source tree at ``source``
    (each a path or a function that opens it, see _open).

    src_ids maps the source's host ids to the containers' view; dst_ids the
    staged tree's host ids to it, to_host that view to the staged tree's host
    ids. checksum: hash what is copied (for the verification). seed_root: the
    visible tree of an earlier copy, linked into the first pass.
    src_known/seed_known: {path: (ino, size, mtime_ns, ctime_ns, sha256)} of
    files hashed before (manifest.from_directory's known).
    """

    def __init__(self, source, staged, *, src_ids=None, dst_ids=None, to_host=None, checksum=True,  # noqa: PLR0913
                 seed_root=None, src_known=None, seed_known=None):
        self.source = source
        self.staged = staged
        self.src_ids, self.dst_ids, self.to_host = src_ids, dst_ids, to_host
        self.checksum = checksum
        self.seed_root = seed_root
        self.seed_known = seed_known or {}
        self.record = {}
        self.src_known = dict(src_known or {})
        self.staged_known = {}
        self.buf = bytearray(BUFFER)
        self.seeded = 0

    def seed(self, source):
        """Link the files of the earlier copy that look like the source's into the (empty) staged tree."""
        visible = listing(self.seed_root, self.dst_ids, lenient=True)
        record = resync.seedable(source, visible)
        from_tree = fdtree.Tree(_open(self.seed_root))
        into = fdtree.Tree(_open(self.staged))
        made = set([""])
        for path in record:
            head = path.rpartition("/")[0]
            parts = head.split("/") if head else []
            for i in range(len(parts)):
                sub = "/".join(parts[:i + 1])
                if sub not in made:
                    parent, name = into.parent(sub)
                    os.mkdir(name, 0o700, dir_fd=parent.fd)
                    made.add(sub)
            src_parent, src_name = from_tree.parent(path)
            dst_parent, dst_name = into.parent(path)
            os.link(src_name, dst_name, src_dir_fd=src_parent.fd, dst_dir_fd=dst_parent.fd, follow_symlinks=False)
            self.record[path] = record[path]
            known = self.seed_known.get(path)
            if known is not None and tuple(known[:3]) == (visible[path].ino, visible[path].size,
                                                          visible[path].mtime_ns):
                self.staged_known[path] = tuple(known[:3]) + (known[-1],)
        self.seeded = len(record)

    def run_pass(self, final):  # noqa: PLR0912
        """One pass; returns the bytes of file content it copied (summed sizes of the files it made)."""
        source = listing(self.source, self.src_ids, vanished_ok=not final)
        if self.seed_root is not None:
            self.seed(source)
            self.seed_root = None
        staged = listing(self.staged, self.dst_ids, lenient=True)
        delta = resync.plan_delta(source, staged, self.record)
        into = fdtree.Tree(_open(self.staged))
        for path in delta.remove:
            parent, name = into.parent(path)
            _remove(parent, name)
            self.record.pop(path, None)
            self.staged_known.pop(path, None)
        for path in list(self.record):
            if path not in source:
                self.record.pop(path)
        writer = tree_copy.TreeWriter(into, self.to_host)
        src_tree = fdtree.Tree(_open(self.source))
        hashes = tree_copy.FdJobs(_hash_pair) if self.checksum else None
        made = set(delta.make)
        firsts = {}
        copied = 0
        try:
            for path, meta in source.items():
                if path not in made and meta.kind != "dir":
                    continue
                try:
                    copied += self._make(path, meta, path in made, src_tree, writer, hashes, firsts)
                except (OSError, DockerError) as exc:
                    if final or (isinstance(exc, OSError) and exc.errno not in _MOVING):
                        raise
                    self.record.pop(path, None)  # left for the next pass
            writer.finish()
            for path, ((sha, src_key), copy) in hashes.results() if hashes is not None else ():
                self.staged_known[path] = copy
                if sha is not None:
                    self.src_known[path] = src_key + (sha,)
                else:
                    self.src_known.pop(path, None)
        finally:
            if hashes is not None:
                hashes.close()
        return copied

    def _make(self, path, meta, make, src_tree, writer, hashes, firsts):  # noqa: PLR0913
        times = (meta.mtime_ns, meta.mtime_ns)
        if meta.kind == "dir":  # the root too: the staged tree's root gets the source root's owner and mode
            writer.directory(path, meta.mode, meta.uid, meta.gid, times, make=make and bool(path))
            return 0
        parent, name = src_tree.parent(path)
        self.staged_known.pop(path, None)
        if meta.kind == "file":
            if meta.nlink > 1:
                first = firsts.get(meta.ino)
                if first is not None:
                    writer.link(path, first, "file %r" % path)
                    self.record[path] = resync.key(meta)
                    return 0
            fin = fdtree.open_file(parent, name)
            try:
                st = os.fstat(fin)
                if st.st_ino != meta.ino:
                    raise OSError(errno.ESTALE, "replaced since it was listed", path)
                copy = writer.file(path, meta.mode, meta.uid, meta.gid, times,
                                   functools.partial(tree_copy.copy_content, fin, st=st, buf=self.buf, counter=[0]),
                                   keep=hashes is not None)
                if copy is not None:
                    hashes.add(path, os.dup(fin), copy)
            finally:
                os.close(fin)
            if meta.nlink > 1:
                firsts[meta.ino] = path
            self.record[path] = resync.key(meta)
            return meta.size
        if meta.kind == "symlink":
            writer.symlink(path, fdtree.readlink(parent, name), meta.uid, meta.gid, times)
        else:
            fmt = {"fifo": stat.S_IFIFO, "char": stat.S_IFCHR, "block": stat.S_IFBLK}[meta.kind]
            writer.node(path, fmt, meta.mode, meta.rdev, meta.uid, meta.gid, times)
        self.record[path] = resync.key(meta)
        return 0

    def forget(self, paths):
        """Make these paths anew in the next pass (they did not verify)."""
        for path in paths:
            self.record.pop(path, None)
            self.staged_known.pop(path, None)
            self.src_known.pop(path, None)

    def manifests(self):
        """(the source's manifest, the staged tree's manifest, the source's stat keys), the digests of files
        hashed before reused while their stat keys are unchanged."""
        stats = {}
        src = manifest.from_directory(_open(self.source), self.checksum, self.src_ids, known=self.src_known,
                                      stats=stats)
        staged = manifest.from_directory(_open(self.staged), self.checksum, self.dst_ids, known=self.staged_known)
        return src, staged, stats
