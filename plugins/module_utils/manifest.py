# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Entry manifests of a volume's tree and their canonical digest.

A manifest lists every entry below a volume's root: its relative path, type,
permission bits (setuid, setgid and sticky included), numeric uid and gid as a
container sees them, size, mtime in whole seconds, and the sha256 of a regular
file's content or the target of a symbolic link.  Hard links are recorded as a
group: every member carries the same content, and all but the first path (in
sorted order) name that first path in ``hardlink``.  The root itself is the
entry with the empty path; its mtime is left out because every change of its
children moves it.

The same tree gives the same manifest whether it is walked on disk
(:func:`from_directory`) or read from a tar stream (:class:`TarManifest`),
so the two sides of a copy can be compared whatever way each is reached.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import json
import os
import stat
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.persist.docker.plugins.module_utils import fdtree

# The name, at a volume's root, of the directory a transfer stages its data in.
# It is never part of a manifest.
STAGING = ".persist-docker-staging"

LEVELS = ("checksum", "size", "none")
BUFFER = 1 << 20

_TAR_TYPES = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.FIFOTYPE: "fifo",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
}


def make_entry(path, kind, mode, uid, gid, *, size=0, mtime=None, sha256=None, target=None, rdev=None):
    """One manifest entry as a dict with only the fields that apply to its kind."""
    entry = {"path": path, "type": kind, "mode": mode & 0o7777, "uid": uid, "gid": gid}
    if path != "":
        entry["mtime"] = int(mtime)
    if kind == "file":
        entry["size"] = size
        if sha256 is not None:
            entry["sha256"] = sha256
    elif kind == "symlink":
        entry["target"] = target
    elif kind in ("char", "block"):
        entry["rdev"] = rdev
    return entry


def sort_key(path):
    return path.encode("utf-8", "surrogateescape")


def link_groups(entries, groups):
    """Mark hard-link groups: groups is an iterable of path lists of one inode each."""
    by_path = {e["path"]: e for e in entries}
    for group in groups:
        if len(group) < 2:
            continue
        members = sorted(group, key=sort_key)
        for path in members[1:]:
            by_path[path]["hardlink"] = members[0]
    return entries


def canonical(entries):
    """The entries sorted by path, as the digest sees them."""
    return sorted(entries, key=lambda e: sort_key(e["path"]))


def at_level(entries, level):
    """The entries as compared at a verify level: V(size) drops the content digests."""
    if level == "checksum":
        return entries
    return [{k: v for k, v in e.items() if k != "sha256"} for e in entries]


_ENTRY_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _entry_encoder():
    """A function giving an entry's JSON line as _ENTRY_JSON.encode does: CPython's C encoder made once (encode()
    makes one per call, most of its cost for a small dict), or encode() itself where that is not available."""
    make = getattr(json.encoder, "c_make_encoder", None)
    try:
        c_encode = make(None, _ENTRY_JSON.default, json.encoder.encode_basestring_ascii, None, ":", ",", True,
                        False, True)

        def encode(entry):
            return "".join(c_encode(entry, 0))

        sample = {"path": "d/\udcff n\u00fc\n", "type": "file", "size": 1, "mode": "0644", "hardlink": None,
                  "sha256": "0" * 64}
        if encode(sample) == _ENTRY_JSON.encode(sample):
            return encode
    except Exception:  # noqa: BLE001 -- no C encoder, or another signature: the plain way
        pass
    return _ENTRY_JSON.encode


_encode_entry = _entry_encoder()


def digest(entries):
    """A sha256 over the canonical manifest (one JSON line per entry): equal trees have equal digests."""
    text = "".join(_encode_entry(entry) + "\n" for entry in canonical(entries))
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def summary(entries):
    """bytes (regular file content, hard links counted once) and files (entries except the root)."""
    total = sum(e.get("size", 0) for e in entries if e["type"] == "file" and "hardlink" not in e)
    return {"bytes": total, "files": sum(1 for e in entries if e["path"] != "")}


def differences(expected, actual, limit=5):
    """Human-readable differences between two manifests, at most limit of them."""
    exp = {e["path"]: e for e in expected}
    act = {e["path"]: e for e in actual}
    out = []
    for path in sorted(set(exp) | set(act), key=sort_key):
        shown = path or "/"
        if path not in act:
            out.append("%s: missing" % shown)
        elif path not in exp:
            out.append("%s: unexpected" % shown)
        elif exp[path] != act[path]:
            fields = sorted(k for k in set(exp[path]) | set(act[path]) if exp[path].get(k) != act[path].get(k))
            out.append("%s: %s differ" % (shown, ", ".join(fields)))
        if len(out) >= limit:
            break
    return out


