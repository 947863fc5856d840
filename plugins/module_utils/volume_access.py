# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A volume's files (or a host path), reached from this host or through the Engine API: the ONE way in.

There are two ways, with one interface and one vocabulary (the ``method`` option of the
modules: ``auto``, ``local``, ``api``):

* :class:`LocalRoot` (``how = "local"``) -- the directory itself, read and changed by this
  process: the engine is on a local Unix socket, this process is root and the mountpoint (or
  bind path) is a directory here. Every entry is reached through directory descriptors,
  never through a symlink (fdtree.py).
* :class:`ApiRoot` (``how = "api"``) -- short-lived helper containers of ``helper_image``
  (busybox: sh, find, stat, chown, tar) that mount the volume or path: ``GET
  /containers/{id}/archive`` of a helper for reading a tree, ``PUT /containers/{id}/archive``
  of one for writing a tree (a plain HTTP request with a streamed body: it works alike over
  every transport of the SDK, ssh included), ``sh -c`` for the rest. Every socket wait is
  bounded by the connection's timeout.

Both have the root operations of the volume modules (``stat()``, ``holds_data()``,
``usage()``, ``apply_ownership()``) and the steps of a staged copy (transfer.py):
``manifest()``, ``archive()``, ``receive()``, ``staged_manifest()``, ``state()``,
``finish()``. ``manifest()`` and ``archive()`` take ``exclude`` (an excludes.Excludes):
both sides then leave out the same entries. Data always flows in bounded chunks; no side ever holds a volume in memory.

:func:`volume_root` / :func:`path_root` decide which way a volume's root or a host path is
reached; :func:`open_side` / :func:`api_side` do the same for a side of a copy, aware of the
engine's userns-remap id maps (:func:`engine_id_maps`). ``client.is_local_engine`` is the one
test of whether an engine runs on this host.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import os
import shlex
import shutil
import socket
import stat
import tarfile

from ansible_collections.persist.docker.plugins.module_utils import (
    api_sync,
    archive_check,
    atomic,
    buffers,
    fdtree,
    idmap,
    manifest,
    tar_stream,
    tree_copy,
    tree_sync,
    volumes,
)
from ansible_collections.persist.docker.plugins.module_utils.client import (  # noqa: F401 is_local_engine: for callers
    DockerError,
    api_errors,
    get_or_none,
    is_local_engine,
    os_errors,
)
from ansible_collections.persist.docker.plugins.module_utils.manifest import BUFFER, STAGING
from ansible_collections.persist.docker.plugins.module_utils.tar_stream import ChunkReader
from ansible_collections.persist.docker.plugins.module_utils.transfer import DATA, STATE, parse_state

DEFAULT_HELPER_IMAGE = "busybox:latest"
# Label on helper containers, so that a leftover one is easy to find.
HELPER_LABEL = "persist.docker.helper"
# Where a helper container sees the volume root or host path.
HELPER_MOUNT = "/persist_docker_root"

# How a volume's files are reached: the modules' option method.
METHODS = ("auto", "local", "api")
# The words of the option root_access, now a deprecated alias of method (volume, volume_info, data_ownership).
ROOT_ACCESS = {"auto": "auto", "host": "local", "container": "api"}
ROOT_ACCESS_REMOVED_IN = "2.0.0"

# What to do about an OSError: of the root operations, and of a staged copy.
ROOT_HINT = "run the module as root (become: true) or set method: api"
COPY_HINT = "fix the cause and run again, the source is unchanged"
WRITE_HINT = "the run stopped, fix the cause and run again"

# The bound of a socket read or write of a helper container when the client has no timeout of its own.
DEFAULT_IO_TIMEOUT = 60

# The script of ApiRoot.fix_times() in the staging directory, beside the staged tree.
FIX_SCRIPT = "fix.sh"

_SH_ENTRIES = 'for f in .[!.]* ..?* *; do { [ -e "$f" ] || [ -L "$f" ]; } || continue; '


def method_argument(root_access=False):
    """The argument spec of the option method; with root_access, that old name as a deprecated alias
    and its words host and container as choices."""
    spec = dict(type="str", default="auto", choices=list(METHODS))
    if root_access:
        spec.update(choices=list(METHODS) + ["host", "container"], aliases=["root_access"],
                    deprecated_aliases=[dict(name="root_access", version=ROOT_ACCESS_REMOVED_IN,
                                             collection_name="persist.docker")])
    return spec


