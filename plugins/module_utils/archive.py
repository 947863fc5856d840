# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backup archives: their files, compression, and how they are written and read.

* :func:`archive_files` -- the archive, its manifest and its checksum file.
* :data:`COMPRESSIONS`, :func:`pick_compression`, :func:`compressor`, :func:`decompressed`,
  :func:`decompression_errors`, :func:`require_zstandard` -- gzip (zlib) and zstd (the optional
  ``zstandard`` package).
* :func:`write_archive` -- chunks written to a new file (O_DIRECT for whole pool buffers) while another
  thread hashes them; :func:`sha256_file`, :func:`sha256_meanwhile`, :func:`read_checksum_file`.
* :class:`ArchiveSource` -- an archive as the source of a staged copy (transfer.py), each member
  checked against the manifest (archive_check.py) before it is passed on.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import threading

from ansible_collections.persist.docker.plugins.module_utils import (
    archive_check,
    atomic,
    buffers,
    manifest,
    tar_stream,
)
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError, os_errors
from ansible_collections.persist.docker.plugins.module_utils.manifest import BUFFER

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


def require_zstandard():
    """The zstandard module; DockerError saying what to install when it is missing."""
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
        return require_zstandard().ZstdCompressor(level=3).compressobj()
    return None


def decompression_errors(compression):
    """The exceptions decompressed() raises for damaged data of the compression."""
    if compression == "gzip":
        import zlib
        return (zlib.error,)
    if compression == "zstd":
        return (require_zstandard().ZstdError,)
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
        reader = require_zstandard().ZstdDecompressor().stream_reader(tar_stream.ChunkReader(chunks))
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
    with os_errors("writing %s" % path, "fix the cause and run again, the source is unchanged"):
        fd, direct = _open_archive(tmp, holds, mode)
        archive = _ArchiveHash()
        release = pool.release if holds else None
        workers = [buffers.Worker(archive, release), buffers.Worker(_DiskWriter(fd, direct), release)]

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