def is_empty(entries):
    """True when the tree holds nothing but its root."""
    return all(e["path"] == "" for e in entries)


def hash_file(path, buf=None, stop=None):
    """The sha256 of the file at path; None if stop (a threading.Event) is set meanwhile."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return hash_fd(fd, buf, stop)
    finally:
        os.close(fd)


_THREAD = threading.local()


def thread_buffer():
    """A bytearray of BUFFER bytes of the calling thread's own, reused by each call on that thread: a new
    one per file costs more than hashing a small file (it is zeroed, and its pages mapped and unmapped)."""
    buf = getattr(_THREAD, "buf", None)
    if buf is None:
        buf = _THREAD.buf = bytearray(BUFFER)
    return buf


def hash_fd(fd, buf=None, stop=None):
    """The sha256 of the content of the open file fd, read from its start (the file position is left alone).
    buf: the buffer to read into, else the thread's own (thread_buffer())."""
    h = hashlib.sha256()
    buf = buf or thread_buffer()
    view = memoryview(buf)
    pos = 0
    while True:
        if stop is not None and stop.is_set():
            return None
        n = os.preadv(fd, [buf], pos)
        if not n:
            break
        h.update(view[:n])
        pos += n
    return h.hexdigest()


def hash_and_close(fd):
    """hash_fd(fd), closing fd after."""
    try:
        return hash_fd(fd)
    finally:
        os.close(fd)


def entry_from_stat(path, st, ids=None, sha256=None, target=None):
    """The entry of a path from its lstat result; ids maps host (uid, gid) to the containers' view."""
    fmt = stat.S_IFMT(st.st_mode)
    kind = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo",
            stat.S_IFCHR: "char", stat.S_IFBLK: "block"}.get(fmt)
    if kind is None:
        return None
    rdev = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)) if kind in ("char", "block") else None
    uid, gid = ids(st.st_uid, st.st_gid) if ids else (st.st_uid, st.st_gid)
    return make_entry(path, kind, st.st_mode, uid, gid, size=st.st_size if kind == "file" else 0,
                      mtime=st.st_mtime, sha256=sha256, target=target, rdev=rdev)


def walk(root, exclude=None, vanished_ok=False):
    """Yield (relative path, directory, name, lstat) for root and every entry below it (fdtree.walk).

    Skips the staging directory at the root and what exclude (an excludes.Excludes, or None) leaves
    out; sockets are returned too, callers skip them. vanished_ok: see fdtree.walk.
    """
    return fdtree.walk(root, skip=(STAGING,), excluded=exclude.matches if exclude else None, vanished_ok=vanished_ok)


# What reading an entry raises when it was removed or replaced after the walk listed it.
_VANISHED = (errno.ENOENT, errno.ESTALE, errno.ELOOP, errno.ENOTDIR, errno.EINVAL)


def read_ahead(walked, files=64, size=32 << 20):
    """Yield walk()'s (path, directory, name, lstat) with an fd for each regular file to read, opened ahead.

    The files among the next few entries (up to files of them and size bytes)
    are opened and the kernel is asked to read them in (POSIX_FADV_WILLNEED),
    so many reads are in flight while the caller works through the current
    one: a volume of many small files that is not in the page cache is read
    at the speed of the disk, not one file's latency at a time. The caller
    closes each fd it gets. fd is None for other entries, for a second link
    of a hardlinked file, and when the file could not be opened here (the
    caller's own open then reports why).
    """
    window = collections.deque()
    ahead = 0
    seen = set()
    try:
        for path, parent, name, st in walked:
            fd = None
            if stat.S_ISREG(st.st_mode) and st.st_size and (st.st_nlink == 1 or (st.st_dev, st.st_ino) not in seen):
                if st.st_nlink > 1:
                    seen.add((st.st_dev, st.st_ino))
                fd = _open_ahead(parent, name, st, min(st.st_size, size))
            window.append((path, parent, name, st, fd, st.st_size if fd is not None else 0))
            ahead += window[-1][5]
            while len(window) > files or ahead > size:
                item = window.popleft()
                ahead -= item[5]
                yield item[:5]
        while window:
            yield window.popleft()[:5]
    finally:
        for item in window:
            if item[4] is not None:
                os.close(item[4])


