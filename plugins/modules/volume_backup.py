#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_backup
short_description: Back up a Docker volume to a tar archive, or into a restic repository
version_added: 0.1.0
description:
  - With O(repository), the volume goes into a restic repository instead (a directory, S3, SFTP, a REST server),
    encrypted and deduplicated by restic, as a snapshot tagged with the volume's name, its manifest digest and a
    run id, followed by a second snapshot holding its manifest; see O(repository) and the notes.
  - Writes the data of a named volume to a tar archive on the host the module runs on, optionally
    compressed with gzip or zstd, with two files beside it - V(<path>.manifest.json), the manifest of
    every entry (type, mode, numeric owner, size, mtime, sha256 or link target) with its digest, and
    V(<path>.sha256), the checksum of the archive in C(sha256sum) format.
  - The archive is written as V(<path>.partial) and renamed only when complete, so an interrupted run
    never leaves a file that looks like a backup.
  - Idempotent - when the three files exist, the archive matches its checksum and the volume's
    manifest equals the stored one, nothing is written.
  - When the engine is on a local Unix socket and the volume's mountpoint is readable here, the data
    is read from disk; otherwise it is streamed through the Engine API from a helper container.
  - The archive, its manifest and its checksum file are created with O(mode), 0600 by default, as
    they hold the volume's data; their temporary files are created new and a symbolic link found at
    a temporary name is refused, never followed. Files of an up-to-date backup that have another mode
    get O(mode).
  - An uncompressed archive of a volume read from disk is written past the page cache (C(O_DIRECT))
    where the file system allows it, so a backup does not push the services' data out of memory;
    elsewhere it is written through the page cache.
  - Holds the volume's lock (see O(lock_timeout)), so that a restore or a relocation of the volume does
    not change it under the backup.
extends_documentation_fragment:
  - persist.docker.restic
  - persist.docker.docker
  - persist.docker.attributes
  - persist.docker.attributes.actiongroup_docker
  - persist.docker.lock
requirements:
  - zstandard (for O(compression=zstd))
  - restic >= 0.14 (for O(repository))
notes:
  - "Snapshots in a repository (O(repository)): the data snapshot carries the tags C(persist.docker.volume=NAME),
    C(persist.docker.digest=sha256:...), C(persist.docker.run=ID), C(persist.docker.bytes=N),
    C(persist.docker.files=N) and C(persist.docker.format=tree|tar); the manifest snapshot (one file
    C(NAME.manifest.json)) the tags C(persist.docker.manifest=NAME) and the same run id. A data snapshot without
    its manifest snapshot (a run that was killed) is not used by M(persist.docker.volume_restore) nor as the
    parent of a later backup."
  - Snapshots are written with C(--host) set to the engine's name (C(docker info)), so that volumes of one name
    on several engines are told apart in one repository.
  - From the mountpoint, the volume is looked at again after restic has read it; a file changed meanwhile (a
    container that was not held still) removes the new snapshot again and fails the run, as its manifest would
    not describe it. Use O(quiesce).
attributes:
  check_mode:
    support: full
    description: Reads the volume and predicts whether a real run writes the archive.
  diff_mode:
    support: full
    description: Shows the manifest digest of the backup before and after.
  idempotent:
    support: full
    description:
      - A second run with unchanged data reports no change.
      - A run with O(exec_before) or O(exec_after) hooks reports a change, as their commands ran.
