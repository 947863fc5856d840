# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tar streams of a volume's tree: made, forwarded and extracted in bounded chunks.

* :func:`member_header` -- one member's header, plain ustar when it fits (what tarfile writes).
* :class:`ChunkReader` -- a file over an iterator of byte chunks; :func:`tee_tar` forwards a tar
  stream while recording its manifest (and, through :func:`rewrite_tar`, rewriting owners or
  leaving members out if asked).
* :func:`local_tar` -- the tar stream of a tree on this host, laid out in pooled buffers (buffers.py),
  with its manifest.
* :func:`extract_tar`, :func:`extract_tar_file`, :func:`extract_members` -- a tar stream, an
  uncompressed archive file or members parsed elsewhere (a restic snapshot's, repository.py)
  written into a new directory through directory descriptors (tree_copy.TreeWriter); a member whose
  name leads out of the tree (:func:`bad_path`) or through a symlink stops the extraction.
* :func:`member_pieces` -- the content of a member read into one reused buffer: the one read loop.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import stat
import struct
import tarfile

from ansible_collections.persist.docker.plugins.module_utils import buffers, fdtree, manifest, tree_copy
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manifest import BUFFER

_ZEROS = bytes(BUFFER)


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


def tee_tar(chunks, builder, checksum, counter, ids=None):
    """Forward a tar stream chunk by chunk while recording its manifest in builder (a manifest.TarManifest).

    With ids (a function of (uid, gid)), the owners are rewritten, and with a
    builder that leaves members out (its exclude), those members are dropped:
    every member kept is then encoded anew (:func:`rewrite_tar`) instead of
    forwarded byte for byte.
    """
    if ids is not None or builder.exclude is not None:
        yield from rewrite_tar(chunks, builder, checksum, counter, ids)
        return
    tee = _Tee(chunks)
    buf = bytearray(BUFFER)
    archive = tarfile.open(fileobj=io.BufferedReader(tee, BUFFER), mode="r|", bufsize=BUFFER)  # noqa: SIM115
    for member in archive:
        sha = None
        if member.isreg():
            h = hashlib.sha256() if checksum else None
            for piece in manifest.member_pieces(archive, member, buf):
                if h:
                    h.update(piece)
                counter[0] += len(piece)
                data = tee.drain()
                if data:
                    yield data
            sha = h.hexdigest() if h else None
        builder.add(member, sha)
        data = tee.drain()
        if data:
            yield data
    data = tee.drain()
    if data:
        yield data
    yield from tee.rest()


def rewrite_tar(chunks, builder, checksum, counter, ids=None):
    """The members of a tar stream that builder keeps (TarManifest.keeps), each encoded anew, with their
    owners mapped by ids when given; their manifest is recorded in builder.

    A member's own PAX records are kept unless its owners are rewritten (a record would
    override the new ids). Only the piece being read is held: the stream is not kept.
    """
    buf = bytearray(BUFFER)
    archive = tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks), BUFFER), mode="r|",  # noqa: SIM115
                           bufsize=BUFFER)
    for member in archive:
        if not builder.keeps(member):
            continue
        if ids is not None:
            member.uid, member.gid = ids(member.uid, member.gid)
            member.uname = member.gname = ""
            member.pax_headers = {}
        yield _tar_header(member)
        sha = None
        if member.isreg():
            h = hashlib.sha256() if checksum else None
            for piece in manifest.member_pieces(archive, member, buf):
                if h:
                    h.update(piece)
                counter[0] += len(piece)
                yield bytes(piece)
            sha = h.hexdigest() if h else None
            if member.size % tarfile.BLOCKSIZE:
                yield bytes(tarfile.BLOCKSIZE - member.size % tarfile.BLOCKSIZE)
        builder.add(member, sha)
    yield bytes(tarfile.BLOCKSIZE * 2)


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