def _open_ahead(parent, name, st, length):
    try:
        fd = fdtree.open_file(parent, name, st)
    except OSError:
        return None
    with contextlib.suppress(AttributeError, OSError):
        os.posix_fadvise(fd, 0, length, os.POSIX_FADV_WILLNEED)
    return fd


# Files hashed by from_directory's threads at most this many at a time (each holds an open descriptor).
IN_FLIGHT = 64


def stat_key(st):
    """What a file's cached digest is kept for: inode, size, mtime and ctime in ns (a change of content
    that keeps size and mtime still moves the ctime)."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read_entry(path, parent, name, st, ids, cached):  # noqa: PLR0913
    """(the manifest entry of a walked entry or None, an fd of a regular file to hash or None, its known sha256 or
    None). cached: False (no content digest wanted), True (hash it), or what from_directory's known holds for it."""
    target = os.fsdecode(fdtree.readlink(parent, name)) if stat.S_ISLNK(st.st_mode) else None
    entry = entry_from_stat(path, st, ids, None, target)
    if entry is None or entry["type"] != "file" or cached is False:
        return entry, None, None
    if cached is not True and tuple(cached[:-1]) == stat_key(st)[:len(cached) - 1]:
        return entry, None, cached[-1]
    return entry, fdtree.open_file(parent, name, st), None


def _read_entries(walked, ids, checksum, known, vanished_ok):
    """(path, lstat, entry, fd, sha256) of each entry walked (_read_entry), sockets left out; with vanished_ok, so
    are the entries removed or replaced since the walk listed them."""
    for path, parent, name, st in walked:
        try:
            entry, fd, sha256 = _read_entry(path, parent, name, st, ids, checksum and (known or {}).get(path, True))
        except OSError as exc:
            if vanished_ok and exc.errno in _VANISHED:
                continue
            raise
        if entry is not None:
            yield path, st, entry, fd, sha256


def from_directory(root, checksum=True, ids=None, known=None, exclude=None, stats=None,  # noqa: PLR0913
                   vanished_ok=False):
    """The manifest of the tree at root (a path or an fdtree.Dir), read from disk (ids: see entry_from_stat).

    File contents are hashed by two worker threads. known maps a path to
    (inode, size, mtime_ns, sha256) of a file hashed already, or to
    (inode, size, mtime_ns, ctime_ns, sha256): its digest is reused while
    those fields of the file are unchanged. exclude (an excludes.Excludes)
    leaves entries out. stats, a dict, is given each regular file's
    stat_key() and, under the key None, the bytes hashed. vanished_ok: an
    entry removed or replaced while the tree is read is left out instead of
    failing the read (a tree that containers still change, read again later).
    """
    entries = []
    inodes = {}
    jobs = collections.deque()
    hashed = 0
    stats = {} if stats is None else stats
    with ThreadPoolExecutor(max_workers=2) as pool:
        try:
            for path, st, entry, fd, sha256 in _read_entries(walk(root, exclude, vanished_ok), ids, checksum, known,
                                                             vanished_ok):
                if stat.S_ISREG(st.st_mode):
                    if st.st_nlink > 1:
                        inodes.setdefault((st.st_dev, st.st_ino), []).append(path)
                    stats[path] = stat_key(st)
                entries.append(entry)
                if sha256 is not None:
                    entry["sha256"] = sha256
                elif fd is not None:
                    hashed += st.st_size
                    jobs.append((entry, fd, pool.submit(hash_and_close, fd)))
                    while len(jobs) > IN_FLIGHT:
                        done, _fd, job = jobs.popleft()
                        done["sha256"] = job.result()
            while jobs:
                entry, _fd, job = jobs.popleft()
                entry["sha256"] = job.result()
        finally:
            for _entry, fd, job in jobs:
                if job.cancel():
                    os.close(fd)
    stats[None] = hashed
    return link_groups(entries, inodes.values())


def tar_path(name, prefix=""):
    """The manifest path of a tar member name, relative to prefix (e.g. '.' or 'v')."""
    name = name.rstrip("/")
    if name.startswith("./"):
        name = name[2:]
    elif name == ".":
        name = ""
    if prefix and prefix != ".":
        if name == prefix:
            return ""
        if name.startswith(prefix + "/"):
            return name[len(prefix) + 1:]
        return None
    return name


