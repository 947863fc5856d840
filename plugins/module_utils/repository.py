# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A volume's backups in a restic repository: the snapshot convention of restic.py applied.

* :data:`REPOSITORY_SPEC`, :func:`open_repository` -- the repository options of the backup modules.
* :func:`snapshots_of`, :func:`pick_snapshot` -- the complete snapshots of a volume, and the one a
  restore wants.
* :func:`load_manifest` -- a snapshot's manifest, from its manifest snapshot.
* :func:`stat_cache` -- the digests a backup may reuse for files whose ``stat`` did not change.
* :class:`SnapshotSource` -- a snapshot as the source of a staged copy (transfer.py): the tar stream
  of ``restic dump``, normalised to the manifest (:func:`tree_as_archive`) and checked member by
  member like an archive (archive_check.py).

Data goes in two formats (restic.py): ``tree`` from the volume's mountpoint (a plain ``restic
restore`` gives the volume's files), ``tar`` from the Engine API (``backup --stdin``).
"""

from __future__ import annotations

import io
import os
import tarfile

from ansible_collections.persist.docker.plugins.module_utils import archive_check, manifest, restic
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manifest import BUFFER, member_pieces, tar_path
from ansible_collections.persist.docker.plugins.module_utils.tar_stream import ChunkReader, member_header

REPOSITORY_SPEC = dict(
    repository=dict(type="str"),
    repository_password=dict(type="str", no_log=True),
    repository_password_file=dict(type="path", no_log=False),
    repository_env=dict(type="dict", default={}, no_log=True),
    restic_timeout=dict(type="int", default=restic.TIMEOUT),
)


def open_repository(dm, params):
    """The restic.Restic of the module's repository options; a password inside the URL is kept out of the
    result."""
    secret = restic.url_password(params["repository"])
    if secret:
        dm.module.no_log_values.add(secret)
    if params["restic_timeout"] < 1:
        raise DockerError("restic_timeout must be at least 1 second")
    if (params["repository_password"] is None) == (params["repository_password_file"] is None):
        raise DockerError("with repository, give one of repository_password and repository_password_file")
    return restic.Restic(params["repository"], password=params["repository_password"],
                         password_file=params["repository_password_file"], repository_env=params["repository_env"],
                         timeout=params["restic_timeout"])


def new_run():
    """A new run id: 16 hex digits."""
    return os.urandom(8).hex()


def snapshots_of(repo, volume, host=None):
    """The complete data snapshots of volume (of host's engine when given), oldest first."""
    found = repo.snapshots(volume, tags=[restic.manifest_tags(volume, "x")[0]])
    return [s for s in restic.complete(found) if host is None or s["hostname"] == host]


def pick_snapshot(snapshots, wanted, volume, subject):
    """The snapshot a restore wants (pure): the newest for V(latest), else the one whose id starts with wanted."""
    if not snapshots:
        raise DockerError("%s holds no complete snapshot of volume '%s'; nothing was restored. List them with "
                          "persist.docker.backup_info" % (subject, volume))
    if wanted in (None, "latest"):
        return snapshots[-1]
    if len(wanted) < 8 or any(c not in "0123456789abcdef" for c in wanted):
        raise DockerError("snapshot %r is not a snapshot id (8 to 64 hex digits) or latest" % wanted)
    found = [s for s in snapshots if s["id"].startswith(wanted)]
    if len(found) != 1:
        raise DockerError("%s holds no complete snapshot %s of volume '%s'%s; nothing was restored. List them with "
                          "persist.docker.backup_info"
                          % (subject, wanted, volume, " (the id is ambiguous)" if found else ""))
    return found[0]


def manifest_text(entries, digest, volume, fmt, stats, exclude=()):
    """The manifest snapshot's file (pure): the manifest, the exclude patterns, and each regular file's stat key."""
    return manifest.dump(entries, digest, volume=volume, snapshot_format=fmt, exclude=list(exclude or ()),
                         stat={path: list(key) for path, key in (stats or {}).items() if path is not None})


def load_manifest(repo, snapshot, volume):
    """The manifest document of a complete snapshot, checked: its digest is the snapshot's, its entries a tree."""
    text = b"".join(repo.stream("dump", snapshot["manifest_id"], "/" + restic.manifest_file(volume)))
    try:
        doc = manifest.load(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DockerError("%s: the manifest of snapshot %s cannot be read (%s); use another snapshot"
                          % (repo.subject, snapshot["short_id"], exc)) from None
    if doc["digest"] != snapshot["digest"]:
        raise DockerError("%s: the manifest of snapshot %s has digest %s, but the snapshot's tag says %s; use "
                          "another snapshot" % (repo.subject, snapshot["short_id"], doc["digest"], snapshot["digest"]))
    try:
        archive_check.index(doc["entries"])
    except archive_check.Refused as exc:
        raise DockerError("%s: the manifest of snapshot %s: %s" % (repo.subject, snapshot["short_id"], exc)) from None
    return doc


def stat_cache(doc):
    """{path: (inode, size, mtime_ns, ctime_ns, sha256)} of a manifest document's files (pure), for
    manifest.from_directory(known=)."""
    stats = doc.get("stat") or {}
    cache = {}
    for entry in doc.get("entries", ()):
        key = stats.get(entry["path"])
        if entry["type"] == "file" and "sha256" in entry and isinstance(key, (list, tuple)) and len(key) == 4:
            cache[entry["path"]] = tuple(key) + (entry["sha256"],)
    return cache


def cache_of(entries, stats):
    """stat_cache() of a manifest just made with its stats (pure)."""
    return stat_cache(dict(entries=entries, stat=stats))


def tree_as_archive(chunks, entries, top):
    """The tar stream of ``restic dump <snapshot> /`` made to look as an archive of the manifest: every member
    gets the type, mode, owner and mtime its manifest entry lists (restic 0.14 writes hard links and fifos as
    regular files, and the owners as the host sees them); a hard link comes as a link to the first file of its
    group that came. The members are named ``top/...`` (the volume's directory in the snapshot). A member the
    manifest does not list passes unchanged, for archive_check to refuse."""
    by_path = {e["path"]: e for e in entries}
    firsts = {e["hardlink"] for e in entries if "hardlink" in e}
    written = {}
    buf = bytearray(BUFFER)
    with tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks), BUFFER), mode="r|") as stream:
        for member in stream:
            path = tar_path(member.name, top)
            if path == "":
                continue  # the volume's root: finish() gives it the manifest's owner and mode
            entry = by_path.get(path) if path else None
            if entry is None:
                yield member.tobuf(format=tarfile.PAX_FORMAT)
                if member.isreg():
                    yield from _content(stream, member, buf)
                continue
            name = "./" + path
            kind, size, rdev, linkname = entry["type"], 0, 0, entry.get("target", "")
            group = entry.get("hardlink") or (path if path in firsts else None)
            if kind == "file" and group is not None and group in written and member.isreg():
                yield member_header(name, tarfile.LNKTYPE, entry["mode"], entry["uid"], entry["gid"],
                                    entry.get("mtime", 0), linkname="./" + written[group])
                continue
            tar_kind = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                        "fifo": tarfile.FIFOTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE}[kind]
            if kind == "file":
                size = member.size if member.isreg() else -1
                if group is not None:
                    written[group] = path
            elif kind in ("char", "block"):
                major, minor = (int(x) for x in entry["rdev"].split(":"))
                rdev = os.makedev(major, minor)
            if size < 0 or not _same_kind(member, kind) or (kind == "symlink" and member.linkname != linkname):
                raise archive_check.Refused("snapshot member %r is not what its manifest lists; nothing of it is "
                                            "kept" % member.name)
            yield member_header(name, tar_kind, entry["mode"], entry["uid"], entry["gid"], entry.get("mtime", 0),
                                size, linkname if kind == "symlink" else "", rdev=rdev)
            if kind == "file":
                yield from _content(stream, member, buf)
    yield bytes(tarfile.BLOCKSIZE * 2)