def method_of(dm):
    """The option method of a module (a DockerModule), its old words (host, container) mapped to local and
    api once, with a deprecation warning."""
    value = dm.params["method"]
    if value in ("host", "container"):
        dm.module.deprecate("method: %s (a value of the old option root_access) is deprecated; write method: %s"
                            % (value, ROOT_ACCESS[value]), version=ROOT_ACCESS_REMOVED_IN,
                            collection_name="persist.docker")
        value = dm.params["method"] = ROOT_ACCESS[value]
    return value


def _read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def engine_id_maps(api, docker_host, info=None):
    """The engine's user namespace maps: (uid_map, gid_map, note).

    Maps are lists of (container_start, host_start, size), or None when the
    engine does not remap ids. The ranges come from /etc/subuid and
    /etc/subgid of this host when the engine is local.
    """
    info = info or volumes.engine_info(api)
    local = is_local_engine(docker_host)
    try:
        return idmap.engine_maps(info.get("SecurityOptions"), info.get("DockerRootDir"),
                                 _read_text("/etc/subuid") if local else None,
                                 _read_text("/etc/subgid") if local else None)
    except idmap.IdMapError as exc:
        raise DockerError("user namespace of the engine at %s: %s" % (docker_host, exc)) from None


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
                              "data_ownership)" % (uid, gid, exc)) from None
    return ids


def host_ids(uid_map, gid_map):
    """A function mapping containers' (uid, gid) to host ids (volumes.host_ids), or None without remapping."""
    if not uid_map and not gid_map:
        return None
    return lambda uid, gid: volumes.host_ids(uid, gid, uid_map, gid_map)