class TarManifest:
    """Builds a manifest from the members of a tar stream, in the order they come.

    With exclude (an excludes.Excludes), :meth:`keeps` decides which members are left out.
    """

    def __init__(self, prefix=".", exclude=None):
        self.prefix = prefix
        self.entries = {}
        self.groups = {}
        self.exclude = exclude
        self.tree = exclude.tree_filter() if exclude else None

    def keeps(self, member):
        """Whether the member belongs to the tree: not the staging directory, not left out by exclude.

        Ask for every member, in the stream's order (a directory left out takes what is below it).
        """
        path = tar_path(member.name, self.prefix)
        if path is None:
            return True
        if path == STAGING or path.startswith(STAGING + "/"):
            return False
        if self.tree is None:
            return True
        link = tar_path(member.linkname, self.prefix) if member.type == tarfile.LNKTYPE else None
        return not self.tree.drops(path, member.isdir(), link)

    def add(self, member, sha256=None):
        """Record one tar member; sha256 is the digest of a regular member's content."""
        path = tar_path(member.name, self.prefix)
        if path is None or path == STAGING or path.startswith(STAGING + "/"):
            return
        if member.type == tarfile.LNKTYPE:
            target = tar_path(member.linkname, self.prefix)
            first = self.entries.get(target)
            if first is None:
                return
            entry = dict(first, path=path)
            entry.pop("hardlink", None)
            entry["mode"] = member.mode & 0o7777
            self.entries[path] = entry
            members = self.groups.get(target)
            if members is None:
                members = self.groups[target] = [target]
            members.append(path)
            self.groups[path] = members
            return
        kind = _TAR_TYPES.get(member.type)
        if kind is None:
            return
        rdev = "%d:%d" % (member.devmajor, member.devminor) if kind in ("char", "block") else None
        self.entries[path] = make_entry(path, kind, member.mode, member.uid, member.gid,
                                        size=member.size if kind == "file" else 0, mtime=member.mtime, sha256=sha256,
                                        target=member.linkname if kind == "symlink" else None, rdev=rdev)

    def result(self):
        seen = set()
        groups = []
        for members in self.groups.values():
            if id(members) not in seen:
                seen.add(id(members))
                groups.append(members)
        return link_groups(list(self.entries.values()), groups)


def member_pieces(archive, member, buf):
    """The content of the regular file member of the tarfile archive, read into buf (a bytearray) piece by
    piece: each piece is a view of buf, valid until the next one is asked for. The one read loop of tar
    members."""
    f = archive.extractfile(member)
    view = memoryview(buf)
    while True:
        n = f.readinto(buf)
        if not n:
            return
        yield view[:n]


def from_tar_stream(fileobj, prefix=".", checksum=True, ids=None, exclude=None):
    """The manifest of a tar archive read from a stream (no seeking); ids maps its (uid, gid) if given;
    exclude (an excludes.Excludes) leaves members out."""
    builder = TarManifest(prefix, exclude)
    buf = bytearray(BUFFER)
    with tarfile.open(fileobj=fileobj, mode="r|") as archive:
        for member in archive:
            if not builder.keeps(member):
                continue
            if ids is not None:
                member.uid, member.gid = ids(member.uid, member.gid)
            sha = None
            if member.isreg() and checksum:
                h = hashlib.sha256()
                for piece in member_pieces(archive, member, buf):
                    h.update(piece)
                sha = h.hexdigest()
            builder.add(member, sha)
    return builder.result()


def dump(entries, entries_digest=None, **extra):
    """The JSON document stored beside a backup: the entries and their digest (computed unless given)."""
    doc = dict(extra, format=1, digest=entries_digest or digest(entries), entries=canonical(entries))
    return json.dumps(doc, indent=None, separators=(",", ":"), sort_keys=True)


def load(text):
    """Parse a manifest document written by :func:`dump`; raises ValueError when it is not one."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("format") != 1 or not isinstance(doc.get("entries"), list):
        raise ValueError("not a persist.docker manifest (format 1)")
    if digest(doc["entries"]) != doc.get("digest"):
        raise ValueError("its entries do not match its digest")
    return doc