def _same_kind(member, kind):
    """Whether a member of restic's dump can be the manifest's entry of kind (fifos and devices come as empty
    regular files)."""
    if kind in ("fifo", "char", "block"):
        return (member.isreg() and member.size == 0) or member.type == {"fifo": tarfile.FIFOTYPE, "char":
                                                                        tarfile.CHRTYPE, "block": tarfile.BLKTYPE}[kind]
    return {"file": member.isreg, "dir": member.isdir, "symlink": member.issym}[kind]()


def _content(stream, member, buf):
    yield from (bytes(piece) for piece in member_pieces(stream, member, buf))
    if member.size % tarfile.BLOCKSIZE:
        yield bytes(tarfile.BLOCKSIZE - member.size % tarfile.BLOCKSIZE)


class SnapshotSource:
    """A complete snapshot as the source of a staged copy."""

    how = "snapshot"
    compression = "none"

    def __init__(self, repo, snapshot, volume, doc):
        self.repo = repo
        self.snapshot = snapshot
        self.volume = volume
        self.doc = doc
        self.name = "snapshot %s of %s" % (snapshot["short_id"], repo.subject)

    def manifest(self, checksum):
        return list(self.doc["entries"])

    def archive(self, checksum, entries, counter, pool=None):
        """The snapshot's data as a tar stream, each member checked against the manifest before it is passed on."""
        entries.extend(self.doc["entries"])
        if self.snapshot["format"] == "tar":
            chunks = self._counted(self.repo.stream("dump", self.snapshot["id"], "/" + restic.tar_file(self.volume)),
                                   counter)
        else:
            top = os.path.basename((self.snapshot["paths"] or ["/"])[0].rstrip("/"))
            if not top or top in (".", ".."):
                raise DockerError("%s: its path %r is not the directory of a volume; use another snapshot"
                                  % (self.name, self.snapshot["paths"]))
            chunks = tree_as_archive(self._counted(self.repo.stream("dump", self.snapshot["id"], "/" + top), counter),
                                     self.doc["entries"], top)
        yield from archive_check.checked_tar(chunks, archive_check.MemberCheck(self.doc["entries"]), self.name)

    @staticmethod
    def _counted(chunks, counter):
        for chunk in chunks:
            counter[0] += len(chunk)
            yield chunk
