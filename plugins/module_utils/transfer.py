# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Streaming, staged copies of a volume's tree.

A *side* is one volume on one engine, reached either through its mountpoint on
this host (:class:`LocalSide`: the engine is on a local Unix socket and the
mountpoint is readable here) or through the Engine API (:class:`ApiSide`:
``GET /containers/{id}/archive`` of a helper container for reading, a helper
container running ``tar -x`` fed through its attached stdin for writing).
Data always flows in bounded chunks; no side ever holds a volume in memory.

Staging protocol on the destination, which makes every run crash-safe:

1. the data goes to ``<root>/.persist-docker-staging/data`` (the visible tree
   is left as it was);
2. the staged tree's manifest is compared with the source's; only then
   ``.persist-docker-staging/state`` is written as ``verified <digest>``;
3. the old visible entries are removed, the state becomes ``moving <digest>``;
4. the staged entries are renamed into the root, the root gets the source
   root's owner and mode, the staging directory goes.

A run killed in 1-2 leaves a staging directory without a verified state: the
next run starts the copy again (the visible tree is then guarded as without a
staging directory: replaced only when empty or with force). Killed in 3-4: the
next run finishes the step it finds in the state file - but only a run that
would write that very digest, and only after it has verified the staged tree
against its source (plan_relocation, staged_copy); a staged copy of other data
is replaced only with force. The source is only read. Runs on one volume hold
its lock (locking.py), so a live run's staging is never taken for a leftover.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import functools
import hashlib
import io
import mmap
import os
import queue
import shlex
import shutil
import socket
import stat
import struct
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.persist.docker.plugins.module_utils import (
    archive_check,
    atomic,
    fdtree,
    idmap,
    manifest,
    volumes,
)
from ansible_collections.persist.docker.plugins.module_utils.client import (
    DockerError,
    api_errors,
    get_or_none,
    os_errors,
)
from ansible_collections.persist.docker.plugins.module_utils.manifest import BUFFER, STAGING
from ansible_collections.persist.docker.plugins.module_utils.volumes import (
    HELPER_LABEL,
    HELPER_MOUNT,
    HelperRoot,
    LocalRoot,
    engine_id_maps,
    volume_root,
)

STATE = "state"
DATA = "data"
# The bound of a socket read or write of a helper container when the client has no timeout of its own.
DEFAULT_IO_TIMEOUT = 60
_ZEROS = bytes(BUFFER)

try:
    _SEEK_DATA, _SEEK_HOLE = os.SEEK_DATA, os.SEEK_HOLE
except AttributeError:  # not Linux
    _SEEK_DATA = _SEEK_HOLE = None


# ---------------------------------------------------------------- pure: decisions

def parse_state(text):
    """The staging state from the state file's text: (word, digest) or ('partial', None)."""
    if text is None:
        return ("partial", None)
    parts = text.split()
    if len(parts) == 2 and parts[0] in ("verified", "moving"):
        return (parts[0], parts[1])
    return ("partial", None)


def refuse_options(mode, verify):
    """Why a combination of volume_relocate's options is refused, or None (pure)."""
    if mode == "move" and verify == "none":
        return ("mode: move with verify: none would remove the source without checking its copy; nothing was "
                "done. Use verify: size or checksum, or mode: copy")
    return None


def plan_relocation(source_exists, dest_exists, *, staging, in_sync, dest_empty, mode, force,  # noqa: PLR0911
                    ours=False, verify="checksum"):
    """What a relocation (or a restore) run does: (action, reason).

    ``staging`` is None (no staging directory) or the parse_state() tuple;
    ``ours`` whether its digest is the one this run would write (the source's,
    at the verify level); ``in_sync`` whether the visible destination equals
    the source at the verify level; ``dest_empty`` whether it holds nothing.
    Actions: ``none``, ``copy`` (into a new staging directory: a leftover one
    is discarded), ``resume`` (verify and finish this run's staged copy),
    ``remove-source`` (move whose copy is complete) and ``fail`` (reason says
    why). Only a staged copy of this very source is resumed; any other
    leftover staging guards the destination as other data does.
    """
    refusal = refuse_options(mode, verify)
    if refusal:
        return "fail", refusal
    if not source_exists:
        if mode == "move" and dest_exists and staging is None:
            return "none", "the source is gone and the destination holds the moved data"
        return "fail", "the source volume does not exist"
    if dest_exists and staging is not None and staging[0] != "partial":
        if ours:
            return "resume", "the destination holds a staged copy of this source from an interrupted run (%s)" \
                % staging[0]
        if not force:
            return "fail", ("the destination holds a staged copy of other data (%s %s) from an interrupted run"
                            % staging)
        return "copy", "the destination's staged copy of other data is replaced (force)"
    leftover = " (a partial staging directory left by an interrupted run is discarded)" \
        if dest_exists and staging is not None else ""
    if dest_exists and in_sync and not leftover:
        if mode == "move":
            return "remove-source", "the destination holds a verified copy; the source is removed"
        return "none", "the destination holds a verified copy of the source"
    if dest_exists and not dest_empty and not in_sync and not force:
        return "fail", "the destination volume holds other data" + leftover
    return "copy", "the destination %s%s" % ("does not exist" if not dest_exists else "holds a copy already"
                                             if in_sync else "is empty" if dest_empty else "is replaced (force)",
                                             leftover)


def userns_ids(uid_map, gid_map):
    """A function mapping host (uid, gid) to the containers' view, or None without remapping."""
    if not uid_map and not gid_map:
        return None

    def ids(uid, gid):
        try:
            return idmap.to_container(uid, uid_map), idmap.to_container(gid, gid_map)
        except idmap.IdMapError as exc:
            raise DockerError("an entry owned by host ids %d:%d lies outside the user namespace of its engine "
                              "(%s); containers cannot see that owner. Fix the ownership (persist.docker."
                              "data_ownership) or use method: api" % (uid, gid, exc)) from None
    return ids


def host_ids(uid_map, gid_map):
    """A function mapping containers' (uid, gid) to host ids (volumes.host_ids), or None without remapping."""
    if not uid_map and not gid_map:
        return None
    return lambda uid, gid: volumes.host_ids(uid, gid, uid_map, gid_map)


def throughput(nbytes, seconds):
    return int(nbytes / seconds) if seconds > 0 else 0


# ---------------------------------------------------------------- tar streams

class ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks."""

    def __init__(self, chunks):
        self._it = iter(chunks)
        self._buf = b""
        self._pos = 0

    def readable(self):
        return True

    def readinto(self, b):
        while self._pos >= len(self._buf):
            try:
                self._buf = next(self._it)
            except StopIteration:
                return 0
            self._pos = 0
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = self._buf[self._pos:self._pos + n]
        self._pos += n
        return n

    def rest(self):
        """The chunks not read yet."""
        if self._pos < len(self._buf):
            yield self._buf[self._pos:]
        self._buf, self._pos = b"", 0
        yield from self._it


class _Tee(ChunkReader):
    """A ChunkReader that keeps what was read, for forwarding."""

    def __init__(self, chunks):
        super().__init__(chunks)
        self.seen = []

    def readinto(self, b):
        n = super().readinto(b)
        if n:
            self.seen.append(bytes(b[:n]))
        return n

    def drain(self):
        data, self.seen = b"".join(self.seen), []
        return data


def tee_tar(chunks, builder, checksum, counter, ids=None):  # noqa: PLR0912
    """Forward a tar stream chunk by chunk while recording its manifest in builder.

    With ids (a function of (uid, gid)), the owners are rewritten: every
    member is then encoded anew instead of forwarded byte for byte.
    """
    tee = _Tee(chunks)
    buf = bytearray(BUFFER)
    view = memoryview(buf)
    archive = tarfile.open(fileobj=io.BufferedReader(tee, BUFFER), mode="r|", bufsize=BUFFER)  # noqa: SIM115
    for member in archive:
        sha = None
        if ids is not None:
            member.uid, member.gid = ids(member.uid, member.gid)
            member.uname = member.gname = ""
            member.pax_headers = {}
            yield _tar_header(member)
        if member.isreg():
            h = hashlib.sha256() if checksum else None
            f = archive.extractfile(member)
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                if h:
                    h.update(view[:n])
                counter[0] += n
                if ids is not None:
                    yield bytes(view[:n])
                    continue
                data = tee.drain()
                if data:
                    yield data
            sha = h.hexdigest() if h else None
            if ids is not None and member.size % tarfile.BLOCKSIZE:
                yield bytes(tarfile.BLOCKSIZE - member.size % tarfile.BLOCKSIZE)
        builder.add(member, sha)
        if ids is not None:
            tee.seen = []
            continue
        data = tee.drain()
        if data:
            yield data
    if ids is not None:
        yield bytes(tarfile.BLOCKSIZE * 2)
        return
    data = tee.drain()
    if data:
        yield data
    yield from tee.rest()


def _tar_header(info):
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")
_OCTAL_7 = 8 ** 7
_OCTAL_11 = 8 ** 11


def member_header(name, kind, mode, uid, gid, mtime, size=0, linkname="", rdev=0):  # noqa: PLR0913
    """The tar header of one member: plain ustar when it fits, else what tarfile writes (PAX records).

    The plain header is what tarfile writes for such a member, built in one
    step: a volume of many small files spends much of its time here.
    """
    if (name.isascii() and linkname.isascii() and len(name) < 100 and len(linkname) < 100
            and uid < _OCTAL_7 and gid < _OCTAL_7 and size < _OCTAL_11 and 0 <= mtime < _OCTAL_11
            and kind not in (tarfile.CHRTYPE, tarfile.BLKTYPE)):
        if kind == tarfile.DIRTYPE and not name.endswith("/"):
            name += "/"
        buf = bytearray(_USTAR.pack(name.encode(), b"%07o\0" % (mode & 0o7777), b"%07o\0" % uid, b"%07o\0" % gid,
                                    b"%011o\0" % size, b"%011o\0" % mtime, b"        ", kind, linkname.encode(),
                                    tarfile.POSIX_MAGIC, b"", b"", b"", b"", b""))
        buf[148:156] = b"%06o\0 " % sum(buf)
        return bytes(buf)
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode & 0o7777, uid, gid, mtime
    info.size, info.linkname, info.uname, info.gname = size, linkname, "", ""
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = os.major(rdev), os.minor(rdev)
    return _tar_header(info)


class BufferPool:
    """Read buffers that are reused, shared by a producer and the threads that consume its chunks.

    A chunk is a memoryview of a pooled buffer. Each party that keeps a chunk
    past the producer's next step holds it and releases it when done; a buffer
    returns to the pool when its last hold is released. Reusing a few buffers
    keeps memory flat and spares the page faults of fresh allocations. The
    buffers are page-aligned (anonymous mappings), so a whole one can be
    written with O_DIRECT.

    The producer holds only the buffer it fills and hands every other hold
    to a thread at once, so it never waits for a buffer that only it could
    free.
    """

    MINIMUM = 4

    def __init__(self, count=12, size=BUFFER):
        count = max(count, self.MINIMUM)
        self.size = size
        self.free = queue.Queue()
        for _i in range(count):
            self.free.put(mmap.mmap(-1, size))
        self.lock = threading.Lock()
        self.holds = {}

    def take(self):
        """A free buffer, held by the caller."""
        buf = self.free.get()
        with self.lock:
            self.holds[id(buf)] = 1
        return buf

    def hold(self, chunk):
        """One more hold on chunk's buffer (chunks that are not pooled are ignored)."""
        key = id(getattr(chunk, "obj", None))
        with self.lock:
            if key in self.holds:
                self.holds[key] += 1

    def release(self, chunk):
        """Drop one hold on chunk (or on a buffer); the last one frees the buffer."""
        obj = getattr(chunk, "obj", chunk)
        key = id(obj)
        with self.lock:
            if key not in self.holds:
                return
            self.holds[key] -= 1
            if self.holds[key]:
                return
            del self.holds[key]
        self.free.put(obj)


class _Buffers:
    """Lays a stream out in a pool's buffers, one after the other; each full buffer is one chunk.

    put() and read() are generators that yield the buffers they fill up; a
    yielded buffer is valid until the next step unless the consumer holds it.
    """

    def __init__(self, pool):
        self.pool = pool
        self.buf = pool.take()
        self.view, self.pos = memoryview(self.buf), 0

    def _full(self):
        yield self.view[:self.pos]
        self.pool.release(self.buf)
        self.buf = None  # not ours to release again until take() returns
        self.buf = self.pool.take()
        self.view, self.pos = memoryview(self.buf), 0

    def put(self, data):
        """Copy data (a header or padding) into the stream."""
        data = memoryview(data)
        while data:
            n = min(len(data), self.pool.size - self.pos)
            self.view[self.pos:self.pos + n] = data[:n]
            self.pos += n
            data = data[n:]
            if self.pos == self.pool.size:
                yield from self._full()

    def read(self, fd, left, path, take):
        """Read left bytes of fd into the stream; call take(piece) for every piece read."""
        while left > 0:
            n = os.readv(fd, [self.view[self.pos:self.pos + min(self.pool.size - self.pos, left)]])
            if not n:
                raise DockerError("file %r of the volume shrank while it was read; stop the containers that write to "
                                  "the volume (stop_containers: true) and run again" % path)
            take(self.view[self.pos:self.pos + n])
            self.pos += n
            left -= n
            if self.pos == self.pool.size:
                yield from self._full()

    def finish(self):
        """Yield the last, partly filled buffer."""
        if self.pos:
            yield self.view[:self.pos]

    def close(self):
        if self.buf is not None:
            self.pool.release(self.buf)
            self.buf = None


