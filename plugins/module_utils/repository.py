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

import contextlib
import functools
import hashlib
import io
import os
import tarfile
import time

from ansible_collections.persist.docker.plugins.module_utils import (
    archive_check,
    atomic,
    buffers,
    manifest,
    restic,
    tar_stream,
)
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manifest import BUFFER, member_pieces, tar_path
from ansible_collections.persist.docker.plugins.module_utils.tar_stream import ChunkReader, member_header

# The manifests of the last backups, for the metadata-only unchanged check (PERSIST_DOCKER_STATE_DIR/restic when set).
STAT_CACHE_DIR = "/var/lib/persist-docker/restic"

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
    found = repo.snapshots(volume, tags=[restic.manifest_tags(volume, "x")[0]], lock=False)
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


def manifest_text(entries, digest, volume, fmt, stats, exclude=(), run=None):  # noqa: PLR0913
    """The manifest snapshot's file (pure): the manifest, the exclude patterns, the run, and each regular file's
    stat key."""
    return manifest.dump(entries, digest, volume=volume, snapshot_format=fmt, exclude=list(exclude or ()), run=run,
                         stat={path: list(key) for path, key in (stats or {}).items() if path is not None})


def stat_cache_path(repository_string, volume, host):
    """Where the manifest of the last backup of volume into a repository is kept on this host (pure): below the
    state directory, named by a hash of the repository (credentials and all), the volume and the engine."""
    key = hashlib.sha256("\0".join((repository_string, volume, host)).encode("utf-8", "surrogateescape")).hexdigest()
    return os.path.join(_state_dir(), key[:32] + ".json")


def _state_dir():
    base = os.environ.get(atomic.STATE_DIR_ENV)
    return os.path.join(base, "restic") if base else STAT_CACHE_DIR


def _repository_key(repository_string):
    return hashlib.sha256(repository_string.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def runs_left(repository_string):
    """The markers of writing runs into the repository that this host began and that never ended (killed, or
    failed): their restic may have left a stale lock. None when the state directory cannot be read (then
    assume there are)."""
    prefix = _repository_key(repository_string) + "."
    try:
        names = os.listdir(_state_dir())
    except FileNotFoundError:
        return []
    except OSError:
        return None
    return [os.path.join(_state_dir(), n) for n in sorted(names) if n.startswith(prefix) and n.endswith(".running")]


def mark_run(repository_string, run):
    """Mark a writing run into the repository as begun (a 0600 file below the state directory); its path, or
    None when it cannot be written (the next run then cannot know, and removes stale locks anyway)."""
    path = os.path.join(_state_dir(), "%s.%s.running" % (_repository_key(repository_string), run))
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        atomic.write_text(path, "")
    except OSError:
        return None
    return path


def clear_marks(paths):
    """Remove run markers (those of ended runs, or of killed ones whose stale locks are gone)."""
    for path in paths or ():
        with contextlib.suppress(OSError):
            os.unlink(path)


def cached_manifest(path, snapshot):
    """The manifest document kept at path when it is the one of snapshot's run (its digest and run), else None:
    the backup then reads it from the repository (``restic dump``)."""
    try:
        with open(path, "rb") as f:
            doc = manifest.load(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if doc.get("digest") != snapshot["digest"] or doc.get("run") != snapshot["run"]:
        return None
    return doc


def save_stat_cache(path, text):
    """Keep the manifest of the backup just made at path (0600, in a 0700 directory); a failure only costs the
    next run a ``restic dump``."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        atomic.write_text(path, text)
    except OSError:
        pass


def load_manifest(repo, snapshot, volume, kept=None):
    """The manifest document of a complete snapshot, checked: its digest is the snapshot's, its entries a tree.

    kept: where this host keeps the manifest of its last backup of the volume (stat_cache_path()); when that is
    the snapshot's (cached_manifest()), no restic run reads it from the repository.
    """
    doc = cached_manifest(kept, snapshot) if kept else None
    if doc is None:
        text = b"".join(repo.stream("dump", "--no-lock", snapshot["manifest_id"], "/" + restic.manifest_file(volume)))
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


_TAR_KINDS = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "fifo": tarfile.FIFOTYPE,
              "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE}


def tree_as_archive(chunks, entries, top, check, subject):
    """The tar stream of ``restic dump <snapshot> /top`` made into the archive of the manifest, each member
    checked by check (an archive_check.MemberCheck) before it is passed on, as archive_check.checked_tar() does.

    Every member gets the type, mode, owner and mtime its manifest entry lists (restic 0.14 writes hard links
    and fifos as regular files, and the owners as the host sees them), once restic's member is found to be of
    that kind; a hard link comes as a link to the first file of its group that came. The members are named
    ``./...``. A member the manifest does not list is refused. A chunk is valid until the next one is asked for.
    """
    with _tar_errors(subject):
        for info, pieces in _tree_members(chunks, entries, top, check, subject):
            yield member_header(info.name, info.type, info.mode, info.uid, info.gid, int(info.mtime), info.size,
                                info.linkname, rdev=os.makedev(info.devmajor, info.devminor)
                                if info.type in (tarfile.CHRTYPE, tarfile.BLKTYPE) else 0)
            if pieces is not None:
                yield from pieces()
                if info.size % tarfile.BLOCKSIZE:
                    yield bytes(tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE)
    yield bytes(tarfile.BLOCKSIZE * 2)


def tree_members(chunks, entries, top, check, subject):
    """The members of tree_as_archive() without a tar stream made of them: (member, fill) pairs for
    tar_stream.extract_members(), fill(fd) writing a regular file's content (None for other members). A pair is
    valid until the next one is asked for: the stream of restic's dump is parsed once."""
    for info, pieces in _tree_members(chunks, entries, top, check, subject):
        if pieces is None:
            yield info, None
        else:
            yield info, functools.partial(_fill, pieces, subject)


def _fill(pieces, subject, fd):
    with _tar_errors(subject):
        tar_stream.write_pieces(pieces(), fd)


@contextlib.contextmanager
def _tar_errors(subject):
    try:
        yield
    except tarfile.TarError as exc:
        raise DockerError("%s is not a valid tar stream (%s); nothing of it is kept, use another snapshot"
                          % (subject, exc)) from None


def _tree_members(chunks, entries, top, check, subject):
    """(member, pieces) of each member of restic's dump, normalised to the manifest: pieces() yields a regular
    file's content (None for other members)."""
    by_path = {e["path"]: e for e in entries}
    firsts = {e["hardlink"] for e in entries if "hardlink" in e}
    written = {}
    buf = bytearray(BUFFER)
    root = by_path.get("")
    if root is not None:  # first, as in an archive: restic's dump has no member for it
        info = tarfile.TarInfo("./")
        info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, root["mode"], root["uid"], \
            root["gid"], int(time.time())
        check(info)
        yield info, None
    with _tar_errors(subject), tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks), BUFFER),
                                            mode="r|") as stream:
        for member in stream:
            path = tar_path(member.name, top)
            if path == "":
                continue  # given above
            entry = by_path.get(path) if path else None
            if entry is None:
                check(member)  # raises: not in the manifest, or not a path of a tree
                raise archive_check.Refused("snapshot member %r is not in the manifest" % member.name)
            kind = entry["type"]
            if not _same_kind(member, kind) or (kind == "symlink" and member.linkname != entry["target"]):
                raise archive_check.Refused("snapshot member %r is not what its manifest lists; nothing of it is "
                                            "kept" % member.name)
            info = tarfile.TarInfo("./" + path)
            info.mode, info.uid, info.gid, info.mtime = entry["mode"], entry["uid"], entry["gid"], entry.get("mtime", 0)
            group = entry.get("hardlink") or (path if path in firsts else None)
            if kind == "file" and group is not None and group in written:
                info.type, info.linkname = tarfile.LNKTYPE, "./" + written[group]
            else:
                info.type = _TAR_KINDS[kind]
                info.size = member.size if kind == "file" else 0
                info.linkname = entry.get("target", "")
                if kind in ("char", "block"):
                    info.devmajor, info.devminor = (int(x) for x in entry["rdev"].split(":"))
                if kind == "file" and group is not None:
                    written[group] = path
            check(info)
            if info.type == tarfile.REGTYPE:
                yield info, functools.partial(member_pieces, stream, member, buf)
            else:
                yield info, None


