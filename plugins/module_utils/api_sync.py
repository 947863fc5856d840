# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A staged tree kept in step with a source tree pass after pass through the Engine API (pre-copy between engines).

:class:`ApiSync` is tree_sync.TreeSync for two volumes reached through helper
containers (volume_access.ApiRoot), on engines that may be remote (``ssh://``):
each pass

1. lists the source's tree (resync.LISTING_SCRIPT in a helper container, the
   listing read back by ``GET /containers/{id}/archive`` of that stopped helper;
   the staged tree was listed alike at the end of the pass before);
2. plans the pass (resync.plan_delta) against the record of what the run
   staged, mtimes compared in whole seconds (what a tar of the Engine carries;
   the ctime in ns still tells a change);
3. removes in the staged tree what the plan removes (a helper on the
   destination, the NUL-separated list put into its own file system);
4. streams only what the plan makes, as one tar, from the source into the staged
   tree: the source's whole tree in one ``GET`` archive when the staged tree is
   empty, else one ``GET`` archive per entry, the members renamed to their
   paths; directories last, from the listing, so that their owner, mode and
   times are set after their files are in; a ``PUT`` archive of a helper on the
   destination extracts it;
5. lists the staged tree, which gives the files it sent their staged stat keys.

Passes before the last run while containers write to the source: an entry that
vanishes, or whose stream breaks while it is read, is left for the next pass (it
is not recorded, so the next pass makes it anew). The last pass (``final=True``)
fails on any error. Each file's content is hashed as it is streamed; the final
verification (transfer.final_pass) compares the source's manifest made of the
last listing and those digests (:func:`source_entries`; a digest counts while the
file's stat key is the one it had when it was sent) with the staged tree's, made
the same way of its last listing (a digest counts while the staged file's stat key
is the one listed after it was written, as tree_sync reuses the digests of the
copies it makes). A side with a file without such a digest is read whole through
the Engine API. So with the containers stopped neither volume is read again: the
last pass lists the source, copies the last delta and lists the staged tree.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shlex
import tarfile

from ansible_collections.persist.docker.plugins.module_utils import buffers, manifest, resync
from ansible_collections.persist.docker.plugins.module_utils.client import DockerError, api_errors
from ansible_collections.persist.docker.plugins.module_utils.manifest import BUFFER, STAGING
from ansible_collections.persist.docker.plugins.module_utils.tar_stream import ChunkReader

try:
    from docker.errors import APIError
except ImportError:  # the SDK is checked by client.py on first use
    APIError = DockerError

# Where a listing helper writes the listing, in its own file system (the volume is mounted read-only).
LISTING_DIR = "/persist_docker_listing"
# The script a helper runs (its paths quoted in it), in its own file system.
SCRIPT = "persist_docker_script.sh"
DATA = "data"

# What one more GET archive costs, in bytes read: a directory is read whole when the bytes of its entries that
# are not wanted cost less than the requests of the wanted ones (plan_reads).
REQUEST_COST = 1 << 20
# The files and links a pass reads one by one are first copied (cp -a) into the own file system of one helper
# and read back in one GET archive, up to this many bytes of files: over ssh:// a request costs a round trip
# and more, a copy of a small file little (the copy takes that much space on the source's host meanwhile).
BATCH_BYTES = 256 << 20
BATCH_DIR = "/persist_docker_batch"

_HEX = re.compile(rb"[0-9a-f]{64}")

_KIND_TYPES = {"fifo": tarfile.FIFOTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE}


def whole_seconds(listing):
    """The listing with mtimes in whole seconds (pure): a tar of the Engine carries no more."""
    return dict((path, meta._replace(mtime_ns=meta.mtime_ns - meta.mtime_ns % 10 ** 9))
                for path, meta in listing.items())


def relative(name, prefix):
    """The path below the extraction root of tar member name (prefix: what the stream puts before it), or
    None for the root itself and for the staging directory (pure)."""
    if prefix:
        if name != prefix and not name.startswith(prefix + "/"):
            return None
        name = name[len(prefix) + 1:]
    elif name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    if name in ("", ".") or name == STAGING or name.startswith(STAGING + "/"):
        return None
    return name


def directory_header(path, meta):
    """The PAX header of directory path with the owner, mode and mtime of meta (pure)."""
    member = tarfile.TarInfo(path)
    member.type, member.mode, member.uid, member.gid = tarfile.DIRTYPE, meta.mode, meta.uid, meta.gid
    member.mtime = meta.mtime_ns // 10 ** 9
    return member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def node_header(path, meta):
    """The PAX header of a fifo or a device node (pure)."""
    member = tarfile.TarInfo(path)
    member.type, member.mode, member.uid, member.gid = _KIND_TYPES[meta.kind], meta.mode, meta.uid, meta.gid
    member.mtime = meta.mtime_ns // 10 ** 9
    member.devmajor, member.devminor = os.major(meta.rdev), os.minor(meta.rdev)
    return member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def symlink_header(path, meta):
    """The PAX header of a symbolic link at path with the target, owner and mtime of meta, from a listing (pure)."""
    member = tarfile.TarInfo(path)
    member.type, member.linkname, member.mode, member.uid, member.gid = tarfile.SYMTYPE, meta.target, meta.mode, \
        meta.uid, meta.gid
    member.mtime = meta.mtime_ns // 10 ** 9
    return member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def link_header(path, target, meta):
    """The PAX header of a hard link at path to the staged path target (pure)."""
    member = tarfile.TarInfo(path)
    member.type, member.linkname, member.mode, member.uid, member.gid = tarfile.LNKTYPE, target, meta.mode, \
        meta.uid, meta.gid
    member.mtime = meta.mtime_ns // 10 ** 9
    return member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def plan_reads(source, wanted, request_cost):
    """The directories to read whole (each with one GET archive) so that the wanted entries cost the least
    (pure): a directory costs one request and the size of its whole tree; otherwise its wanted files cost a
    request each and their sizes, its subdirectories what they cost themselves. Outermost first; wanted
    entries outside them are read one by one."""
    whole, alone, children = {}, {}, {}
    for path in sorted(source, key=lambda p: -p.count("/") if p else 1):
        if not path:
            continue
        parent = path.rpartition("/")[0]
        meta = source[path]
        children.setdefault(parent, []).append(path)
        if meta.kind != "dir":
            for head in _heads(path):
                whole[head] = whole.get(head, request_cost) + meta.size + 512
            if path in wanted:
                alone[parent] = alone.get(parent, 0) + request_cost + meta.size
    best, read = {}, {}
    for path in sorted((p for p in source if source[p].kind == "dir"), key=lambda p: -p.count("/") if p else 1):
        split = alone.get(path, 0) + sum(best[c] for c in children.get(path, ()) if c in best)
        cost = whole.get(path, request_cost)
        read[path] = split > 0 and cost < split
        best[path] = cost if read[path] else split
    out = []
    for path in sorted(read, key=lambda p: (p.count("/") if p else -1, p)):
        if read[path] and not any(read.get(head) for head in _heads(path) if head != path):
            out.append(path)
    return out


def batched(todo, made, limit):
    """The paths of made (in order) that one batch reads (pure): regular files, the first path of each inode, while
    their sizes add up to at most limit. Symbolic links come from the listing (symlink_header): a copy would not
    keep their mtime."""
    out, inodes, total = [], set(), 0
    for path in made:
        meta = todo.get(path)
        if meta is None or meta.kind != "file" or meta.ino in inodes or total + meta.size > limit:
            continue
        inodes.add(meta.ino)
        total += meta.size
        out.append(path)
    return out


def _file_tar(name, data):
    """A tar stream (its pieces: header, data, padding and the end) of one file name (mode 0600) holding data
    (bytes)."""
    member = tarfile.TarInfo(name)
    member.size, member.mode = len(data), 0o600
    return [member.tobuf(format=tarfile.GNU_FORMAT), data + bytes(-len(data) % tarfile.BLOCKSIZE),
            bytes(2 * tarfile.BLOCKSIZE)]


def link_script(root, paths, per_command=256):
    """The sh script (bytes) that hard-links the files at paths (relative to root) into the staged tree below
    root: their directories made first, then one ln per directory and up to per_command files (pure). Every
    path is quoted and starts with ./ or the staged tree's name: none is taken for an option."""
    staged = "%s/%s" % (STAGING, DATA)
    groups = {}
    for path in paths:
        head, _sep, _name = path.rpartition("/")
        groups.setdefault(head, []).append(path)
    lines = ["set -e", "cd %s" % shlex.quote(root)]
    lines.extend("mkdir -p %s" % shlex.quote("%s/%s" % (staged, head)) for head in sorted(groups) if head)
    for head in sorted(groups):
        into = shlex.quote("%s/%s/" % (staged, head) if head else staged + "/")
        members = groups[head]
        for at in range(0, len(members), per_command):
            lines.append("ln -- %s %s" % (" ".join(shlex.quote("./" + p) for p in members[at:at + per_command]),
                                          into))
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def _heads(path):
    """The directories above path, '' (the root) included, innermost first (pure)."""
    while path:
        path = path.rpartition("/")[0]
        yield path


class Broken(Exception):
    """The source's stream of an entry ended before the entry did (it changed while it was read)."""


class Unmapped(Exception):
    """An entry's owner cannot be seen by the containers of its engine (userns-remap): no pass can copy it. Not a
    DockerError, so that a live pass does not take it for an entry that changed; raised on as a DockerError that
    names the side."""


def in_view(listing, ids, lenient=False):
    """The listing ({path: Meta}, host ids) with its owners as the containers of the engine see them: ids maps
    (uid, gid) and raises DockerError for an owner outside the engine's user namespace (pure). Unmapped names
    the entry; lenient leaves such an entry out instead."""
    out = {}
    for path, meta in listing.items():
        try:
            uid, gid = ids(meta.uid, meta.gid)
        except DockerError as exc:
            if lenient:
                continue
            raise Unmapped("%r: %s" % (path or ".", exc)) from None
        out[path] = meta._replace(uid=uid, gid=gid)
    return out


def forward(chunks, rename, done, checksum=True, ids=None):
    """Yield the members of the tar stream chunks again, each renamed by rename(name) (None: left out; so are
    directories, and hard links to a member not sent); done(path, sha256) after a member was forwarded whole
    (sha256: of a regular member's content as it went through, when checksum; else None). ids, when given, maps
    each member's (uid, gid): an engine with userns-remap archives host ids (Engine 20.10), and the destination's
    engine takes the containers' view.

    A stream that breaks inside a member's content (an entry that changed while the engine read it) ends
    that member with zeros, so that the tar sent on stays whole, and raises Broken: that member is not done.
    """
    reader = io.BufferedReader(ChunkReader(chunks), BUFFER)
    try:
        tar = tarfile.open(fileobj=reader, mode="r|", encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
    except tarfile.ReadError as exc:
        raise Broken(str(exc)) from None
    with tar:
        yield from _members(tar, rename, done, checksum, ids)


def _members(tar, rename, done, checksum, ids):
    sent = {}
    while True:
        try:
            member = tar.next()
        except tarfile.TarError as exc:
            raise Broken(str(exc)) from None
        if member is None:
            return
        path = None if member.isdir() else rename(member.name)
        if path is None:
            continue
        if member.islnk():
            if member.linkname not in sent:
                continue
            member.linkname = sent[member.linkname]
        if ids is not None:
            try:
                member.uid, member.gid = ids(member.uid, member.gid)
            except DockerError as exc:
                raise Unmapped("%r: %s" % (path, exc)) from None
        name, member.name = member.name, path
        member.pax_headers = dict((k, v) for k, v in member.pax_headers.items() if k not in ("path", "linkpath"))
        yield member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        h = hashlib.sha256() if checksum and member.isreg() else None
        if member.isreg() and member.size:
            yield from _content(tar, member, h)
        sent[name] = path
        done(path, h.hexdigest() if h is not None else None)


def _content(tar, member, h=None):
    """The content of member, padded to whole blocks (h, a hash, updated with it); zeros for what a broken stream
    did not bring."""
    left = member.size
    source = tar.extractfile(member)
    try:
        while left:
            data = source.read(min(BUFFER, left))
            if not data:
                raise tarfile.ReadError("unexpected end of data")
            left -= len(data)
            if h is not None:
                h.update(data)
            yield data
    except (tarfile.TarError, OSError, DockerError) as exc:
        while left:
            n = min(BUFFER, left)
            left -= n
            yield bytes(n)
        yield bytes(-member.size % tarfile.BLOCKSIZE)
        raise Broken(str(exc)) from None
    yield bytes(-member.size % tarfile.BLOCKSIZE)


def side_listing(side, root, final, hashes=False, lenient=False, known=None, ctime=True):  # noqa: PLR0913
    """(listing, digests) of the tree at root (a path in a helper of side): {path: Meta}, mtimes in whole seconds,
    owners in the containers' view; with hashes, {path: sha256} of its regular files, else {}: those of known
    ({path: (ino, size, mtime_ns, ctime_ns, sha256)}) whose stat key is still the one known holds (known_digests;
    ctime: compared too), the others hashed on the engine's host after the listing, by a second helper
    (hash_paths). A listing that failed raises DockerError when final, else it gives what it found. lenient: an
    owner outside the engine's user namespace leaves its entry out instead of failing."""
    script = "mkdir -p %s; sh -c \"$0\" sh \"$1\" %s/names %s/stats; echo $? > %s/status" % (
        LISTING_DIR, LISTING_DIR, LISTING_DIR, LISTING_DIR)
    files = _run_reading(side, ["sh", "-c", script, resync.LISTING_SCRIPT, root], "listing the tree")
    if final and files.get("status", b"").strip() != b"0":
        raise DockerError("%s: listing %s failed (status %s); the run stopped, run again"
                          % (side.subject, root, files.get("status", b"?").decode("ascii", "replace").strip()))
    listing = whole_seconds(resync.parse_listing(files.get("names", b""), files.get("stats", b"")))
    if side.ids is not None:
        try:
            listing = in_view(listing, side.ids, lenient)
        except Unmapped as exc:
            raise DockerError("%s: %s" % (side.subject, exc)) from None
    if not hashes:
        return listing, {}
    digests = known_digests(listing, known or {}, ctime)
    todo = [path for path, meta in listing.items() if meta.kind == "file" and path not in digests]
    if todo:
        digests.update(hash_paths(side, root, todo))
    return listing, digests


def _run_reading(side, command, doing, script=None):
    """Run command in a helper of side (the volume mounted read-only; the host's user namespace on an engine that
    remaps ids; script, when given, put into its own file system as SCRIPT first) and return the regular files
    it left in LISTING_DIR, {name: bytes}."""
    cid = side.create_helper(command, read_only=True, label="listing", host_userns=side.ids is not None)
    try:
        if script is not None:
            side.put_archive(cid, "/", iter(_file_tar(SCRIPT, script)))
        with api_errors(side.subject), side.socket_errors(doing):
            side.api.start(cid)
            side.api.wait(cid)  # no timeout: a big tree takes its time to list and hash
            stream, _stat = side.api.get_archive(cid, LISTING_DIR, chunk_size=BUFFER)
            files = {}
            with tarfile.open(fileobj=io.BufferedReader(ChunkReader(stream), BUFFER), mode="r|") as tar:
                for member in tar:
                    if member.isreg():
                        files[member.name.rpartition("/")[2]] = tar.extractfile(member).read()
    finally:
        side.remove_helper(cid)
    return files


def commands(command, paths, per_command=256):
    """Lines of sh (str) that run command with the paths (relative, each quoted and made ./path: none is taken for
    an option) as its last arguments, up to per_command at a time (pure). Not xargs: busybox's xargs -0 mangles
    long argument lists."""
    return ["%s %s" % (command, " ".join(shlex.quote("./" + p) for p in paths[at:at + per_command]))
            for at in range(0, len(paths), per_command)]


def parse_sums(files, sums, status):
    """{path: sha256} from a helper's FILES (NUL-separated names, './' first) and SUMS (busybox sha256sum's lines
    of them, in the same order), read only when sha256sum read every file (status, the text of its exit status,
    is 0) (pure). Then each name has its line, in order, and each line is read whole at its place: no name can
    pass for the line of another. At a line that is not its name's, the reading stops."""
    out = {}
    if status.strip() != b"0":
        return out
    pos = 0
    for raw in files.split(b"\0"):
        if not raw:
            continue
        head = sums[pos:pos + 66]
        tail = raw + b"\n"
        if not (len(head) == 66 and head[64:] == b"  " and _HEX.fullmatch(head[:64])
                and sums.startswith(tail, pos + 66)):
            break
        rel = raw[2:] if raw.startswith(b"./") else raw
        out[rel.decode("utf-8", "surrogateescape")] = head[:64].decode("ascii")
        pos += 66 + len(tail)
    return out


def known_digests(listing, known, ctime=True):
    """{path: sha256} of the regular files of listing whose stat key is the one known holds ({path: (ino, size,
    mtime_ns, ctime_ns, sha256)}; without ctime, inode, size and mtime only: for the hard links this run just made
    of files it found unchanged) (pure)."""
    out = {}
    for path, meta in listing.items():
        got = known.get(path)
        if meta.kind == "file" and got is not None and \
                tuple(got[:4 if ctime else 3]) == resync.key(meta)[:4 if ctime else 3]:
            out[path] = got[4]
    return out


def as_known(listing, digests):
    """{path: (ino, size, mtime_ns, ctime_ns, sha256)} of the files of listing with a digest (pure)."""
    return dict((path, resync.key(listing[path]) + (sha,)) for path, sha in digests.items()
                if path in listing and listing[path].kind == "file")


def hash_paths(side, root, paths, per_command=64, lanes=4):
    """{path: sha256} of the files at paths (relative to root, a path in a helper of side), hashed with sha256sum on
    the engine's host: per_command files per sha256sum, each writing its own file, in lanes run at the same time
    (busybox's sha256sum uses one core); the script goes into the helper's own file system. The files of a
    sha256sum that could not read one of them get no digest (parse_sums): the caller reads them another way."""
    chunks = [paths[at:at + per_command] for at in range(0, len(paths), per_command)]
    runs = ["%s > %s/sums.%d; echo $? > %s/hashed.%d" % (line, LISTING_DIR, n, LISTING_DIR, n)
            for n, line in enumerate(commands("sha256sum --", paths, per_command))]
    lines = ["mkdir -p %s; cd %s || exit 1" % (LISTING_DIR, shlex.quote(root))]
    for lane in range(lanes):
        if runs[lane::lanes]:
            lines.append("(\n%s\n) &" % "\n".join(runs[lane::lanes]))
    lines.append("wait")
    script = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
    files = _run_reading(side, ["sh", "/" + SCRIPT], "hashing files", script=script)
    out = {}
    for n, chunk in enumerate(chunks):
        names = b"".join(b"./" + p.encode("utf-8", "surrogateescape") + b"\0" for p in chunk)
        out.update(parse_sums(names, files.get("sums.%d" % n, b""), files.get("hashed.%d" % n, b"")))
    return out


def manifest_there(side, root, checksum):
    """The manifest of the tree at root (a path in a helper of side) made on the engine's host: its listing and,
    with checksum, sha256sum of its files there (of the volume's root: only of the files whose stat key is not the
    one side.known holds; side.known learns the rest); only the listing and the digests cross the connection.
    None when it cannot be made whole (an entry changed or vanished meanwhile, a file could not be read)."""
    own = root == side.mount
    try:
        listing, sums = side_listing(side, root, True, hashes=checksum, known=side.known if own else None)
    except DockerError:
        return None
    if own:
        side.known = as_known(listing, sums)
    hashes = dict((path, (resync.key(listing[path]), sha)) for path, sha in sums.items()
                  if path in listing and listing[path].kind == "file")
    return source_entries(listing, hashes, checksum)


class ApiSync:
    """Keeps the staged tree of dest (an ApiRoot with a new, empty staging directory) in step with the tree of
    source (an ApiRoot), pass after pass; the interface of tree_sync.TreeSync (run_pass, forget, manifests).

    On an engine with userns-remap (a side's ``ids``), the helpers that list or copy run in the host's user
    namespace: the listing shows host ids, mapped here to the containers' view (an owner outside the engine's
    namespace fails the run, as a stop_copy does), and the source's archives carry host ids, mapped the same way
    as they are forwarded. Headers and listings are in the containers' view, which the destination's engine
    maps to its own host ids as it extracts."""

    def __init__(self, source, dest, checksum=True, seed=False):
        self.source, self.dest = source, dest
        self.checksum = checksum
        self.seed_pending = seed
        self.seeded = 0
        self.record = {}
        self.hashes = {}  # path: (the stat key it had when it was sent, the sha256 of what was sent)
        self.sent = {}  # path: the sha256 of what this pass sent to it (its staged stat key is not known yet)
        self.staged_hashes = {}  # path: (the staged file's stat key when listed after it was sent, that sha256)
        self.staged_known = {}  # the staged tree's digests kept for a later re-sync: none through the Engine API
        self.listed = None  # the source's listing of the last pass
        self.staged = None  # the staged tree's listing made at the end of the last pass
        self.mount = dest.mount

    @staticmethod
    def listing(side, root, final):
        """{path: Meta} of the tree at root (a path in a helper of side), mtimes in whole seconds."""
        return side_listing(side, root, final)[0]

    def run_pass(self, final):
        """One pass; returns the summed size of the files it made (resync.plan_delta's bytes)."""
        staged_root = "%s/%s/%s" % (self.mount, STAGING, DATA)
        if self.seed_pending:
            source = self.listed = self.seed(final)
        else:
            source = self.listed = self.listing(self.source, self.mount, final)
        # only this run writes the staged tree: the listing made at the end of the pass before still holds
        staged = self.staged if self.staged is not None else self.staged_listing()
        if "" not in source:
            raise DockerError("%s: the volume's root cannot be listed; check the helper image" % self.source.subject)
        delta = resync.plan_delta(source, staged, self.record)
        for path in delta.remove:
            self.record.pop(path, None)
            self.staged_hashes.pop(path, None)
        for path in list(self.record):
            if path not in source:
                self.record.pop(path)
        if delta.remove:
            self.remove(delta.remove)
        made = [path for path in delta.make if source[path].kind != "dir"]
        for path in made:
            self.staged_hashes.pop(path, None)
        self.dest.receive_stream(staged_root, self.stream(source, made, delta.dirs, final))
        setid = [path for path in made if source[path].kind == "file" and source[path].mode & 0o6000]
        if setid:
            self.dest.fix_times([dict(path=path, type="file", mode=source[path].mode) for path in setid])
        # listed now, while a live pass's containers still run, the next pass (the last, with them stopped)
        # and the verification need no listing of the staged tree of their own
        self.staged = self.staged_listing()
        return delta.bytes

    def staged_listing(self):
        """The staged tree's listing (any failure to list it fails the run: only this run writes it); the files
        the pass before sent get their digest, keyed by the stat key listed now (the first after they were
        written)."""
        staged = self.listing(self.dest, "%s/%s/%s" % (self.mount, STAGING, DATA), True)
        for path, sha256 in self.sent.items():
            meta = staged.get(path)
            if meta is not None and meta.kind == "file":
                self.staged_hashes[path] = (resync.key(meta), sha256)
        self.sent = {}
        return staged

    def seed(self, final):
        """The first pass's listing of the source, hashed on its host (with checksum), after the files of the
        destination's visible tree (an earlier copy) that look like the source's (resync.seedable) were hard-linked
        into the empty staged tree and hashed there: they stay as they are for the containers until the verified
        staged tree replaces them (the engine's extraction replaces a file it writes, never writes into it), and
        the pass makes only the rest. The digests of both sides count while a file's stat key is the one listed
        here: the final verification reads neither volume again."""
        self.seed_pending = False
        source, sums = side_listing(self.source, self.mount, final, hashes=self.checksum, known=self.source.known)
        self.source.known.update(as_known(source, sums))
        visible, _none = side_listing(self.dest, self.mount, True, lenient=True)
        record = resync.seedable(source, visible)
        if not record:
            return source
        self._with_script(link_script(self.mount, sorted(record)),
                          "linking the files of the earlier copy into the staged copy")
        self.record.update(record)
        self.seeded = len(record)
        for path, sha in sums.items():
            meta = source.get(path)
            if meta is not None and meta.kind == "file":
                self.hashes[path] = (resync.key(meta), sha)
        # a linked file whose visible key was the known one has its digest (its ctime changed by the link only)
        carried = dict((path, resync.key(visible[path]) + (sha,)) for path, sha in
                       known_digests(visible, self.dest.known).items() if path in record)
        staged, staged_sums = side_listing(self.dest, "%s/%s/%s" % (self.mount, STAGING, DATA), True,
                                           hashes=self.checksum, known=carried, ctime=False)
        for path, sha in staged_sums.items():
            meta = staged.get(path)
            if meta is not None and meta.kind == "file":
                self.staged_hashes[path] = (resync.key(meta), sha)
        self.staged = staged
        return source

    def remove(self, paths):
        """Remove paths (relative to the staged tree) in one helper on the destination: rm -rf, no link followed."""
        lines = ["set -e", "cd %s" % shlex.quote("%s/%s/%s" % (self.mount, STAGING, DATA))]
        lines.extend(commands("rm -rf --", list(paths)))
        self._with_script(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"),
                          "removing entries of the staged copy")

    def _with_script(self, script, doing):
        """Run script (sh, bytes) in one helper on the destination, in the host's user namespace when the engine
        remaps ids; the script goes into the helper's own file system before it starts. Any failure fails the
        run."""
        dest = self.dest
        cid = dest.create_helper(["sh", "/" + SCRIPT], label="staging", host_userns=dest.ids is not None)
        try:
            dest.put_archive(cid, "/", iter(_file_tar(SCRIPT, script)))
            with api_errors(dest.subject), dest.socket_errors(doing):
                dest.api.start(cid)
                status = dest.api.wait(cid, timeout=dest.io_timeout()).get("StatusCode", 1)
                err = b"" if status == 0 else dest.api.logs(cid, stdout=False, stderr=True)
        finally:
            dest.remove_helper(cid)
        if status != 0:
            raise DockerError("%s: %s failed with status %s: %s"
                              % (dest.subject, doing, status, err.decode("utf-8", "replace").strip()[-300:]))

    def stream(self, source, made, dirs, final):
        """The tar of one pass: the entries made (from the source: whole directories where that is cheaper, see
        plan_reads, then one entry at a time), then every directory (from the listing)."""
        todo = dict((path, source[path]) for path in made)

        def done(path, sha256=None):
            meta = todo.pop(path, None)
            if meta is not None:
                self.record[path] = resync.key(meta)
                if sha256 is not None:
                    self.hashes[path] = (resync.key(meta), sha256)
                    self.sent[path] = sha256

        cid = self.source.create_helper(["true"], read_only=True)
        try:
            for top in plan_reads(source, todo, REQUEST_COST):
                if source[top].kind == "dir":
                    yield from self._tree(cid, top, todo, done, final)
            firsts = {}
            batch = batched(todo, made, BATCH_BYTES)
            if len(batch) > 1:
                yield from self._batch(batch, todo, done, final)
                for path in batch:  # the links to these files that are made anew come as links to them
                    if path not in todo and source[path].kind == "file" and source[path].nlink > 1:
                        firsts[source[path].ino] = path
            for path in made:
                if path in todo:
                    yield from self._entry(cid, path, todo[path], firsts, done, final)
        except Unmapped as exc:  # from forward(), in any pass: no later pass can copy that entry
            raise DockerError("%s: %s" % (self.source.subject, exc)) from None
        finally:
            self.source.remove_helper(cid)
        for path in dirs:
            if path:
                yield directory_header(path, source[path])
        yield bytes(2 * tarfile.BLOCKSIZE)

    def _tree(self, cid, top, todo, done, final):
        """The tree at top (a directory, '' the root) in one GET archive; only the entries in todo are sent on."""
        def rename(name):
            rel = relative(name, "")
            if rel is None:
                return None
            path = top + "/" + rel if top else rel
            return path if path in todo else None

        try:
            with self.source.socket_errors("reading"):
                stream, _stat = self.source.api.get_archive(cid, "%s/%s." % (self.mount, top + "/" if top else ""),
                                                            chunk_size=BUFFER)
                # read ahead on a thread: the socket's reads overlap the parsing, hashing and sending here
                yield from forward(buffers.prefetch(stream, depth=64), rename, done, self.checksum, self.source.ids)
        except (Broken, DockerError, APIError) as exc:
            if final:
                raise DockerError("%s: the tree changed while it was read (%s) with its containers stopped; run "
                                  "again" % (self.source.subject, exc)) from None

    def _batch(self, paths, todo, done, final):
        """The entries at paths (regular files, one per inode) copied with cp -a into the file system
        of a helper, then read in one GET archive. What did not come (it vanished or changed meanwhile) is left
        in todo for one request each."""
        lines = ["mkdir %s && cd %s || exit 1" % (BATCH_DIR, self.mount)]
        lines.extend(commands("cp -a --parents -t %s --" % BATCH_DIR, list(paths)))
        script = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
        source = self.source
        cid = source.create_helper(["sh", "/" + SCRIPT], read_only=True, label="batch",
                                   host_userns=source.ids is not None)

        def rename(name):
            path = relative(name, "")
            return path if path in todo else None

        try:
            source.put_archive(cid, "/", iter(_file_tar(SCRIPT, script)))
            with api_errors(source.subject), source.socket_errors("copying the changed entries"):
                source.api.start(cid)
                # a copy that failed (an entry gone) leaves that entry in todo: its own request says why
                source.api.wait(cid, timeout=source.io_timeout())
            with source.socket_errors("reading"):
                stream, _stat = source.api.get_archive(cid, BATCH_DIR + "/.", chunk_size=BUFFER)
                yield from forward(buffers.prefetch(stream, depth=64), rename, done, self.checksum, source.ids)
        except (Broken, DockerError, APIError) as exc:
            if final:
                raise DockerError("%s: the tree changed while it was read (%s) with its containers stopped; run "
                                  "again" % (source.subject, exc)) from None
        finally:
            source.remove_helper(cid)

    def _entry(self, cid, path, meta, firsts, done, final):
        """One entry made from the source: a hard link to a member of its group sent already, a node or a symbolic
        link from the listing, else its own GET archive."""
        if meta.kind == "file" and meta.nlink > 1 and meta.ino in firsts:
            yield link_header(path, firsts[meta.ino], meta)
            done(path)
            return
        if meta.kind in _KIND_TYPES:
            yield node_header(path, meta)
            done(path)
            return
        if meta.kind == "symlink" and meta.target is not None:
            yield symlink_header(path, meta)
            done(path)
            return
        base = path.rpartition("/")[2]

        def rename(name):
            return path if name == base else None

        sent = []
        try:
            with self.source.socket_errors("reading"):
                stream, _stat = self.source.api.get_archive(cid, "%s/%s" % (self.mount, path), chunk_size=BUFFER)
                yield from forward(stream, rename, lambda _path, sha: sent.append(sha), self.checksum,
                                   self.source.ids)
        except (Broken, DockerError, APIError) as exc:
            if final:
                raise DockerError("%s: %r changed or vanished while it was read (%s) with its containers stopped; "
                                  "run again" % (self.source.subject, path, exc)) from None
        if sent:
            done(path, sent[0])
            if meta.kind == "file" and meta.nlink > 1:
                firsts[meta.ino] = path

    def forget(self, paths):
        """Make these paths anew in the next pass (they did not verify)."""
        for path in paths:
            self.record.pop(path, None)

    def manifests(self):
        """(the source's manifest, the staged tree's manifest, {path: stat key} of the source's files with a digest
        (for its record)). The source's comes from the listing of the last pass (the containers stopped) and the
        digests of what the passes sent, each kept while the file's stat key is the one it had when it was sent:
        the source is not read again. The staged tree's comes from the listing made at the end of the last pass
        and the same digests, each kept while the staged file's stat key is the one listed first after it was
        written (as tree_sync reuses the digests of the copies it made). Either side is read whole only when a
        file has no such digest."""
        source = self.source_manifest()
        keys = self.source_keys()
        if source is None:
            source = self.source.manifest(self.checksum)
            keys = dict((path, got[:4]) for path, got in self.source.known.items())
        staged = source_entries(self.staged, self.staged_hashes, self.checksum) if self.staged is not None else None
        if staged is None:
            staged = self.dest.staged_manifest(self.checksum)
        return source, staged, keys

    def staged_keys(self):
        """{path: stat key} of the staged files whose digest the last staged listing vouches for, but those at the
        top of the tree: once the staged tree is moved into place (finish() renames its top entries), they are the
        keys of the destination's files (a rename changes the ctime of the entry renamed only), for its record."""
        staged = self.staged or {}
        return dict((path, key) for path, (key, _sha) in self.staged_hashes.items()
                    if "/" in path and path in staged and resync.key(staged[path]) == key)

    def source_keys(self):
        """{path: stat key} of the source's files whose digest the last listing vouches for (what a record of the
        source keeps)."""
        listed = self.listed or {}
        return dict((path, key) for path, (key, _sha) in self.hashes.items()
                    if path in listed and resync.key(listed[path]) == key)

    def source_manifest(self):
        """The source's manifest from the last listing and the digests sent (source_entries()), or None."""
        return source_entries(self.listed, self.hashes, self.checksum) if self.listed is not None else None


def source_entries(listed, hashes, checksum):
    """The manifest of a tree from its listing ({path: Meta}, mtimes in whole seconds) and hashes ({path:
    (stat key, sha256)}, a file's digest good while its key is the listing's), hard links grouped by inode
    (pure). None when a regular file has no good digest (with checksum) or a symbolic link no target."""
    digests = {}
    if checksum:
        for path, meta in listed.items():
            got = hashes.get(path)
            if meta.kind == "file" and got is not None and got[0] == resync.key(meta):
                digests[meta.ino] = got[1]
    entries, groups = [], {}
    for path, meta in listed.items():
        sha = None
        if meta.kind == "file":
            if meta.nlink > 1:
                groups.setdefault(meta.ino, []).append(path)
            if checksum:
                sha = digests.get(meta.ino)
                if sha is None:
                    return None
        elif meta.kind == "symlink" and meta.target is None:
            return None
        rdev = "%d:%d" % (os.major(meta.rdev), os.minor(meta.rdev)) if meta.kind in ("char", "block") else None
        entries.append(manifest.make_entry(path, meta.kind, meta.mode, meta.uid, meta.gid, size=meta.size,
                                           mtime=meta.mtime_ns // 10 ** 9, sha256=sha, target=meta.target,
                                           rdev=rdev))
    return manifest.link_groups(entries, groups.values())