options:
  volume:
    description:
      - Name of the volume to back up.
    type: str
    required: true
  path:
    description:
      - The archive file to write, on the host the module runs on. Its directory must exist.
      - One of O(path) and O(repository) is required.
    type: path
  repository:
    description:
      - A restic repository to back the volume up into, as restic's C(-r) takes it - a directory
        (V(/srv/restic)), V(s3:https://s3.example.com/bucket/prefix), V(sftp:user@host:/srv/restic) or
        V(rest:https://user:password@host:8000/). It reaches restic through its environment, never its command
        line, and messages show it with any password replaced by C(***).
      - Read from the mountpoint (O(method=local)), the snapshot holds the volume's directory under its own name
        (C(_data) for the C(local) driver), so a plain C(restic restore ID --target /var/lib/docker/volumes/NAME)
        gives the volume's files, the owner and mode of its root included. Through the Engine API
        (O(method=api), a remote engine) the volume is stored as one file C(<volume>.tar).
      - A run where the newest complete snapshot of the volume (of this engine, see the notes) has the volume's
        current manifest digest makes no snapshot and reports no change. From the mountpoint this is decided
        without reading the data - files whose inode, size, mtime and ctime are those the previous snapshot
        recorded keep their recorded sha256 (RV(bytes_hashed) says how much was read); through the Engine API the
        volume is read to decide it.
      - Needs restic 0.14 or later on the managed host (Debian's C(restic) package).
    type: str
  init_repository:
    description:
      - Create the repository (C(restic init)) when there is none at O(repository), and say so in
        RV(initialized).
      - Set V(false) in scheduled jobs, so that a mistyped bucket or path fails instead of becoming a new, empty
        repository.
    type: bool
    default: true
  tags:
    description:
      - More restic tags for the snapshot. Names of the collection's own tags (C(persist.docker.*)) are refused.
    type: list
    elements: str
    default: []
  compression:
    description:
      - V(auto) picks by the file name - V(.gz) or V(.tgz) gzip, V(.zst) zstd, else none.
      - V(zstd) needs the Python package C(zstandard) on the managed host.
    type: str
    choices: [auto, none, gzip, zstd]
    default: auto
  quiesce:
    description:
      - How the running containers that use the volume are held still while it is copied.
      - V(pause) freezes their processes (C(docker pause)) and resumes them after the copy - a
        crash-consistent copy, as after a power cut, without restarting the services.
      - V(stop) stops them and starts them again after the copy - a clean copy, with a restart.
      - V(none) copies while they run, which can give a torn copy of data they change meanwhile.
      - When not set, V(stop) if O(stop_containers=true), else V(none) with a warning that names the
        running containers (no container is ever stopped or paused unasked). Set V(none) to accept a
        copy of the running data without the warning.
      - The containers are recorded on the host that runs the module (below
        C(/var/lib/persist-docker/quiesced), or E(PERSIST_DOCKER_STATE_DIR)) before they are stopped or
        paused; when a run is killed meanwhile, the next run on the volume (backup, restore or
        relocation) starts or unpauses them again.
    type: str
    choices: [stop, pause, none]
  stop_containers:
    description:
      - V(true) is O(quiesce=stop), kept for playbooks written before O(quiesce).
    type: bool
  force:
    description:
      - Write a new archive even when the existing one is up to date; with O(repository), a new snapshot even when
        the newest one has the volume's current manifest digest.
    type: bool
    default: false
  method:
    description:
      - How the volume is read. V(auto) reads the mountpoint when it can, else uses the Engine API.
    type: str
    choices: [auto, local, api]
    default: auto
  helper_image:
    description:
      - Image of the helper container used when the data goes through the Engine API (needs C(sh), C(find),
        C(stat) and, for a remote engine, C(sha256sum), as busybox has).
    type: str
    default: busybox:latest
  mode:
    description:
      - Permissions of the archive, its manifest and its checksum file, as an octal number in a quoted
        string (V('0640')) or an integer as YAML reads C(0640).
      - The default keeps a backup readable by root only; a volume's data often holds secrets.
    type: raw
    default: '0600'
  exclude:
    description:
      - Entries of the volume left out of the archive, as patterns with the syntax of restic 0.14's C(--exclude),
        matched against each entry's path inside the volume as if the volume's root were V(/).
      - Each component of a pattern is matched against one component of the path - C(*) matches any characters
        but V(/), C(?) one character, C([a-z]) and C([^a-z]) a class, C(\x) the character x (Go's
        C(filepath.Match)); the component C(**) matches any number of components, none included.
      - A pattern with a leading V(/) is anchored at the volume's root (V(/cache) leaves out V(cache) and all below
        it, not V(app/cache)); any other pattern matches at any depth (V(cache) leaves out V(cache), V(app/cache)
        and all below them, not V(cache2)). A trailing V(/) is ignored.
      - A pattern that starts with V(!) takes back the matches of the patterns before it (V(*.log) then
        V(!keep.log)), but never brings back an entry below an excluded directory, which is not read at all.
        Write C(\!name) for a name that starts with V(!).
      - An empty pattern, a malformed one, V(/) and patterns with a V(.) or V(..) component are refused. Quote
        patterns in YAML, where a leading C(*) or C(!) means something else.
      - The manifest beside the archive, its digest and the up-to-date check cover only the entries kept, and the
        manifest records the patterns; a backup made with other patterns is written again.
      - Through the Engine API (O(method=api)) a hard link that is kept while its other name is excluded cannot
        be read (its content comes with the other name) and the run fails; exclude both names, or neither, or use
        O(method=local).
    type: list
    elements: str
    default: []
  exec_before:
    description:
      - Commands run in running containers before the backup, in order, for example a database dump into the
        volume. They run before the containers that use the volume are stopped or paused (see O(quiesce)), so that
        the services still answer.
      - Each command runs through the Engine API's exec (as C(docker exec) without a terminal), not through a
        shell. A string is split into words like a shell does (Python's C(shlex)), but nothing in it is expanded;
        write V([sh, -c, "..."]) for a shell.
      - The containers of all hooks must exist and run, else the run fails before any hook runs.
      - A command that exits with another code than 0, or does not end within its O(exec_before[].timeout),
        stops the run - the error names the container, the command, its exit code and the last lines of its
        output; nothing is backed up and no container is stopped or paused.
      - The commands' output is not kept, but for its last 10 lines in the result and in error messages; a command
        that prints secrets puts them there. Do not put secrets on the command line either, it is in the result and
        visible in the container's process list; let the command read them in the container.
      - In check mode no command runs; each that would run is in RV(actions).
    type: list
    elements: dict
    default: []
    suboptions: &hook
      container:
        description:
          - Name or ID of the running container the command runs in, on the engine of the volume (O(docker_host)).
        type: str
        required: true
      command:
        description:
          - The command, as a list of words or as a string split into words (no shell).
        type: raw
        required: true
      user:
        description:
          - The user the command runs as (C(name), C(uid) or C(uid:gid)); the container's user when not set.
        type: str
      workdir:
        description:
          - The working directory of the command; the container's when not set.
        type: str
      timeout:
        description:
          - Seconds the command may run. When it takes longer the run fails; the command may still run in the
            container (the Engine API cannot stop it).
        type: int
        default: 3600
  exec_after:
    description:
      - Commands run in running containers after the backup, in order, once the containers that use the volume run
        again, for example to remove a dump or to unlock tables that an O(exec_before) hook locked.
      - They also run when an O(exec_before) hook or the backup failed, like a C(finally) block, and all of them run
        even when one fails; a failing one makes the run fail (the archive, when it was written, stays).
        They do not run when the run failed before any hook (a container of a hook that does not run) or when the
        module is killed.
      - Run like O(exec_before), with the same options.
    type: list
    elements: dict
    default: []
    suboptions: *hook
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: Back up the database volume, with the database stopped meanwhile
  persist.docker.volume_backup:
    volume: pgdata
    path: /srv/backup/pgdata.tar.gz
    quiesce: stop

- name: Back up the uploads with their service frozen for a crash-consistent copy
  persist.docker.volume_backup:
    volume: uploads
    path: /srv/backup/uploads.tar.zst
    quiesce: pause

- name: Back up the database volume into an encrypted restic repository on S3, its service frozen meanwhile
  persist.docker.volume_backup:
    volume: pgdata
    repository: s3:https://s3.example.com/backups/db1
    repository_password_file: /etc/persist-docker/restic.pw
    repository_env:
      AWS_ACCESS_KEY_ID: "{{ vault_s3_key_id }}"
      AWS_SECRET_ACCESS_KEY: "{{ vault_s3_secret }}"
    init_repository: false
    quiesce: pause
    tags: [nightly]
  register: snap

- name: Show what the snapshot added
  ansible.builtin.debug:
    msg: "snapshot {{ snap.snapshot_id[:8] }} added {{ snap.bytes_added }} bytes"

- name: Back up the database volume with a fresh dump in it, leaving out its cache and logs
  persist.docker.volume_backup:
    volume: appdata
    path: /srv/backup/appdata.tar.zst
    quiesce: pause
    exec_before:
      - container: db
        command: [sh, -c, 'pg_dump -U app app > /var/lib/app/dump.sql']
        timeout: 1800
    exec_after:
      - container: db
        command: rm -f /var/lib/app/dump.sql
    exclude:
      - /cache
      - "*.log"
      - "!audit.log"

- name: Back up a volume of a remote engine into a zstd archive here
  persist.docker.volume_backup:
    volume: uploads
    path: /srv/backup/uploads.tar.zst
    docker_host: tcp://docker2.example.com:2376
    validate_certs: true
"""

RETURN = r"""
path:
  description: The archive.
  returned: with O(path)
  type: str
  sample: /srv/backup/pgdata.tar.gz
manifest_path:
  description: The manifest beside the archive.
  returned: with O(path)
  type: str
  sample: /srv/backup/pgdata.tar.gz.manifest.json
checksum_path:
  description: The checksum file beside the archive.
  returned: with O(path)
  type: str
  sample: /srv/backup/pgdata.tar.gz.sha256
archive_sha256:
  description: sha256 of the archive file (V(null) in check mode when it would be written).
  returned: with O(path)
  type: str
digest:
  description: Digest of the volume's manifest.
  returned: success
  type: str
  sample: sha256:6b1c...
compression:
  description: The compression used.
  returned: with O(path)
  type: str
  sample: gzip
method:
  description: How the data was read, V(local) or V(api).
  returned: success
  type: str
bytes:
  description: Bytes of file content in the volume.
  returned: success
  type: int
files:
  description: Entries in the volume (files, directories, links), without its root.
  returned: success
  type: int
archive_size:
  description: Size of the archive file in bytes.
  returned: with O(path)
  type: int
seconds:
  description: Time the archive took to write.
  returned: success
  type: float
throughput:
  description: Bytes of content per second while writing.
  returned: success
  type: int
stopped_containers:
  description: Containers stopped for the backup and started again (O(quiesce=stop)).
  returned: success
  type: list
  elements: str
quiesced_containers:
  description: Containers stopped or paused for the backup (see O(quiesce)) and started or unpaused again.
  returned: success
  type: list
  elements: str
  sample: [db]
snapshot_id:
  description: The id of the data snapshot written, or of the newest one when the volume was unchanged; V(null) in
    check mode when one would be written.
  returned: with O(repository)
  type: str
repository:
  description: The repository, any password in it replaced by C(***).
  returned: with O(repository)
  type: str
restic_version:
  description: The version of restic that ran.
  returned: with O(repository)
  type: str
  sample: 0.14.0
initialized:
  description: Whether this run created the repository (in check mode, would create it).
  returned: with O(repository)
  type: bool
bytes_added:
  description: The data restic added to the repository, as its JSON summary reports it (before compression, on
    restic 0.14); 0 when no snapshot was written.
  returned: with O(repository)
  type: int
files_new:
  description: Files restic found new, by its summary.
  returned: with O(repository)
  type: int
files_changed:
  description: Files restic found changed, by its summary.
  returned: with O(repository)
  type: int
bytes_hashed:
  description: Bytes of file content this run read to hash them (from the mountpoint, only new and changed files).
  returned: with O(repository)
  type: int
hooks:
  description:
    - The O(exec_before) and O(exec_after) hooks that ran, in the order they ran (none in check mode).
    - C(output) holds the last lines (at most 10) of the command's output, stdout and stderr together.
  returned: success
  type: list
  elements: dict
  sample:
    - what: exec_before
      container: db
      command: [sh, -c, 'pg_dump -U app app > /var/lib/app/dump.sql']
      rc: 0
      seconds: 4.2
      output: []
actions:
  description: What was done (or would be done in check mode).
  returned: success
  type: list
  elements: str
"""

import os
import stat
import time

from ansible_collections.persist.docker.plugins.module_utils import (
    archive,
    atomic,
    buffers,
    containers,
    excludes,
    hooks,
    locking,
    manifest,
    repository,
    transfer,
)
from ansible_collections.persist.docker.plugins.module_utils import volume_access as va
from ansible_collections.persist.docker.plugins.module_utils.client import DockerModule
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError, os_errors
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager
from ansible_collections.persist.docker.plugins.module_utils.repository_backup import RepositoryBackup
from ansible_collections.persist.docker.plugins.module_utils.volumes import (
    containers_using,
    format_mode,
    inspect_volume,
    parse_mode,
)


class VolumeBackupManager(Manager):
    def run(self):
        p = self.params
        self.engine = locking.engine_id(self.dm.api, "the engine of volume '%s'" % p["volume"])
        with locking.held(self.engine, "volume", p["volume"], timeout=p["lock_timeout"]):
            if p["repository"] is not None:
                return RepositoryBackup(self, self.volume_attrs()).run()
            return self.backup()

    def volume_attrs(self):
        """The volume's inspect dict, after what a killed run left stopped or paused was started again."""
        p = self.params
        attrs = inspect_volume(self.dm.api, p["volume"])
        if attrs is None:
            raise DockerError("volume '%s' does not exist on %s; check the name and docker_host"
                              % (p["volume"], self.dm.host))
        recovered, errors = containers.recover(self.dm.api, self.engine, p["volume"], self.dm.check_mode)
        for error in errors:
            self.dm.warn(error)
        self.actions.extend(recovered)
        # Under the volume's lock: a helper container found now was left by a run that was killed.
        va.remove_stale_helpers(self.dm.api, p["volume"], self.dm.check_mode)
        return attrs

    def backup(self):
        p = self.params
        api = self.dm.api
        path, manifest_path, checksum_path = archive.archive_files(p["path"])
        mode = parse_mode(p["mode"], "mode")
        compression = archive.pick_compression(path, p["compression"])
        if compression == "zstd":
            archive.require_zstandard()
        check_archive_path(path, p["volume"])
        if p["tags"]:
            raise DockerError("tags are restic's, an option of repository; an archive (path) has none")
        exclude = excludes.of(p["exclude"], "volume '%s'" % p["volume"])
        before, after = hooks.parse(p["exec_before"], hooks.BEFORE), hooks.parse(p["exec_after"], hooks.AFTER)
        attrs = self.volume_attrs()
        side = va.open_side(api, self.dm.host, attrs, p["method"], p["helper_image"])
        ran = []
        with hooks.around(api, before, after, ran, self.act, self.dm.check_mode):
            result, digest_before, digest_after = self.write(side, path, manifest_path, checksum_path, compression,
                                                             mode, exclude)
        result["hooks"] = ran
        return self.with_diff(result, digest_before, digest_after)

    def write(self, side, path, manifest_path, checksum_path, compression, mode, exclude):
        """Write the archive unless it is up to date: (result, digest before, digest after)."""
        p = self.params
        api = self.dm.api
        patterns = list(exclude.patterns) if exclude else []
        stored = self.stored(path, manifest_path, checksum_path)
        result = dict(path=path, manifest_path=manifest_path, checksum_path=checksum_path, compression=compression,
                      method=side.how, stopped_containers=[], quiesced_containers=[],
                      seconds=0.0, throughput=0)
        current = None
        if stored is not None and not p["force"] and stored["exclude"] == patterns:
            with archive.sha256_meanwhile(path) as archive_sha256:
                current = side.manifest(True, exclude)
                unchanged = manifest.digest(current) == stored["digest"] and \
                    archive_sha256() == stored["archive_sha256"]
            if unchanged:
                return self.up_to_date(result, stored, current, mode)
        self.act("wrote %s from volume '%s'" % (path, p["volume"]))
        how = containers.backup_quiesce(p["quiesce"], p["stop_containers"])
        users = containers_using(api, p["volume"])
        if how == "none" and p["quiesce"] is None:
            warning = containers.torn_copy_warning(p["volume"], users)
            if warning:
                self.dm.warn(warning)
        if self.dm.check_mode:
            current = current if current is not None else side.manifest(True, exclude)
            result.update(archive_sha256=None, digest=manifest.digest(current), archive_size=0,
                          **manifest.summary(current))
            return result, stored and stored["digest"], result["digest"]
        with containers.containers_stopped(api, self.engine, p["volume"], how,
                                           "the backup of volume '%s'" % p["volume"], users) as held:
            result["quiesced_containers"] = held
            result["stopped_containers"] = held if how == "stop" else []
            entries = []
            counter = [0]
            start = time.monotonic()
            pool = buffers.BufferPool()
            sha, size = archive.write_archive(side.archive(True, entries, counter, pool, exclude), path, compression,
                                              pool, mode)
            seconds = time.monotonic() - start
            digest = manifest.digest(entries)
            with os_errors("writing the manifest beside %s" % path,
                           "fix the cause and run again, the volume is unchanged"):
                atomic.write_text(manifest_path, manifest.dump(entries, digest, volume=p["volume"], archive_sha256=sha,
                                                               compression=compression, exclude=patterns), mode)
                atomic.write_text(checksum_path, "%s  %s\n" % (sha, os.path.basename(path)), mode)
        summary = manifest.summary(entries)
        result.update(archive_sha256=sha, digest=digest, archive_size=size, seconds=round(seconds, 3),
                      throughput=transfer.throughput(summary["bytes"], seconds), **summary)
        return result, stored and stored["digest"], digest

    def up_to_date(self, result, stored, current, mode):
        """(result, digests) of a backup that is up to date; its files get mode if they have another one."""
        modes = files_to_chmod((result["path"], result["manifest_path"], result["checksum_path"]), mode)
        if modes and not self.dm.check_mode:
            chmod_files(modes, mode)
        self.actions.extend("set mode %s on %s" % (format_mode(mode), f) for f in modes)
        result.update(archive_sha256=stored["archive_sha256"],
                      digest=stored["digest"],
                      archive_size=os.path.getsize(result["path"]), **manifest.summary(current))
        return result, stored["digest"], stored["digest"]

    def stored(self, path, manifest_path, checksum_path):
        """The stored backup's {'digest', 'archive_sha256', 'exclude'} when its three files agree, else None.

        Whether the archive still has that sha256 is checked by the caller, while it reads the volume.
        """
        if not all(os.path.isfile(f) for f in (path, manifest_path, checksum_path)):
            return None
        try:
            with open(manifest_path) as f:
                doc = manifest.load(f.read())
        except (OSError, ValueError):
            return None
        recorded = archive.read_checksum_file(checksum_path)
        if recorded is None or recorded != doc.get("archive_sha256"):
            return None
        return dict(digest=doc["digest"], archive_sha256=recorded, exclude=doc.get("exclude", []))

    def with_diff(self, result, before, after):
        """finish() with the digests of the archive's contents before and after."""
        path = result["path"]
        return self.finish(result, {"path": path, "digest": before}, {"path": path, "digest": after})


def check_archive_path(path, volume):
    """Refuse an archive path whose directory is missing or that is a directory itself."""
    if not os.path.isdir(os.path.dirname(path) or "."):
        raise DockerError("the directory of %s does not exist; create it first" % path)
    if os.path.isdir(path):
        raise DockerError("path %s is a directory; give the path of the archive file, for example %s"
                          % (path, os.path.join(path, "%s.tar.gz" % volume)))


def files_to_chmod(paths, mode):
    """The regular files among paths whose permissions are not mode (symlinks are left alone)."""
    found = []
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) != mode:
            found.append(path)
    return found


def chmod_files(paths, mode):
    with os_errors("setting the mode of the backup files", "fix the cause and run again"):
        for path in paths:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
            try:
                os.fchmod(fd, mode)
            finally:
                os.close(fd)


def main():
    spec = dict(
        volume=dict(type="str", required=True),
        path=dict(type="path"),
        **repository.REPOSITORY_SPEC,
        init_repository=dict(type="bool", default=True),
        tags=dict(type="list", elements="str", default=[]),
        compression=dict(type="str", default="auto", choices=list(archive.COMPRESSIONS)),
        quiesce=dict(type="str", choices=list(containers.HOW)),
        stop_containers=dict(type="bool"),
        force=dict(type="bool", default=False),
        method=va.method_argument(),
        helper_image=dict(type="str", default=va.DEFAULT_HELPER_IMAGE),
        **locking.LOCK_TIMEOUT_SPEC,
        mode=dict(type="raw", default="0600"),
        exclude=dict(type="list", elements="str", default=[]),
        **hooks.argument_spec(),
    )
    DockerModule(spec, mutually_exclusive=[("quiesce", "stop_containers"), ("path", "repository"),
                                           ("repository_password", "repository_password_file")],
                 required_one_of=[("path", "repository")],
                 required_by={"repository_password": "repository", "repository_password_file": "repository"},
                 ).run(VolumeBackupManager)


if __name__ == "__main__":
    main()
