# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A backup archive's members checked against its manifest, each one before it is written.

Whoever can write the backup directory can forge an archive, its manifest and
its checksum file together, so their agreement proves nothing about safety.
What a restore may write is therefore decided member by member, before the
member reaches the disk or the helper container's ``tar -x``:

* the manifest must describe a tree: no absolute path, no ``.`` or ``..``
  component, every entry below a directory entry (so no entry lies below a
  symlink);
* each member's name, normalised, must be a manifest entry (once), of the
  same type, size, link target or device number; a hard link must join a
  file of the same link group that was written before it.

:class:`MemberCheck` holds that decision; :func:`checked_tar` applies it to a
tar stream on its way to a receiver and encodes every accepted member anew,
so the receiver reads exactly what was checked (no header of the original
stream that another tar implementation could read differently).
"""

from __future__ import annotations

import io
import os
import tarfile

from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manifest import BUFFER, STAGING, member_pieces, tar_path
from ansible_collections.persist.docker.plugins.module_utils.tar_stream import ChunkReader, bad_path, member_header

_KINDS = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.FIFOTYPE: "fifo",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
}

_REFUSED = "; the archive is refused and nothing of it is kept"


class Refused(DockerError):
    """An archive (or its manifest) that a restore must not write."""


def index(entries):
    """The manifest's entries by path; DockerError when they do not describe a tree.

    Every entry must lie below a directory entry: an entry below a symlink
    (or below a file, or below nothing) is refused.
    """
    by_path = {}
    for entry in entries:
        path = entry.get("path")
        if not isinstance(path, str) or entry.get("type") not in ("file", "dir", "symlink", "fifo", "char", "block"):
            raise Refused("the manifest holds an entry that is not a file, directory, link or node (%r)%s"
                          % (path, _REFUSED))
        if path:
            why = bad_path(path)
            if why:
                raise Refused("the manifest names %r, which cannot be in a volume: %s%s" % (path, why, _REFUSED))
        by_path[path] = entry
    if by_path.get("", {}).get("type") != "dir":
        raise Refused("the manifest has no root directory entry%s" % _REFUSED)
    for path, entry in by_path.items():
        if not path:
            continue
        parent = path.rpartition("/")[0]
        above = by_path.get(parent)
        if above is None or above["type"] != "dir":
            raise Refused("the manifest lists %r below %r, which it lists as %s, not as a directory%s"
                          % (path, parent or "/", "nothing" if above is None else "a " + above["type"],
                             _REFUSED))
        if entry.get("hardlink") is not None and by_path.get(entry["hardlink"], {}).get("type") != "file":
            raise Refused("the manifest lists %r as a hard link of %r, which it does not list as a file%s"
                          % (path, entry["hardlink"], _REFUSED))
    return by_path


class MemberCheck:
    """Checks tar members, in their order, against the manifest entries given."""

    def __init__(self, entries):
        self.entries = index(entries)
        self.written = set()

    def __call__(self, member):
        """The manifest path of member, or None for one to leave out; Refused naming it when the manifest
        does not allow it.

        A staging directory at the root (a leftover of an interrupted copy in a
        volume backed up through the Engine API) is never part of a manifest:
        its members are left out.
        """
        name = member.name
        path = tar_path(name)
        why = "its name is absolute" if name.startswith("/") else bad_path(path) if path else None
        if why:
            raise Refused("archive member %r cannot be restored: %s%s" % (name, why, _REFUSED))
        if path == STAGING or path.startswith(STAGING + "/"):
            return None
        entry = self.entries.get(path)
        if entry is None:
            raise Refused("archive member %r is not in the backup's manifest%s" % (name, _REFUSED))
        if path in self.written:
            raise Refused("archive member %r comes twice%s" % (name, _REFUSED))
        kind = _KINDS.get(member.type)
        if kind == "hardlink":
            self._link(member, path, entry)
        elif kind != entry["type"] or (path == "" and kind != "dir"):
            raise Refused("archive member %r is %s, but the manifest lists %s%s"
                          % (name, _a(kind or "of tar type %r" % member.type), _a(entry["type"]), _REFUSED))
        elif kind == "file" and member.size != entry.get("size"):
            raise Refused("archive member %r holds %d bytes, but the manifest lists %s%s"
                          % (name, member.size, entry.get("size"), _REFUSED))
        elif kind == "symlink" and member.linkname != entry.get("target"):
            raise Refused("archive member %r links to %r, but the manifest lists %r%s"
                          % (name, member.linkname, entry.get("target"), _REFUSED))
        elif kind in ("char", "block") and "%d:%d" % (member.devmajor, member.devminor) != entry.get("rdev"):
            raise Refused("archive member %r is device %d:%d, but the manifest lists %s%s"
                          % (name, member.devmajor, member.devminor, entry.get("rdev"), _REFUSED))
        self.written.add(path)
        return path

    def _link(self, member, path, entry):
        target = tar_path(member.linkname)
        first = self.entries.get(target)
        if (member.linkname.startswith("/") or not target or bad_path(target) or first is None
                or first["type"] != "file" or entry["type"] != "file"):
            raise Refused("archive member %r is a hard link to %r, which the manifest does not list as a "
                          "file%s" % (member.name, member.linkname, _REFUSED))
        if first.get("hardlink", target) != entry.get("hardlink", path):
            raise Refused("archive member %r is a hard link to %r, but the manifest does not list them as "
                          "links of one file%s" % (member.name, member.linkname, _REFUSED))
        if target not in self.written:
            raise Refused("archive member %r is a hard link to %r, which the archive has not written before%s"
                          % (member.name, member.linkname, _REFUSED))


def _a(kind):
    return ("an " if kind[0] in "aeiou" else "a ") + kind if kind in _KINDS.values() else kind


def checked_tar(chunks, check, subject="the archive"):
    """The chunks of a tar stream, each member checked by check before it is passed on, encoded anew.

    Raises DockerError (from check) at the first member refused, or naming subject when the
    stream is not a tar archive: a receiver has then seen only members that passed. A chunk is
    valid until the next one is asked for (the content is passed on in one reused buffer).
    """
    try:
        yield from _checked_members(io.BufferedReader(ChunkReader(chunks), BUFFER), check)
    except tarfile.TarError as exc:
        raise DockerError("%s is not a valid tar archive (%s): it is damaged although its checksum file and "
                          "manifest agree with it; nothing of it is kept, use another backup"
                          % (subject, exc)) from None
    yield bytes(tarfile.BLOCKSIZE * 2)


def _checked_members(stream, check):
    buf = bytearray(BUFFER)
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            if check(member) is None:
                continue
            if member.islnk():
                yield member_header(member.name, tarfile.LNKTYPE, member.mode, member.uid, member.gid,
                                    int(member.mtime), linkname=member.linkname)
                continue
            kind = tarfile.REGTYPE if member.isreg() else member.type
            yield member_header(member.name, kind, member.mode, member.uid, member.gid, int(member.mtime),
                                member.size if member.isreg() else 0, member.linkname if member.issym() else "",
                                rdev=_rdev(member))
            if member.isreg():
                yield from member_pieces(archive, member, buf)
                if member.size % tarfile.BLOCKSIZE:
                    yield bytes(tarfile.BLOCKSIZE - member.size % tarfile.BLOCKSIZE)


def _rdev(member):
    return os.makedev(member.devmajor, member.devminor) if member.ischr() or member.isblk() else 0