def _hash_worker(pool):
    def work(batch):
        """(hash, chunk) adds content, (hash, entry) stores the digest in the entry."""
        for h, what in batch:
            if isinstance(what, dict):
                what["sha256"] = h.hexdigest()
            else:
                h.update(what)
    return _Worker(work, lambda item: pool.release(item[1]))


# Files at least this large are hashed by a worker thread, piece by piece as they are read;
# smaller ones by the reading thread, which spares a thread hand-over per file.
HASH_APART = 1 << 20


def local_tar(root, entries, checksum, ids=None, counter=None, pool=None):  # noqa: PLR0912,PLR0915,PLR0917
    """Yield a tar stream of the tree at root (members './...'), appending its manifest to entries.

    The stream is laid out in the buffers of pool (a new one by default) and
    yielded a whole buffer at a time; a chunk stays valid until the next one
    is asked for, and a consumer that keeps it longer holds it in the pool and
    releases it after. The sha256 of each file is in the entries once the
    stream is exhausted.
    """
    seen = {}
    counter = counter if counter is not None else [0]
    groups = {}
    pool = pool or BufferPool()
    hashes = _hash_worker(pool) if checksum else None
    linked = []
    out = _Buffers(pool)

    def count(piece):
        counter[0] += len(piece)

    try:
        for path, parent, base, st, fd in manifest.read_ahead(manifest.walk(root)):
            try:
                mode = st.st_mode
                name = "./" + path if path else "."
                uid, gid = ids(st.st_uid, st.st_gid) if ids else (st.st_uid, st.st_gid)
                mtime = int(st.st_mtime)
                target = None
                if stat.S_ISREG(mode) and st.st_nlink > 1 and (st.st_dev, st.st_ino) in seen:
                    first = seen[(st.st_dev, st.st_ino)]
                    groups[(st.st_dev, st.st_ino)].append(path)
                    entry = dict(first, path=path, mode=stat.S_IMODE(mode))
                    entry.pop("hardlink", None)
                    entries.append(entry)
                    linked.append((entry, first))
                    yield from out.put(member_header(name, tarfile.LNKTYPE, mode, uid, gid, mtime,
                                                     linkname="./" + first["path"]))
                    continue
                if stat.S_ISREG(mode):
                    yield from out.put(member_header(name, tarfile.REGTYPE, mode, uid, gid, mtime, st.st_size))
                    entry = manifest.entry_from_stat(path, st, ids)
                    take = count
                    h = hashlib.sha256() if checksum else None
                    if h is not None and st.st_size >= HASH_APART:
                        def take(piece, h=h):
                            counter[0] += len(piece)
                            pool.hold(piece)
                            hashes.put([(h, piece)])
                    elif h is not None:
                        def take(piece, h=h):
                            counter[0] += len(piece)
                            h.update(piece)
                    if fd is None:
                        fd = fdtree.open_file(parent, base, st)  # noqa: PLW2901 - closed below
                    yield from out.read(fd, st.st_size, path, take)
                    pad = -st.st_size % tarfile.BLOCKSIZE
                    if pad:
                        yield from out.put(_ZEROS[:pad])
                    if h is not None and st.st_size >= HASH_APART:
                        hashes.put([(h, entry)])
                    elif h is not None:
                        entry["sha256"] = h.hexdigest()
                else:
                    if stat.S_ISDIR(mode):
                        kind = tarfile.DIRTYPE
                    elif stat.S_ISLNK(mode):
                        target = os.fsdecode(fdtree.readlink(parent, base))
                        kind = tarfile.SYMTYPE
                    elif stat.S_ISFIFO(mode):
                        kind = tarfile.FIFOTYPE
                    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                        kind = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
                    else:
                        continue
                    yield from out.put(member_header(name, kind, mode, uid, gid, mtime, linkname=target or "",
                                                     rdev=st.st_rdev))
                    entry = manifest.entry_from_stat(path, st, ids, None, target)
                entries.append(entry)
                if stat.S_ISREG(mode) and st.st_nlink > 1:
                    seen[(st.st_dev, st.st_ino)] = entry
                    groups[(st.st_dev, st.st_ino)] = [path]
            finally:
                if fd is not None:
                    os.close(fd)
        yield from out.put(_ZEROS[:tarfile.BLOCKSIZE * 2])
        yield from out.finish()
        if hashes is not None:
            hashes.close()
            hashes = None
    finally:
        if hashes is not None:
            hashes.abandon()
        out.close()
    for entry, first in linked:
        if "sha256" in first:
            entry["sha256"] = first["sha256"]
    manifest.link_groups(entries, groups.values())


# ---------------------------------------------------------------- local side