class LocalRoot:
    """A volume root or host path that this process reads and changes directly.

    name names the volume in messages of a copy; uid_map and gid_map are the
    engine's userns-remap maps (engine_id_maps), for the owners of a copy.
    """

    how = "local"

    def __init__(self, path, name=None, uid_map=None, gid_map=None):
        self.path = path
        self.name = name or path
        self.ids = userns_ids(uid_map, gid_map)
        self.to_host = host_ids(uid_map, gid_map)
        self.staging = os.path.join(path, STAGING)
        self.data = os.path.join(self.staging, DATA)
        self.copies = None

    def describe(self):
        return self.path

    def _entries(self, recursive, follow=False):
        """fdtree.walk() of the root (refused when it is a symlink unless follow), or only the root unless recursive."""
        root = fdtree.open_root(self.path, follow)
        if recursive:
            return fdtree.walk(root)
        return iter([("", root, ".", os.fstat(root.fd))])

    def _root_guard(self, what):
        return os_errors("%s of %s" % (what, self.path), ROOT_HINT)

    def stat(self):
        """{'uid', 'gid', 'mode', 'exists'} of the root (host ids)."""
        with self._root_guard("stat"):
            if not os.path.lexists(self.path):
                return dict(uid=None, gid=None, mode=None, exists=False)
            st = os.stat(self.path)
        return dict(uid=st.st_uid, gid=st.st_gid, mode=stat.S_IMODE(st.st_mode), exists=True)

    def holds_data(self):
        with self._root_guard("listing"):
            if not os.path.isdir(self.path):
                return False
            with os.scandir(self.path) as found:
                return next(iter(found), None) is not None

    def usage(self):
        """{'size': bytes of regular files, 'files': regular files, 'entries': all entries below the root}."""
        size = files = entries = 0
        with self._root_guard("usage"):
            if not os.path.isdir(self.path):
                return dict(size=0, files=0, entries=0)
            for path, _parent, _name, st in self._entries(True, follow=True):
                if not path:
                    continue
                entries += 1
                if stat.S_ISREG(st.st_mode):
                    files += 1
                    size += st.st_size
        return dict(size=size, files=files, entries=entries)

    def apply_ownership(self, uid, gid, mode, recursive, check_mode):
        """chown (only what differs) and chmod the root; returns {'chown': n, 'chmod': n}.

        Every entry is changed relative to the descriptor of its directory, never
        through a symlink (fdtree), so a tree that changes meanwhile cannot lead
        the chown onto other files; a root that is a symlink is refused.
        """
        with self._root_guard("ownership"):
            if not os.path.lexists(self.path):
                if check_mode:
                    umask = os.umask(0o022)
                    os.umask(umask)
                    new = [(self.path, os.geteuid(), os.getegid(), 0o777 & ~umask)]
                    count, chmod = volumes.ownership_counts(new, uid, gid, mode)
                    return dict(chown=count, chmod=1 if chmod else 0)
                os.makedirs(self.path)
            entries = []
            root = None
            for path, parent, name, st in self._entries(recursive):
                entries.append((path, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)))
                if not path:
                    root = parent
                differs = (uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid)
                if differs and not check_mode:
                    os.chown(name, -1 if uid is None else uid, -1 if gid is None else gid, dir_fd=parent.fd,
                             follow_symlinks=False)
            count, chmod = volumes.ownership_counts(entries, uid, gid, mode)
            if chmod and not check_mode:
                os.fchmod(root.fd, mode)
        return dict(chown=count, chmod=1 if chmod else 0)

    def _guard(self, what):
        return os_errors("volume '%s': %s" % (self.name, what), COPY_HINT)

    def manifest(self, checksum, exclude=None):
        with self._guard("reading %s" % self.path):
            return manifest.from_directory(self.path, checksum, self.ids, exclude=exclude)

    def manifest_known(self, checksum, known=None, stats=None, vanished_ok=False):
        """manifest() reusing the digests of files whose stat key did not change (manifest.from_directory); with
        vanished_ok, entries removed while it is read (by containers that still run) are left out."""
        with self._guard("reading %s" % self.path):
            return manifest.from_directory(self.path, checksum, self.ids, known=known, stats=stats,
                                           vanished_ok=vanished_ok)

    def open_sync(self, source, checksum, *, seed=False, src_known=None, seed_known=None):
        """A new staging directory kept in step with source (a LocalRoot) pass after pass (tree_sync.TreeSync);
        with seed, its first pass links the files of the visible tree that look like the source's."""
        self.reset_staging()
        with self._guard("making the staging directory"):
            staging = self._staging_dir()
            os.mkdir(DATA, 0o700, dir_fd=staging.fd)
        return tree_sync.TreeSync(source.path, functools.partial(self._staging_dir, DATA), src_ids=source.ids,
                                  dst_ids=self.ids, to_host=self.to_host, checksum=checksum,
                                  seed_root=self.path if seed else None, src_known=src_known, seed_known=seed_known)

    def staged_manifest(self, checksum):
        with self._guard("reading the staged copy"):
            return manifest.from_directory(fdtree.open_below(self.path, STAGING + "/" + DATA), checksum, self.ids,
                                           known=self.copies)

    def archive(self, checksum, entries, counter, pool=None, exclude=None):
        return tar_stream.local_tar(self.path, entries, checksum, self.ids, counter, pool, exclude)

    def _staging_dir(self, rel=""):
        """The staging directory (or rel below it) opened by descriptor: a symlink planted there is refused."""
        return fdtree.open_below(self.path, STAGING + ("/" + rel if rel else ""))

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
            for name in os.listdir(self.path):
                if name != STAGING:
                    _remove_entry(os.path.join(self.path, name))

    def promote(self, root_entry):
        with self._guard("moving the verified copy into place"):
            root = fdtree.open_root(self.path)
            if os.path.lexists(self.data):
                data = self._staging_dir(DATA)
                for name in os.listdir(data.fd):
                    os.rename(name, name, src_dir_fd=data.fd, dst_dir_fd=root.fd)
            uid, gid = root_entry["uid"], root_entry["gid"]
            if self.to_host is not None:
                uid, gid = self.to_host(uid, gid)
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
            with self._guard("writing the copy to disk"):
                # durable before 'verified': the next step removes the old data
                root = fdtree.open_root(self.path)
                atomic.sync_file_system(root.fd)
            self.set_state("verified", digest)
            word = "verified"
        if word == "verified":
            self.clear_root()
            self.set_state("moving", digest)
        self.promote(root_entry)
        self.remove_staging()

    def receive(self, chunks):
        """Extract a tar stream (members './...') into a new staging directory."""
        self._extract(functools.partial(tar_stream.extract_tar, chunks))

    def receive_archive(self, path, counter, check=None):
        """Extract an uncompressed archive file into a new staging directory; check: see extract_tar()."""
        self._extract(functools.partial(tar_stream.extract_tar_file, path, counter=counter, check=check))

    def receive_members(self, pairs):
        """Extract members parsed elsewhere (tar_stream.extract_members) into a new staging directory."""
        self._extract(functools.partial(tar_stream.extract_members, pairs))

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
        """Copy source (a LocalRoot) into a new staging directory; return the source's manifest."""
        self.reset_staging()
        with os_errors("copy of volume '%s' to '%s'" % (source.name, self.name), COPY_HINT):
            entries, self.copies = tree_copy.copy_tree(source.path, self.data, checksum, src_ids=source.ids,
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


class ApiRoot:
    """A volume root or host path reached through a short-lived helper container.

    The helper runs ``helper_image`` (it needs a POSIX shell with find, stat,
    cp, ln, chown, chmod, wc, awk and sha256sum, as busybox has) as root, without network, and
    with the host's user namespace when the engine remaps ids, so that it
    sees and sets host ids as LocalRoot does.
    """

    how = "api"
    mount = HELPER_MOUNT

    def __init__(self, api, source, helper_image, host=None, id_maps=None, *, host_userns=False, is_path=False):
        self.api = api
        self.source = source
        self.name = source
        self.helper_image = helper_image
        self.host_userns = host_userns
        self.is_path = is_path
        # With userns-remap, Engine 20.10 archives a container's files with their host ids: map them back
        # to the containers' view (in which PUT /containers/{id}/archive takes them).
        self.ids = userns_ids(*id_maps) if id_maps else None
        self.subject = "volume '%s' on %s (through the Engine API)" % (source, host or "the engine")
        self._has_image = False
        # A remote engine's trees are listed and hashed on its own host (api_sync.manifest_there): a manifest
        # then sends its listing and digests over the connection, not the data.
        self.hash_there = host is not None and not is_local_engine(host)
        # {path: (ino, size, mtime_ns, ctime_ns, sha256)} of the volume's files (mtimes in whole seconds, as its
        # listings have them): digests good while a file's stat key is that one (a record of an earlier run, and
        # what this run hashed); a manifest made here hashes only the other files
        self.known = {}

    def describe(self):
        return ("host path %s" if self.is_path else "volume %s") % self.source + " (through a helper container)"

    def _require_image(self):
        """DockerError unless the helper image is on the engine; looked up once (over ssh:// each request costs a
        round trip)."""
        if self._has_image:
            return
        if get_or_none("image '%s'" % self.helper_image, self.api.inspect_image, self.helper_image) is None:
            raise DockerError("helper image %s is not on the engine of %s; pull or load it there, or set "
                              "helper_image to an image with a POSIX shell, find, stat, cp, ln, chown and "
                              "sha256sum (busybox)"
                              % (self.helper_image, ("host path %s" if self.is_path else "volume '%s'") % self.source))
        self._has_image = True

    def run(self, script):
        """Run ``script`` with sh in a helper container; return its stdout."""
        api = self.api
        subject = "helper container (%s) for %s" % (self.helper_image, self.describe())
        self._require_image()
        with api_errors(subject):
            # Mounts, not Binds: a missing host path is an error rather than created (also in check mode),
            # and an empty volume is not filled from the image.
            mount = {"Target": HELPER_MOUNT, "Source": self.source, "ReadOnly": False,
                     "Type": "bind" if self.is_path else "volume"}
            if not self.is_path:
                mount["VolumeOptions"] = {"NoCopy": True}
            host_config = api.create_host_config(mounts=[mount], network_mode="none",
                                                 userns_mode="host" if self.host_userns else None)
            created = api.create_container(self.helper_image, command=["sh", "-c", script], user="0:0",
                                           entrypoint=[], host_config=host_config, labels={HELPER_LABEL: "volume-root"})
            try:
                api.start(created["Id"])
                status = api.wait(created["Id"]).get("StatusCode", 1)
                out = api.logs(created["Id"], stdout=True, stderr=False).decode("utf-8", "replace")
                err = "" if status == 0 else api.logs(created["Id"], stdout=False, stderr=True).decode(
                    "utf-8", "replace")
            finally:
                api.remove_container(created["Id"], force=True)
        if status != 0 and "no such file" in (err or out).lower() and self.is_path:
            raise DockerError("host path %s does not exist on the engine's host; create it first" % self.source)
        if status != 0:
            raise DockerError("%s failed with status %s: %s" % (subject, status, (err or out).strip()[-300:]))
        return out

    def stat(self):
        out = self.run("stat -c '%%u %%g %%a' %s" % HELPER_MOUNT).split()
        return dict(uid=int(out[0]), gid=int(out[1]), mode=int(out[2], 8), exists=True)

    def holds_data(self):
        out = self.run("ls -A %s | head -n 1 | wc -l" % HELPER_MOUNT)
        return out.strip() not in ("", "0")

    def usage(self):
        r = HELPER_MOUNT
        out = self.run("find %s -mindepth 1 | wc -l; find %s -type f | wc -l; "
                       "find %s -type f -exec stat -c %%s {} + | awk '{s+=$1} END {print s+0}'" % (r, r, r)).split()
        return dict(entries=int(out[0]), files=int(out[1]), size=int(float(out[2])))

    def apply_ownership(self, uid, gid, mode, recursive, check_mode):
        r = HELPER_MOUNT
        conditions = []
        if uid is not None:
            conditions.append("! -user %d" % uid)
        if gid is not None:
            conditions.append("! -group %d" % gid)
        depth = "" if recursive else "-maxdepth 0 "
        lines = []
        if conditions:
            expr = "%s %s\\( %s \\)" % (r, depth, " -o ".join(conditions))
            lines.append("find %s | wc -l" % expr)
            if not check_mode:
                spec = "%s%s" % ("" if uid is None else uid, "" if gid is None else ":%d" % gid)
                lines.append("find %s -exec chown -h %s {} +" % (expr, shlex.quote(spec)))
        else:
            lines.append("echo 0")
        if mode is not None:
            lines.append("m=$(stat -c %%a %s); if [ $((0$m)) -ne %d ]; then echo 1; %s else echo 0; fi"
                         % (r, mode, "" if check_mode else "chmod %o %s;" % (mode, r)))
        else:
            lines.append("echo 0")
        out = self.run("set -e; " + "; ".join(lines)).split()
        return dict(chown=int(out[0]), chmod=int(out[1]))

    def create_helper(self, command, read_only=False, label="transfer", host_userns=False):
        """A helper container (created, not started) that mounts the volume; with host_userns it runs in the
        host's user namespace (it then sees host ids on an engine that remaps them)."""
        self._require_image()
        with api_errors(self.subject):
            host_config = self.api.create_host_config(
                binds=["%s:%s:%s" % (self.name, HELPER_MOUNT, "ro" if read_only else "rw")], network_mode="none",
                userns_mode="host" if host_userns else None)
            return self.api.create_container(self.helper_image, command=command, user="0:0", entrypoint=[],
                                             host_config=host_config, labels={HELPER_LABEL: label})["Id"]

    def remove_helper(self, cid):
        # Best effort: the engine may be gone, and that error is reported already.
        with contextlib.suppress(Exception):
            self.api.remove_container(cid, force=True)

    def _archive(self, path):
        """Yield the chunks of GET /containers/{id}/archive?path=path of a helper container, read ahead on a
        thread while the caller works on them."""
        return buffers.prefetch(self._archive_stream(path), depth=64)  # the engine sends chunks of 32 KiB

    def _archive_stream(self, path):
        cid = self.create_helper(["true"], read_only=True)
        try:
            with api_errors(self.subject), self.socket_errors("reading"):
                stream, _stat = self.api.get_archive(cid, path, chunk_size=BUFFER)
                yield from stream
        finally:
            self.remove_helper(cid)

    def io_timeout(self):
        """Seconds a socket read or write of this side may block: the connection's timeout option."""
        timeout = getattr(self.api, "timeout", None)
        return timeout if isinstance(timeout, (int, float)) and timeout > 0 else DEFAULT_IO_TIMEOUT

    @contextlib.contextmanager
    def socket_errors(self, doing):
        try:
            yield
        except (socket.timeout, OSError) as exc:
            cause = "no answer for %s seconds" % self.io_timeout() if isinstance(exc, socket.timeout) else \
                exc.strerror or exc
            raise DockerError("%s: lost the helper container or the Docker daemon while %s (%s); the run stopped "
                              "and the next run finishes the job" % (self.subject, doing, cause)) from None

    def archive(self, checksum, entries, counter, pool=None, exclude=None):
        builder = manifest.TarManifest(".", exclude)
        # parsed and hashed on a thread too: the consumer sends (or writes) meanwhile
        yield from buffers.prefetch(tar_stream.tee_tar(self._archive(HELPER_MOUNT + "/."), builder, checksum,
                                                       counter, self.ids), depth=8)  # pieces of at most 1 MiB
        entries.extend(builder.result())

    def manifest(self, checksum, exclude=None, there=False):
        """The volume's manifest: made on the engine's host (api_sync.manifest_there, which hashes only the files
        whose digest self.known does not hold) for a remote engine, with known digests, or when there is true;
        else read through the Engine API and hashed here."""
        entries = api_sync.manifest_there(self, HELPER_MOUNT, checksum) \
            if exclude is None and (there or self.hash_there or self.known) else None
        if entries is not None:
            return entries
        self.known = {}
        return manifest.from_tar_stream(io.BufferedReader(ChunkReader(self._archive(HELPER_MOUNT + "/.")), BUFFER),
                                        ".", checksum, self.ids, exclude)

    def staged_manifest(self, checksum):
        staged = "%s/%s/%s" % (HELPER_MOUNT, STAGING, DATA)
        entries = api_sync.manifest_there(self, staged, checksum) if self.hash_there else None
        if entries is not None:
            return entries
        return manifest.from_tar_stream(
            io.BufferedReader(ChunkReader(self._archive("%s/%s/%s" % (HELPER_MOUNT, STAGING, DATA))), BUFFER),
            DATA, checksum, self.ids)

    def state(self):
        out = self.run('S=%s/%s; if [ -f "$S/%s" ]; then cat "$S/%s"; elif [ -e "$S" ]; then echo partial; '
                       'else echo none; fi' % (HELPER_MOUNT, STAGING, STATE, STATE)).strip()
        return None if out == "none" else parse_state(out if out != "partial" else None)

    def finish(self, state, root_entry):
        """Steps 2-4 of the staging protocol in one helper container, in the same order as LocalRoot."""
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
        """Extract a tar stream (members './...') into the staging directory: PUT /containers/{id}/archive
        of a helper container that mounts the volume (it never runs)."""
        staging = "%s/%s" % (HELPER_MOUNT, STAGING)
        cid = self.create_helper(["true"], label="receive")
        try:
            self._new_staging(cid)
            self.put_archive(cid, "%s/%s" % (staging, DATA), chunks)
        except archive_check.Refused as exc:
            self.run("rm -rf %s" % staging)
            raise DockerError("%s: %s; the volume's data is unchanged" % (self.subject, exc)) from None
        finally:
            self.remove_helper(cid)

    def open_sync(self, source, checksum, *, seed=False, src_known=None, seed_known=None):  # noqa: ARG002
        """A new, empty staging directory kept in step with source (an ApiRoot) pass after pass through the
        Engine API (api_sync.ApiSync); with seed, its first pass starts from the files of the visible tree that
        look like the source's. The known digests are for a LocalRoot: here both trees are hashed on their own
        hosts."""
        cid = self.create_helper(["true"], label="receive")
        try:
            self._new_staging(cid)
        finally:
            self.remove_helper(cid)
        return api_sync.ApiSync(source, self, checksum, seed=seed)

    def _new_staging(self, cid):
        """A new, empty staging directory with its data directory, through helper cid (which never runs)."""
        staging = "%s/%s" % (HELPER_MOUNT, STAGING)
        if self._exists(cid, staging):
            self.run("rm -rf %s" % staging)  # what a run that stopped left (the plan discarded it)
        # the staging directories come in as a tar too: no helper has to run for them
        self.put_archive(cid, HELPER_MOUNT, iter(_directories_tar(STAGING, "%s/%s" % (STAGING, DATA))))

    def receive_stream(self, path, chunks):
        """Extract a tar stream at path (below HELPER_MOUNT) with a helper that never runs."""
        cid = self.create_helper(["true"], label="receive")
        try:
            self.put_archive(cid, path, chunks)
        except archive_check.Refused as exc:
            raise DockerError("%s: %s; the volume's data is unchanged" % (self.subject, exc)) from None
        finally:
            self.remove_helper(cid)

    def fix_times(self, entries):
        """Set what the engine's extraction of the tree leaves out; its times are right.

        The chown of a hard link clears the setuid and setgid bits of the file it links to (Engine
        20.10 sets no mode on a hard link): those files get their mode again. The script goes in
        like the tree (an argument of sh -c is limited to 128 KiB) and runs in a helper container
        that mounts the volume; without such files nothing runs. The engine also skips the member
        '.', but the staged root's owner and mode are not used: finish() gives the volume's root
        those of the source's.
        """
        lines = ["set -e", "cd %s/%s/%s" % (HELPER_MOUNT, STAGING, DATA)]
        lines.extend("chmod %o -- %s" % (entry["mode"], shlex.quote(entry["path"]))
                     for entry in manifest.canonical(entries) if entry["type"] == "file" and entry["mode"] & 0o6000)
        if len(lines) == 2:
            return
        script = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
        member = tarfile.TarInfo(FIX_SCRIPT)
        member.size, member.mode = len(script), 0o600
        staging = "%s/%s" % (HELPER_MOUNT, STAGING)
        cid = self.create_helper(["true"], label="receive")
        try:
            self.put_archive(cid, staging, iter([member.tobuf(format=tarfile.GNU_FORMAT), script,
                                                 b"\0" * (-len(script) % 512 + 1024)]))
        finally:
            self.remove_helper(cid)
        self.run('sh %s/%s && rm -f %s/%s' % (staging, FIX_SCRIPT, staging, FIX_SCRIPT))

    def _exists(self, cid, path):
        """Whether path exists in helper cid (HEAD /containers/{cid}/archive: no helper has to run)."""
        api = self.api
        with api_errors(self.subject):
            res = api.head(api._url("/containers/{0}/archive", cid), params={"path": path}, timeout=self.io_timeout())
            if res.status_code == 404:
                return False
            api._raise_for_status(res)
        return True

    def put_archive(self, cid, path, chunks):
        """Stream chunks (a tar archive) to PUT /containers/{cid}/archive?path=path, bounded by the io timeout.

        The body is sent as it comes (chunked transfer encoding), never held in memory. It is the
        request of the SDK's put_archive() with noOverwriteDirNonDir: like tar -x, the engine then
        refuses to replace a directory with a non-directory (or the reverse) instead of removing it.
        The ids of the tar headers are kept (mapped through the engine's userns-remap, as tar -x in a
        helper container did). An error of the source's own reading is not the helper's: it is raised
        as it is.
        """
        failed = []

        def body():
            try:
                yield from chunks
            except Exception as exc:  # pylint: disable=broad-exception-caught
                failed.append(exc)

        api, stream = self.api, body()
        try:
            with api_errors(self.subject):
                res = api._put(api._url("/containers/{0}/archive", cid), data=stream, timeout=self.io_timeout(),
                               params={"path": path, "noOverwriteDirNonDir": "true"})
                api._raise_for_status(res)
        except DockerError as exc:
            if failed:
                raise failed[0] from None
            raise self._write_error(cid, exc) from None
        finally:
            stream.close()  # an engine that answered before the end: the source stops now
        if failed:
            raise failed[0]

    def _write_error(self, cid, exc):
        """The DockerError of a failed write to helper cid (exc: what api_errors made of it)."""
        text = str(exc)[len(self.subject) + 2:] if str(exc).startswith(self.subject + ": ") else str(exc)
        if get_or_none("the helper container of %s" % self.subject, self.api.inspect_container, cid) is None:
            cause = "lost the helper container while writing (it was removed)"
        elif "timed out" in text.lower():
            cause = "lost the helper container while writing (no answer for %s seconds)" % self.io_timeout()
        elif text.endswith(" not found on the Docker daemon"):
            cause = "the directory the copy goes into is gone while writing (another process removed it)"
        else:
            cause = "writing failed: %s" % text
        return DockerError("%s: %s; %s" % (self.subject, cause, WRITE_HINT))


def _directories_tar(*names):
    """A tar stream of empty directories (mode 0700, owned by root), in the order given."""
    headers = []
    for name in names:
        member = tarfile.TarInfo(name)
        member.type, member.mode = tarfile.DIRTYPE, 0o700
        headers.append(member.tobuf(format=tarfile.GNU_FORMAT))
    return headers + [bytes(2 * tarfile.BLOCKSIZE)]


def stale_helpers(api, volume):
    """Ids of transfer helper containers left on volume by a run that was killed."""
    with api_errors("helper containers of volume '%s'" % volume):
        found = api.containers(all=True, filters={"label": HELPER_LABEL, "volume": volume})
    return [c["Id"] for c in found]


def remove_helpers(api, ids):
    for cid in ids:
        with api_errors("helper container %s" % cid[:12]):
            api.remove_container(cid, force=True)


def remove_stale_helpers(api, volume, check_mode):
    """Remove (unless check_mode) the helper containers a killed run left on volume; their ids.

    Call it under the volume's lock: a helper found then belongs to no live run."""
    ids = stale_helpers(api, volume)
    if not check_mode:
        remove_helpers(api, ids)
    return ids


def _usable_locally(docker_host, path, method):
    if method == "api":
        return False
    usable = is_local_engine(docker_host) and os.geteuid() == 0 and os.path.isabs(path or "")
    if method == "local" and not usable:
        raise DockerError("method is local but %s is not a directory this module can change as root on a local "
                          "engine; use method: auto or api" % path)
    return usable


def volume_root(api, docker_host, attrs, *, helper_image=DEFAULT_HELPER_IMAGE, method="auto", host_userns=False):
    """How to reach the root of the volume ``attrs`` (inspect dict): a LocalRoot or an ApiRoot.

    Local mountpoint when the engine is on a local Unix socket, this process
    is root and the directory exists here (plain local volumes), or the bind
    path of a local bind volume; otherwise a helper container that mounts the
    volume (this also mounts nfs, tmpfs and plugin volumes). method (METHODS)
    forces one way: local fails when it is not possible.
    """
    kind = volumes.volume_kind(attrs)
    if kind == "bind":
        return path_root(api, docker_host, attrs["Options"]["device"], helper_image=helper_image,
                         method=method, host_userns=host_userns)
    if kind == "plain" and method != "api":
        mountpoint = attrs.get("Mountpoint")
        if _usable_locally(docker_host, mountpoint, method) and os.path.isdir(mountpoint):
            return LocalRoot(mountpoint)
    elif method == "local":
        raise DockerError("volume '%s' (%s) is mounted only inside containers; use method: auto or api"
                          % (attrs.get("Name"), kind))
    return ApiRoot(api, attrs["Name"], helper_image, host_userns=host_userns)


def path_root(api, docker_host, path, *, helper_image=DEFAULT_HELPER_IMAGE, method="auto", host_userns=False):
    """How to reach host path ``path`` of the engine's host: a LocalRoot or an ApiRoot.

    A helper container bind-mounts the path (the Engine creates it if missing).
    """
    if not os.path.isabs(path or ""):
        raise DockerError("path %r is not absolute; give the full host path" % (path,))
    if _usable_locally(docker_host, path, method):
        return LocalRoot(os.path.normpath(path))
    return ApiRoot(api, os.path.normpath(path), helper_image, host_userns=host_userns, is_path=True)


def open_side(api, docker_host, attrs, method, helper_image):
    """A side of a copy for volume attrs (inspect dict): a LocalRoot when volume_root() says the
    mountpoint is usable here (and method allows it), else api_side()."""
    root = volume_root(api, docker_host, attrs, helper_image=helper_image, method=method)
    if isinstance(root, LocalRoot):
        uid_map, gid_map, _note = engine_id_maps(api, docker_host)
        return LocalRoot(root.path, attrs["Name"], uid_map, gid_map)
    return api_side(api, docker_host, attrs["Name"], helper_image)


def api_side(api, docker_host, name, helper_image):
    """An ApiRoot of volume name as a side of a copy, aware of the engine's userns-remap id maps."""
    uid_map, gid_map, _note = engine_id_maps(api, docker_host)
    return ApiRoot(api, name, helper_image, docker_host, (uid_map, gid_map) if uid_map or gid_map else None)