def _same_kind(member, kind):
    """Whether a member of restic's dump can be the manifest's entry of kind (fifos and devices come as empty
    regular files)."""
    if kind in ("fifo", "char", "block"):
        return (member.isreg() and member.size == 0) or member.type == {"fifo": tarfile.FIFOTYPE, "char":
                                                                        tarfile.CHRTYPE, "block": tarfile.BLKTYPE}[kind]
    return {"file": member.isreg, "dir": member.isdir, "symlink": member.issym}[kind]()


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
        """The snapshot's data as a tar stream, each member checked against the manifest before it is passed on.

        ``restic dump --no-lock``: a stale lock cannot stop a restore; a prune meanwhile that removed data of the
        snapshot would fail the dump, and the restore with it, before anything is used.
        """
        entries.extend(self.doc["entries"])
        check = archive_check.MemberCheck(self.doc["entries"])
        if self.snapshot["format"] == "tar":
            dump = self.repo.stream("dump", "--no-lock", self.snapshot["id"], "/" + restic.tar_file(self.volume))
            yield from archive_check.checked_tar(self._counted(buffers.prefetch(dump, depth=16), counter), check,
                                                 self.name)
            return
        yield from tree_as_archive(self._tree_dump(counter), self.doc["entries"], self._top(), check, self.name)

    @property
    def is_tree(self):
        """Whether the snapshot holds the volume's tree (a mountpoint backup), not one tar file."""
        return self.snapshot["format"] != "tar"

    def members(self, counter):
        """The members of a tree snapshot as tree_members() gives them, for tar_stream.extract_members()."""
        return tree_members(self._tree_dump(counter), self.doc["entries"], self._top(),
                            archive_check.MemberCheck(self.doc["entries"]), self.name)

    def _top(self):
        top = os.path.basename((self.snapshot["paths"] or ["/"])[0].rstrip("/"))
        if not top or top in (".", ".."):
            raise DockerError("%s: its path %r is not the directory of a volume; use another snapshot"
                              % (self.name, self.snapshot["paths"]))
        return top

    def _tree_dump(self, counter):
        # restic's reads overlap the parsing here (prefetch: a thread reads its pipe ahead)
        dump = self.repo.stream("dump", "--no-lock", self.snapshot["id"], "/" + self._top())
        return self._counted(dump, counter)

    @staticmethod
    def _counted(chunks, counter):
        for chunk in chunks:
            counter[0] += len(chunk)
            yield chunk