class LocalSide:
    """A volume whose root this process reads and writes directly."""

    how = "local"

    def __init__(self, root, name, uid_map=None, gid_map=None):
        self.root = root
        self.name = name
        self.ids = userns_ids(uid_map, gid_map)
        self.to_host = host_ids(uid_map, gid_map)
        self.staging = os.path.join(root, STAGING)
        self.data = os.path.join(self.staging, DATA)
        self.copies = None

    def _guard(self, what):
        return _os_errors("volume '%s': %s" % (self.name, what))

    def manifest(self, checksum):
        with self._guard("reading %s" % self.root):
            return manifest.from_directory(self.root, checksum, self.ids)

    def staged_manifest(self, checksum):
        with self._guard("reading the staged copy"):
            return manifest.from_directory(fdtree.open_below(self.root, STAGING + "/" + DATA), checksum, self.ids,
                                           known=self.copies)

    def archive(self, checksum, entries, counter, pool=None):
        return local_tar(self.root, entries, checksum, self.ids, counter, pool)

    def _staging_dir(self, rel=""):
        """The staging directory (or rel below it) opened by descriptor: a symlink planted there is refused."""
        return fdtree.open_below(self.root, STAGING + ("/" + rel if rel else ""))

    def state(self):
        try:
            st = os.lstat(self.staging)
        except FileNotFoundError:
            return None
        with self._guard("reading the staging state"):
            if not stat.S_ISDIR(st.st_mode):
                raise OSError(errno.ENOTDIR, "not a directory (a container may have put it there); remove it",
                              self.staging)
            staging = self._staging_dir()
            try:
                fd = os.open(STATE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=staging.fd)
            except OSError:
                return parse_state(None)
            with os.fdopen(fd) as f:
                return parse_state(f.read(256))

    def reset_staging(self):
        self.remove_staging()
        with self._guard("resetting the staging directory"):
            os.mkdir(self.staging, 0o700)

    def set_state(self, word, digest):
        with self._guard("writing the staging state"):
            atomic.write_text_in(self._staging_dir(), STATE, "%s %s\n" % (word, digest))

    def clear_root(self):
        with self._guard("removing the old data"):
            for name in os.listdir(self.root):
                if name != STAGING:
                    _remove_entry(os.path.join(self.root, name))

    def promote(self, root_entry):
        with self._guard("moving the verified copy into place"):
            root = fdtree.open_root(self.root)
            if os.path.lexists(self.data):
                data = self._staging_dir(DATA)
                for name in os.listdir(data.fd):
                    os.rename(name, name, src_dir_fd=data.fd, dst_dir_fd=root.fd)
            uid, gid = (self.to_host or _same)(root_entry["uid"], root_entry["gid"])
            os.fchown(root.fd, uid, gid)
            os.fchmod(root.fd, root_entry["mode"])
            os.fsync(root.fd)

    def remove_staging(self):
        with self._guard("removing the staging directory"):
            _remove_entry(self.staging)

    def finish(self, state, root_entry):
        """Steps 2-4 of the staging protocol from state ('verified'/'moving', digest) on."""
        word, digest = state
        if word == "new":
            self.set_state("verified", digest)
            word = "verified"
        if word == "verified":
            self.clear_root()
            self.set_state("moving", digest)
        self.promote(root_entry)
        self.remove_staging()

    def receive(self, chunks):
        """Extract a tar stream (members './...') into a new staging directory."""
        self._extract(functools.partial(extract_tar, chunks))

    def receive_archive(self, path, counter, check=None):
        """Extract an uncompressed archive file into a new staging directory; check: see extract_tar()."""
        self._extract(functools.partial(extract_tar_file, path, counter=counter, check=check))

    def _extract(self, extract):
        self.reset_staging()
        self.copies = None
        with self._guard("writing the staged copy"):
            try:
                self.copies = extract(self.data, self.to_host)
            except tarfile.TarError as exc:
                raise DockerError("volume '%s': the archive cannot be read as tar (%s); nothing was changed in "
                                  "the volume's data" % (self.name, exc)) from None
            except DockerError as exc:
                self.remove_staging()
                raise DockerError("volume '%s': %s; the volume's data is unchanged" % (self.name, exc)) from None

    def fix_times(self, entries):
        """Nothing to fix: receive() gives every entry its times."""

    def receive_local(self, source, checksum, counter):
        """Copy source (a LocalSide) into a new staging directory; return the source's manifest."""
        self.reset_staging()
        with _os_errors("copy of volume '%s' to '%s'" % (source.name, self.name)):
            entries, self.copies = copy_tree(source.root, self.data, checksum, src_ids=source.ids,
                                             dst_ids=self.to_host, counter=counter)
        return entries