def bad_path(path):
    """Why a manifest path or normalised member name cannot be in a volume's tree, or None."""
    if path.startswith("/"):
        return "it is absolute"
    parts = path.split("/")
    if ".." in parts:
        return "it leads up with '..'"
    if "" in parts or "." in parts:
        return "it has an empty or '.' component"
    if "\0" in path:
        return "it holds a NUL byte"
    return None


# Files at least this large are hashed by a worker thread, piece by piece as they are read;
# smaller ones by the reading thread, which spares a thread hand-over per file.
HASH_APART = 1 << 20


def local_tar(root, entries, checksum, ids=None, counter=None, pool=None, exclude=None):  # noqa: PLR0912,PLR0915,PLR0917,PLR0913
    """Yield a tar stream of the tree at root (members './...'), appending its manifest to entries.

    exclude (an excludes.Excludes) leaves entries out, as manifest.walk() does.

    The stream is laid out in the buffers of pool (a new one by default) and
    yielded a whole buffer at a time; a chunk stays valid until the next one
    is asked for, and a consumer that keeps it longer holds it in the pool and
    releases it after. The sha256 of each file is in the entries once the
    stream is exhausted.
    """
    seen = {}
    counter = counter if counter is not None else [0]
    groups = {}
    pool = pool or buffers.BufferPool()
    hashes = buffers.hash_worker(pool) if checksum else None
    linked = []
    out = buffers.Buffers(pool)

    def count(piece):
        counter[0] += len(piece)

    try:
        for path, parent, base, st, fd in manifest.read_ahead(manifest.walk(root, exclude)):
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


def _write_member(archive, member, fd, *, buf):
    write_pieces(manifest.member_pieces(archive, member, buf), fd)


def write_pieces(pieces, fd):
    """Write every piece (bytes-like) to fd."""
    for piece in pieces:
        done = 0
        while done < len(piece):
            done += os.write(fd, piece[done:])


def _member_path(name, what="member"):
    """The relative path of archive member name; refuses names that lead out of the volume."""
    path = manifest.tar_path(name)
    why = bad_path(path) if path else None
    if name.startswith("/") or why:
        raise DockerError("archive %s %r leads out of the volume; nothing of it was used" % (what, name))
    return path


def _hash_copy(fd):
    st = os.fstat(fd)
    return st.st_ino, st.st_size, st.st_mtime_ns, manifest.hash_fd(fd)


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
        return _extract(((member, functools.partial(_write_member, archive, member, buf=buf)) for member in archive),
                        root, ids, check)


def extract_members(pairs, root, ids=None, check=None):
    """extract_tar() of members that are not a tar stream: (member, fill) pairs, member a tarfile.TarInfo and
    fill(fd) writing a regular file's content (each pair used before the next is asked for)."""
    return _extract(pairs, root, ids, check)


def extract_tar_file(path, root, ids=None, counter=None, check=None):
    """extract_tar() of an uncompressed archive file: only its headers are read here, and each
    file's content is copied from its offset in the archive by the kernel (copy_file_range)."""
    counter = counter if counter is not None else [0]
    view = memoryview(bytearray(BUFFER))
    with open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:") as archive:
        def fill(member):
            start = member.offset_data
            return lambda fd: tree_copy.copy_segment(f.fileno(), fd, start, start + member.size, view, counter,
                                                     shift=start)

        return _extract(((member, fill(member)) for member in archive), root, ids, check)


def _extract(pairs, root, ids, check):
    writer = tree_copy.TreeWriter(fdtree.Tree(tree_copy.new_directory(root)), ids)
    hashes = tree_copy.FdJobs(_hash_copy)
    try:
        _extract_members(pairs, writer, check, hashes.add)
        writer.finish()
        return dict(hashes.results())
    finally:
        hashes.close()


def _extract_members(pairs, writer, check, written):  # noqa: PLR0912
    """Make the members of (member, fill) pairs with writer: fill(fd) writes a regular file's content;
    written(path, fd) gets a descriptor of every file made (and closes it)."""
    for member, fill in pairs:
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
            written(path, writer.file(path, member.mode, *owner, times, fill, keep=True))
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