def _remove_entry(path):
    """Remove path if it exists: a real directory with its tree (shutil.rmtree follows no symlink on the way),
    anything else (a symlink too) by unlinking the entry itself."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _same(uid, gid):
    return uid, gid


def _os_errors(subject):
    return os_errors(subject, "fix the cause and run again, the source is unchanged")


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


def _copy_segment(fin, fout, start, end, view, counter, shift=0):
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
        _copy_segment(fin, fout, start, end, view, counter)
    if sparse:
        os.ftruncate(fout, st.st_size)


_NEW_FILE = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class _TreeWriter:
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


class _FdJobs:
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


def _write_member(member_file, fd, *, buf):
    view = memoryview(buf)
    while True:
        n = member_file.readinto(buf)
        if not n:
            return
        done = 0
        while done < n:
            done += os.write(fd, view[done:n])


def _member_path(name, what="member"):
    """The relative path of archive member name; refuses names that lead out of the volume."""
    path = manifest.tar_path(name)
    why = archive_check.bad_path(path) if path else None
    if name.startswith("/") or why:
        raise DockerError("archive %s %r leads out of the volume; nothing of it was used" % (what, name))
    return path


def _hash_copy(fd):
    st = os.fstat(fd)
    return st.st_ino, st.st_size, st.st_mtime_ns, manifest.hash_fd(fd)


def new_directory(path):
    """Make the directory path (mode 0700) in a parent that is not a symlink; return it open (fdtree.Dir)."""
    parent = fdtree.open_root(os.path.dirname(path) or ".")
    name = os.path.basename(path)
    os.mkdir(name, 0o700, dir_fd=parent.fd)
    return fdtree.open_dir(parent, name)


def extract_tar(chunks, root, ids=None, check=None):
    """Write the members of a tar stream (as local_tar makes them, './...') into the new directory root.

    ids maps the owners in the stream (the containers' view) to host ids.
    check, when given (an archive_check.MemberCheck), decides on each member
    before it is written. Every entry is made through the descriptors of
    root's directories (fdtree): a member whose name leads out of root, or
    through a symlink at any depth, or of a kind a volume does not hold stops
    the extraction with an error. Each file written is read back and hashed by
    two worker threads while the extraction goes on; returns those hashes,
    {path: (inode, size, mtime_ns, sha256)}, for manifest.from_directory(known=).
    """
    buf = bytearray(BUFFER)
    with tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks), BUFFER), mode="r|") as archive:
        return _extract(archive, root, ids, lambda member: functools.partial(
            _write_member, archive.extractfile(member), buf=buf), check)


def extract_tar_file(path, root, ids=None, counter=None, check=None):
    """extract_tar() of an uncompressed archive file: only its headers are read here, and each
    file's content is copied from its offset in the archive by the kernel (copy_file_range)."""
    counter = counter if counter is not None else [0]
    view = memoryview(bytearray(BUFFER))
    with open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:") as archive:
        def fill(member):
            start = member.offset_data
            return lambda fd: _copy_segment(f.fileno(), fd, start, start + member.size, view, counter, shift=start)

        return _extract(archive, root, ids, fill, check)


def _extract(archive, root, ids, fill, check):
    writer = _TreeWriter(fdtree.Tree(new_directory(root)), ids)
    hashes = _FdJobs(_hash_copy)
    try:
        _extract_members(archive, writer, fill, check, hashes.add)
        writer.finish()
        return dict(hashes.results())
    finally:
        hashes.close()


def _extract_members(archive, writer, fill, check, written):  # noqa: PLR0912
    """Make the members of the tar archive with writer: fill(member)(fd) writes a file's content;
    written(path, fd) gets a descriptor of every file made (and closes it)."""
    for member in archive:
        path = check(member) if check is not None else _member_path(member.name)
        if path is None:
            continue
        times = (int(member.mtime * 1e9),) * 2
        owner = (member.uid, member.gid)
        what = "archive member %r" % member.name
        if not path:
            writer.directory("", member.mode, *owner, times, make=False)
        elif member.isdir():
            writer.directory(path, member.mode, *owner, times)
        elif member.isreg() and not member.issparse():
            written(path, writer.file(path, member.mode, *owner, times, fill(member), keep=True))
        elif member.issym():
            writer.symlink(path, member.linkname, *owner, times)
        elif member.islnk():
            writer.link(path, _member_path(member.linkname, "link target"), what)
        elif member.isfifo():
            writer.node(path, stat.S_IFIFO, member.mode, 0, *owner, times)
        elif member.ischr() or member.isblk():
            writer.node(path, stat.S_IFCHR if member.ischr() else stat.S_IFBLK, member.mode,
                        os.makedev(member.devmajor, member.devminor), *owner, times)
        else:
            raise DockerError("%s is of a kind a volume backup does not hold (tar type %r)" % (what, member.type))


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
    writer = _TreeWriter(fdtree.Tree(new_directory(dst_root)), dst_ids)
    hashes = _FdJobs(_hash_pair) if checksum else None
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


# ---------------------------------------------------------------- Engine API side

_SH_ENTRIES = 'for f in .[!.]* ..?* *; do { [ -e "$f" ] || [ -L "$f" ]; } || continue; '


# Seconds a write to a helper container's stdin may stall before checking that the helper still runs.
STDIN_STALL = 5


class ApiSide:
    """A volume reached through the Engine API and helper containers of helper_image."""

    how = "api"

    def __init__(self, api, name, helper_image, host=None, id_maps=None):
        self.api = api
        self.name = name
        self.helper_image = helper_image
        # With userns-remap, Engine 20.10 archives a container's files with their host ids: map them back
        # to the containers' view (in which the helper's tar -x writes them).
        self.ids = userns_ids(*id_maps) if id_maps else None
        self.subject = "volume '%s' on %s (through the Engine API)" % (name, host or "the engine")

    def _create(self, command, stdin=False, read_only=False):
        if get_or_none("image '%s'" % self.helper_image, self.api.inspect_image, self.helper_image) is None:
            raise DockerError("helper image %s is not on the engine of volume '%s'; load it there or set "
                              "helper_image to an image with busybox sh and tar" % (self.helper_image, self.name))
        with api_errors(self.subject):
            host_config = self.api.create_host_config(
                binds=["%s:%s:%s" % (self.name, HELPER_MOUNT, "ro" if read_only else "rw")], network_mode="none")
            return self.api.create_container(self.helper_image, command=command, user="0:0", entrypoint=[],
                                             stdin_open=stdin, host_config=host_config,
                                             labels={HELPER_LABEL: "transfer"})["Id"]

    def _remove(self, cid):
        # Best effort: the engine may be gone, and that error is reported already.
        with contextlib.suppress(Exception):
            self.api.remove_container(cid, force=True)

    def _archive(self, path):
        """Yield the chunks of GET /containers/{id}/archive?path=path of a helper container."""
        cid = self._create(["true"], read_only=True)
        try:
            with api_errors(self.subject), self._socket_errors("reading"):
                stream, _stat = self.api.get_archive(cid, path, chunk_size=BUFFER)
                yield from stream
        finally:
            self._remove(cid)

    def io_timeout(self):
        """Seconds a socket read or write of this side may block: the connection's timeout option."""
        timeout = getattr(self.api, "timeout", None)
        return timeout if isinstance(timeout, (int, float)) and timeout > 0 else DEFAULT_IO_TIMEOUT

    @contextlib.contextmanager
    def _socket_errors(self, doing):
        try:
            yield
        except (socket.timeout, OSError) as exc:
            cause = "no answer for %s seconds" % self.io_timeout() if isinstance(exc, socket.timeout) else \
                exc.strerror or exc
            raise DockerError("%s: lost the helper container or the Docker daemon while %s (%s); the run stopped "
                              "and the next run finishes the job" % (self.subject, doing, cause)) from None

    def archive(self, checksum, entries, counter, pool=None):
        builder = manifest.TarManifest(".")
        yield from tee_tar(self._archive(HELPER_MOUNT + "/."), builder, checksum, counter, self.ids)
        entries.extend(builder.result())

    def manifest(self, checksum):
        return manifest.from_tar_stream(io.BufferedReader(ChunkReader(self._archive(HELPER_MOUNT + "/.")), BUFFER),
                                        ".", checksum, self.ids)

    def staged_manifest(self, checksum):
        return manifest.from_tar_stream(
            io.BufferedReader(ChunkReader(self._archive("%s/%s/%s" % (HELPER_MOUNT, STAGING, DATA))), BUFFER),
            DATA, checksum, self.ids)

    def run(self, script):
        return HelperRoot(self.api, self.name, self.helper_image).run(script)

    def state(self):
        out = self.run('S=%s/%s; if [ -f "$S/%s" ]; then cat "$S/%s"; elif [ -e "$S" ]; then echo partial; '
                       'else echo none; fi' % (HELPER_MOUNT, STAGING, STATE, STATE)).strip()
        return None if out == "none" else parse_state(out if out != "partial" else None)

    def finish(self, state, root_entry):
        """Steps 2-4 of the staging protocol in one helper container, in the same order as LocalSide."""
        word, digest = state
        lines = ["set -e", "S=%s/%s" % (HELPER_MOUNT, STAGING)]
        put_state = 'echo "%s %s" > "$S/%s.tmp"; sync; mv "$S/%s.tmp" "$S/%s"; sync'
        if word == "new":
            lines.append(put_state % ("verified", digest, STATE, STATE, STATE))
        if word in ("new", "verified"):
            lines.append('cd %s; %s [ "$f" = %s ] && continue; rm -rf -- "$f"; done'
                         % (HELPER_MOUNT, _SH_ENTRIES, STAGING))
            lines.append(put_state % ("moving", digest, STATE, STATE, STATE))
        lines.append('if [ -d "$S/%s" ]; then cd "$S/%s"; %s mv -- "$f" %s/; done; fi'
                     % (DATA, DATA, _SH_ENTRIES, HELPER_MOUNT))
        lines.append("chown %d:%d %s; chmod %o %s; sync"
                     % (root_entry["uid"], root_entry["gid"], HELPER_MOUNT, root_entry["mode"], HELPER_MOUNT))
        lines.append('cd /; rm -rf "$S"')
        self.run("\n".join(lines))

    def receive(self, chunks):
        """Extract a tar stream (members './...') into the staging directory."""
        staging = "%s/%s" % (HELPER_MOUNT, STAGING)
        data = "%s/%s" % (staging, DATA)
        try:
            self._run_stdin("rm -rf %s && mkdir -m 700 %s && mkdir %s && exec tar -x -f - --numeric-owner -C %s"
                            % (staging, staging, data, data), chunks, "tar")
        except archive_check.Refused as exc:
            self.run("rm -rf %s" % staging)
            raise DockerError("%s: %s; the volume's data is unchanged" % (self.subject, exc)) from None

    def fix_times(self, entries):
        """Set the mtimes tar -x leaves wrong in busybox: directories (changed by their children) and links."""
        lines = ["cd %s/%s/%s || exit 1" % (HELPER_MOUNT, STAGING, DATA)]
        for entry in manifest.canonical(entries):
            if entry["path"] and entry["type"] in ("dir", "symlink"):
                lines.append("touch -h -d @%d -- %s" % (entry["mtime"], shlex.quote(entry["path"])))
        text = "\n".join(lines).encode("utf-8", "surrogateescape") + b"\n"
        self._run_stdin("sh -s", (text[i:i + BUFFER] for i in range(0, len(text), BUFFER)), "setting mtimes")

    def _send(self, raw, cid, chunk):
        """Send chunk on the attached stdin; False when the helper container exited before reading it all.

        Raises socket.timeout when the helper runs but has read nothing for the connection's timeout.
        """
        view = memoryview(chunk)
        stalled = 0.0
        while view:
            try:
                sent = raw.send(view)
            except socket.timeout:
                helper = get_or_none("the helper container of %s" % self.subject, self.api.inspect_container, cid)
                if helper is None:
                    raise DockerError("%s: lost the helper container while writing (it was removed); the run "
                                      "stopped and the next run finishes the job" % self.subject) from None
                if not helper["State"]["Running"]:
                    return False
                stalled += raw.gettimeout() or STDIN_STALL
                if stalled >= self.io_timeout():
                    raise
                continue
            view, stalled = view[sent:], 0.0
        return True

    def _run_stdin(self, script, chunks, what):
        """Run script in a helper container with chunks on its stdin; every socket wait is bounded."""
        cid = self._create(["sh", "-c", script], stdin=True)
        try:
            with api_errors(self.subject):
                sock = self.api.attach_socket(cid, params={"stdin": 1, "stream": 1})
                self.api.start(cid)
            raw = getattr(sock, "_sock", sock)
            try:
                # A helper that exits early (tar -x on a full disk) stops reading, and the engine keeps the
                # attached stream open: send in bounded waits, stop once the container has exited (its
                # status and error are reported below), and give up after the connection's timeout.
                raw.settimeout(min(STDIN_STALL, self.io_timeout()))
                for chunk in chunks:  # an error of the source's own reading is not the helper's
                    with self._socket_errors("writing"):
                        if not self._send(raw, cid, chunk):
                            break
                else:
                    with self._socket_errors("writing"):
                        _close_write(raw)
            finally:
                sock.close()
            with api_errors(self.subject), self._socket_errors("waiting for %s" % what):
                status = self.api.wait(cid, timeout=self.io_timeout()).get("StatusCode", 1)
                if status != 0:
                    err = self.api.logs(cid, stdout=True, stderr=True).decode("utf-8", "replace").strip()
                    raise DockerError("%s: %s in the helper container failed with status %s: %s"
                                      % (self.subject, what, status, err[-300:]))
        finally:
            self._remove(cid)


def _close_write(raw):
    """End the helper's stdin: half-close the attached socket.

    The Docker SDK's socket for ``use_ssh_client`` is an ssh process's pipes, never a connected
    socket (shutdown() fails with ENOTCONN): there the end is closing ssh's stdin, which ssh passes
    on as EOF and ``docker system dial-stdio`` on the engine's host as a half-close.
    """
    proc = getattr(raw, "proc", None)
    if proc is not None and getattr(proc, "stdin", None) is not None:
        proc.stdin.close()
    else:
        raw.shutdown(socket.SHUT_WR)


def stale_helpers(api, volume):
    """Ids of transfer helper containers left on volume by a run that was killed."""
    with api_errors("helper containers of volume '%s'" % volume):
        found = api.containers(all=True, filters={"label": HELPER_LABEL, "volume": volume})
    return [c["Id"] for c in found]


def remove_helpers(api, ids):
    for cid in ids:
        with api_errors("helper container %s" % cid[:12]):
            api.remove_container(cid, force=True)


# ---------------------------------------------------------------- choosing a side

METHODS = ("auto", "local", "api")
_ROOT_ACCESS = {"auto": "auto", "local": "host", "api": "container"}


def open_side(api, docker_host, attrs, method, helper_image):
    """The side of volume attrs (inspect dict): LocalSide when volumes.volume_root() says the
    mountpoint is usable here (and method allows it), else ApiSide."""
    root = volume_root(api, docker_host, attrs, helper_image=helper_image, root_access=_ROOT_ACCESS[method])
    if isinstance(root, LocalRoot):
        uid_map, gid_map, _note = engine_id_maps(api, docker_host)
        return LocalSide(root.path, attrs["Name"], uid_map, gid_map)
    return api_side(api, docker_host, attrs["Name"], helper_image)


def api_side(api, docker_host, name, helper_image):
    """An ApiSide of volume name, aware of the engine's userns-remap id maps."""
    uid_map, gid_map, _note = engine_id_maps(api, docker_host)
    return ApiSide(api, name, helper_image, docker_host, (uid_map, gid_map) if uid_map or gid_map else None)


# ---------------------------------------------------------------- the staged copy

def copy_into(source, dest, checksum, counter):
    """Copy source's tree into dest's staging directory; return the source's manifest."""
    if isinstance(source, LocalSide) and isinstance(dest, LocalSide):
        return dest.receive_local(source, checksum, counter)
    if isinstance(source, ArchiveSource) and isinstance(dest, LocalSide) and source.compression == "none":
        dest.receive_archive(source.path, counter, source.member_check())
        return source.manifest(checksum)
    entries = []
    dest.receive(source.archive(checksum, entries, counter))
    dest.fix_times(entries)
    return entries


def _differ(expected, actual, level):
    """The differences of two manifests at level (empty when they match)."""
    a, b = manifest.at_level(manifest.canonical(expected), level), manifest.at_level(manifest.canonical(actual), level)
    return [] if a == b else manifest.differences(a, b) or ["their manifests differ"]


def staged_copy(source, dest, level, state=None, checkpoint=None):
    """Run (or resume) the staging protocol from source to dest.

    state is None for a new copy (a leftover staging directory is discarded),
    or the parse_state() tuple of this run's own staged copy to resume
    (plan_relocation's ``resume``). A resumed copy is verified against the
    source before it is promoted ('verified': the staged tree; its staging is
    copied anew when it does not match) or, when part of it is in place
    already ('moving'), right after. Returns dict(entries, digest,
    bytes_copied, copied: bool). Raises DockerError when the copy does not
    match the source. checkpoint, when given, is called after a new copy,
    before it is marked verified.
    """
    checksum = level == "checksum"
    compare = "checksum" if checksum else "size"
    counter = [0]
    entries = None
    if state is not None and state[0] in ("verified", "moving"):
        entries = source.manifest(checksum)
        if manifest.digest(manifest.at_level(entries, compare)) != state[1]:
            raise DockerError("volume '%s' holds a staged copy of other data (%s %s), not of '%s'; nothing was moved "
                              "into place. Set force: true to replace it" % (dest.name, state[0], state[1],
                                                                             source.name))
        if state[0] == "verified" and _differ(entries, dest.staged_manifest(checksum), compare):
            state = None  # the staged tree is not what its state says: stage it anew
    else:
        state = None
    copied = False
    if state is None:
        entries = copy_into(source, dest, checksum, counter)
        copied = True
        differences = _differ(entries, dest.staged_manifest(checksum), compare) if level != "none" else []
        if differences:
            raise DockerError("the copy of volume '%s' to '%s' does not match its source (%s); the destination "
                              "was left unfinished and is not used; check that nothing writes to the source "
                              "and run again" % (source.name, dest.name, "; ".join(differences)))
        if checkpoint is not None:
            checkpoint()
        state = ("new", manifest.digest(manifest.at_level(entries, compare)))
    root = [e for e in entries if e["path"] == ""][0]
    dest.finish(state, root)
    if state[0] == "moving":
        differences = _differ(entries, dest.manifest(checksum), compare)
        if differences:
            raise DockerError("volume '%s': the copy that an interrupted run was moving into place does not match "
                              "'%s' (%s); the source is unchanged. Set force: true to copy it afresh"
                              % (dest.name, source.name, "; ".join(differences)))
    return dict(entries=entries, digest=manifest.digest(entries), bytes_copied=counter[0], copied=copied)


def timed(func, *args, **kwargs):
    start = time.monotonic()
    result = func(*args, **kwargs)
    return result, time.monotonic() - start


# ---------------------------------------------------------------- archives (backup and restore)

COMPRESSIONS = ("auto", "none", "gzip", "zstd")


def archive_files(path):
    """The archive, its manifest and its checksum file."""
    return path, path + ".manifest.json", path + ".sha256"


def pick_compression(path, compression):
    """The compression of an archive: the option, or for V(auto) the file name's suffix."""
    if compression != "auto":
        return compression
    name = path.lower()
    if name.endswith((".gz", ".tgz")):
        return "gzip"
    if name.endswith((".zst", ".tzst")):
        return "zstd"
    return "none"


def _zstandard():
    try:
        import zstandard
    except ImportError:
        raise DockerError("zstd compression needs the Python package zstandard on the managed host; install it "
                          "(pip install zstandard) or use compression gzip or none") from None
    return zstandard


def compressor(compression):
    """An object with compress(bytes) and flush() for the compression, or None for none."""
    if compression == "gzip":
        import zlib
        return zlib.compressobj(6, zlib.DEFLATED, 31)
    if compression == "zstd":
        return _zstandard().ZstdCompressor(level=3).compressobj()
    return None


def decompression_errors(compression):
    """The exceptions decompressed() raises for damaged data of the compression."""
    if compression == "gzip":
        import zlib
        return (zlib.error,)
    if compression == "zstd":
        return (_zstandard().ZstdError,)
    return ()


def decompressed(chunks, compression):
    """The chunks of an archive, decompressed."""
    if compression == "gzip":
        import zlib
        d = zlib.decompressobj(31)
        for chunk in chunks:
            data = chunk
            while data:
                out = d.decompress(data, BUFFER)
                if out:
                    yield out
                data = d.unconsumed_tail
        tail = d.flush()
        if tail:
            yield tail
    elif compression == "zstd":
        reader = _zstandard().ZstdDecompressor().stream_reader(ChunkReader(chunks))
        while True:
            out = reader.read(BUFFER)
            if not out:
                break
            yield out
    else:
        yield from chunks


def file_chunks(path):
    with open(path, "rb") as f:
        while True:
            chunk = f.read(BUFFER)
            if not chunk:
                break
            yield chunk


def sha256_file(path):
    return manifest.hash_file(path)


@contextlib.contextmanager
def sha256_meanwhile(path):
    """Hash the file at path on a thread while the block runs; yield a function that waits for the sha256.

    The function returns None when the file cannot be read. Leaving the block
    stops a hash that is no longer wanted.
    """
    stop = threading.Event()
    found = []

    def run():
        try:
            found.append(manifest.hash_file(path, stop=stop))
        except OSError:
            found.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result():
        thread.join()
        return found[0]

    try:
        yield result
    finally:
        stop.set()
        thread.join()


def read_checksum_file(path):
    """The hex digest in a sha256sum-style file, or None when it cannot be read."""
    try:
        with open(path) as f:
            first = f.read(200).split()
    except OSError:
        return None
    return first[0].lower() if first else None


class _Worker:
    """A thread that applies work to each batch put to it, in order.

    hashlib and file I/O release the GIL, so a worker runs beside the thread
    that feeds it; the bounded queue keeps memory bounded. release, if given,
    is called for every item once its batch is done (or skipped after an
    error). close() waits for the work and re-raises its first error;
    abandon() skips what is left.
    """

    def __init__(self, work, release=None, depth=6):
        self.work = work
        self.release = release
        self.error = None
        self.queue = queue.Queue(maxsize=depth)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            batch = self.queue.get()
            if batch is None:
                return
            try:
                if self.error is None:
                    self.work(batch)
            except Exception as e:  # noqa: BLE001 - handed to the feeding thread by close()
                self.error = e
            finally:
                if self.release is not None:
                    for item in batch:
                        self.release(item)

    def put(self, batch):
        if batch:
            self.queue.put(batch)

    def close(self):
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def abandon(self):
        """Skip the batches not done yet (their items are still released) and wait for the thread."""
        if self.error is None:
            self.error = DockerError("abandoned")
        self.queue.put(None)
        self.thread.join()


# An archive made of whole pool buffers is opened with O_DIRECT where the file system allows
# it: the disk reads the buffers itself, sparing the copy into the page cache (the costliest
# step of a plain `tar -cf`) and leaving the cache to the services on the host. Other archives
# are written through the page cache, with writeback started every WRITEBACK bytes so that
# the closing fsync waits for little.
DIRECT_ALIGN = 4096
WRITEBACK = 64 << 20


def _open_archive(path, direct, mode):
    """Create path (atomic.open_new: never through a symlink) with mode, with O_DIRECT if asked and allowed;
    return (fd, direct)."""
    if direct and getattr(os, "O_DIRECT", 0):
        try:
            return atomic.open_new(path, mode, os.O_DIRECT), True
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
    return atomic.open_new(path, mode), False


class _DiskWriter:
    """The work of the disk thread: write batches of chunks in order.

    Direct writes go on while every chunk is whole blocks of a page-aligned
    buffer; the first other chunk (the end of the archive, typically), or a
    write the file system refuses, switches the file to buffered writes.
    """

    def __init__(self, fd, direct):
        self.fd = fd
        self.direct = direct
        self.written = self.flushed = 0

    def __call__(self, batch):
        if self.direct and any(len(chunk) % DIRECT_ALIGN for chunk in batch):
            self._buffered()
        try:
            total = _write_all(self.fd, batch)
        except OSError as e:
            if not (self.direct and e.errno == errno.EINVAL):
                raise
            self._buffered()
            done = os.lseek(self.fd, 0, os.SEEK_CUR) - self.written  # what direct writes took before the refusal
            total = done + _write_all(self.fd, [memoryview(b"".join(batch))[done:]])
        self.written += total
        if not self.direct and self.written - self.flushed >= WRITEBACK:
            _start_writeback(self.fd, self.flushed, self.written - self.flushed)
            self.flushed = self.written

    def _buffered(self):
        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        self.direct = False


class _ArchiveHash:
    """The work of the hashing thread: the sha256 and size of the archive."""

    def __init__(self):
        self.sha = hashlib.sha256()
        self.size = 0

    def __call__(self, batch):
        for chunk in batch:
            self.sha.update(chunk)
            self.size += len(chunk)


def _write_all(fd, pieces):
    """Write the pieces with as few system calls as possible; return the bytes written."""
    total = sum(len(p) for p in pieces)
    written = os.writev(fd, pieces)
    if written < total:
        view = memoryview(b"".join(pieces))[written:]
        while view:
            view = view[os.write(fd, view):]
    return total


def _start_writeback(fd, offset, length):
    """Ask the kernel to start writing a range back now (POSIX_FADV_DONTNEED does, on Linux)."""
    with contextlib.suppress(AttributeError, OSError):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def write_archive(chunks, path, compression, pool=None, mode=atomic.PRIVATE):
    """Write chunks (compressed) to path via path.partial (removed on failure); return its sha256 and size.

    The archive gets mode (0600 unless told); path.partial is created new, never through a symlink.

    One thread hashes the archive and another writes it while the chunks are
    produced; chunks of pool are held until both are done with them, and an
    uncompressed archive of pool chunks is written with O_DIRECT.
    """
    comp = compressor(compression)
    tmp = path + ".partial"
    batch, length = [], 0
    holds = pool is not None and comp is None
    with _os_errors("writing %s" % path):
        fd, direct = _open_archive(tmp, holds, mode)
        archive = _ArchiveHash()
        release = pool.release if holds else None
        workers = [_Worker(archive, release), _Worker(_DiskWriter(fd, direct), release)]

        def hand_over(batch):
            for worker in workers:
                for piece in batch if holds else ():
                    pool.hold(piece)
                worker.put(batch)

        done = False
        try:
            for chunk in chunks:
                data = comp.compress(chunk) if comp is not None else chunk
                if not holds and isinstance(data, memoryview):
                    data = bytes(data)  # a view valid only until the next chunk
                if data:
                    batch.append(data)
                    length += len(data)
                if batch and (holds or length >= BUFFER or len(batch) >= 256):
                    hand_over(batch)
                    batch, length = [], 0
            if comp is not None:
                batch.append(comp.flush())
            hand_over(batch)
            while workers:
                workers.pop(0).close()
            os.fsync(fd)
            done = True
        finally:
            for worker in workers:
                worker.abandon()
            os.close(fd)
            if not done:  # do not leave a partial archive filling the disk
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        os.rename(tmp, path)
        atomic.sync_directory(os.path.dirname(path))
    return archive.sha.hexdigest(), archive.size


class ArchiveSource:
    """A backup archive as the source of a staged copy."""

    how = "archive"

    def __init__(self, path, compression, doc):
        self.path = path
        self.name = path
        self.compression = compression
        self.doc = doc

    def manifest(self, checksum):
        return list(self.doc["entries"])

    def member_check(self):
        """An archive_check.MemberCheck of the archive's members against its manifest."""
        return archive_check.MemberCheck(self.doc["entries"])

    def archive(self, checksum, entries, counter, pool=None):
        """The archive's tar stream, each member checked against the manifest before it is passed on."""
        entries.extend(self.doc["entries"])
        yield from archive_check.checked_tar(self._chunks(counter), self.member_check(), "the archive %s" % self.path)

    def _chunks(self, counter):
        try:
            for chunk in decompressed(file_chunks(self.path), self.compression):
                counter[0] += len(chunk)
                yield chunk
        except decompression_errors(self.compression) as exc:
            raise DockerError("the archive %s cannot be decompressed as %s (%s): it is damaged although its checksum "
                              "file and manifest agree with it; nothing was restored, use another backup"
                              % (self.path, self.compression, exc)) from None
