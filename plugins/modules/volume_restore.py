#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_restore
short_description: Restore a Docker volume from an archive or a restic snapshot made by volume_backup, verified
version_added: 0.1.0
description:
  - With O(repository), restores a snapshot of a restic repository written by M(persist.docker.volume_backup)
    instead - the newest complete one of the volume unless O(snapshot) names one. Its manifest comes from the
    manifest snapshot of the same run; the data comes as the tar stream of C(restic dump) and goes through the
    same member checks, staging, verification and crash safety as an archive.
  - Checks the archive against its V(<path>.sha256) file and reads its manifest
    (V(<path>.manifest.json)), extracts it into a staging directory of the volume (creating the volume
    when it does not exist), compares the extracted tree with the manifest and only then moves it into
    place. The archive's sha256 is checked before anything changes; into a volume that no container
    uses, reached through its mountpoint, it is computed while the archive is extracted instead, and a
    damaged archive removes the staging directory (and the volume, if the run created it) before
    anything is used.
  - Each member of the archive is checked against the manifest before it is written - its name, type,
    size, link target or device - and the manifest must describe a tree (no absolute or C(..) path,
    nothing below a symbolic link). A member the manifest does not list, or one that would lead
    outside the volume, fails the restore and removes the staged data; the volume is unchanged. On
    this host every entry is written through the descriptors of its directories, never through a
    symbolic link.
  - Refuses a volume that holds other data unless O(force=true), which replaces that data.
  - Crash-safe - a run killed at any point leaves the staged data in a hidden directory
    (V(.persist-docker-staging)) and the next run finishes or starts over. Only a staged copy of this
    very archive (same manifest digest) is finished, after it is verified; any other leftover staging
    directory guards the volume as other data does (see O(force)).
  - Holds the volume's lock (see O(lock_timeout)) from reading its state to its end, so that a second run
    on the volume waits instead of taking over the first one's staging or helpers.
  - Idempotent - a volume whose content already equals the manifest reports no change.
  - When the engine is on a local Unix socket and the volume's mountpoint is writable here, the
    archive is extracted straight into the volume's directory; otherwise a helper container
    (O(helper_image)) writes it through the Engine API, so the engine may be remote. Either way holes
    of sparse files are written as zeros, as C(tar -x) does.
extends_documentation_fragment:
  - persist.docker.restic
  - persist.docker.docker
  - persist.docker.attributes
  - persist.docker.attributes.actiongroup_docker
  - persist.docker.lock
requirements:
  - zstandard (for O(compression=zstd))
  - restic >= 0.14 (for O(repository))
attributes:
  check_mode:
    support: full
    description: Verifies the archive and predicts whether a real run restores.
  diff_mode:
    support: full
    description: Shows the volume's manifest digest before and after.
  idempotent:
    support: full
    description: A second run reports no change.
options:
  volume:
    description:
      - Name of the volume to restore into. Created (driver C(local)) when it does not exist.
    type: str
    required: true
  path:
    description:
      - The archive written by M(persist.docker.volume_backup), on the host the module runs on.
      - One of O(path) and O(repository) is required.
    type: path
  repository:
    description:
      - The restic repository that M(persist.docker.volume_backup) wrote the snapshot into, as restic's C(-r)
        takes it (a directory, V(s3:...), V(sftp:...), V(rest:...)). It reaches restic through its environment
        only.
      - Needs restic 0.14 or later on the managed host.
    type: str
  snapshot:
    description:
      - The snapshot to restore - V(latest) (the newest complete snapshot of the volume, from any engine), or the
        id of a data snapshot (at least its first 8 hex digits), as M(persist.docker.backup_info) lists them.
    type: str
    default: latest
  snapshot_volume:
    description:
      - The name of the volume whose snapshots are meant, when it is not O(volume) (restoring into a volume of
        another name).
    type: str
  compression:
    description:
      - V(auto) uses the compression recorded in the manifest.
    type: str
    choices: [auto, none, gzip, zstd]
    default: auto
  force:
    description:
      - Replace the data of a volume that holds other data, or a staging directory that an interrupted
        run left with a copy of other data.
    type: bool
    default: false
  stop_containers:
    description:
      - Stop the running containers that use the volume while it is restored, and start them again.
      - They are recorded on the host that runs the module (below C(/var/lib/persist-docker/quiesced), or
        E(PERSIST_DOCKER_STATE_DIR)) before they are stopped; when a run is killed meanwhile, the next
        run on the volume (restore, backup or relocation) starts them again.
    type: bool
    default: true
  method:
    description:
      - How the volume is written. V(auto) writes the mountpoint when it can, else uses the Engine API.
    type: str
    choices: [auto, local, api]
    default: auto
  helper_image:
    description:
      - Image of the helper containers that read and write the volume through the Engine API (needs
        C(sh), C(find), C(stat) and, for a remote engine, C(sha256sum), as busybox has).
    type: str
    default: busybox:latest
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: Restore the database volume from last night's backup
  persist.docker.volume_restore:
    volume: pgdata
    path: /srv/backup/pgdata.tar.gz

- name: Restore the newest snapshot of pgdata from an S3 repository, onto this engine
  persist.docker.volume_restore:
    volume: pgdata
    repository: s3:https://s3.example.com/backups/db1
    repository_password_file: /etc/persist-docker/restic.pw
    repository_env:
      AWS_ACCESS_KEY_ID: "{{ vault_s3_key_id }}"
      AWS_SECRET_ACCESS_KEY: "{{ vault_s3_secret }}"

- name: Restore one snapshot of pgdata into a scratch volume
  persist.docker.volume_restore:
    volume: pgdata_drill
    snapshot_volume: pgdata
    snapshot: 4f9a0c3e
    repository: /srv/restic
    repository_password_file: /etc/persist-docker/restic.pw

- name: Replace the content of a volume with an archive
  persist.docker.volume_restore:
    volume: uploads
    path: /srv/backup/uploads.tar.zst
    force: true
    lock_timeout: 30
"""

RETURN = r"""
digest:
  description: Digest of the manifest the volume now matches.
  returned: success
  type: str
  sample: sha256:6b1c...
archive_sha256:
  description: sha256 of the archive, as checked against the checksum file.
  returned: with O(path)
  type: str
snapshot_id:
  description: The id of the snapshot restored.
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
bytes:
  description: Bytes of file content restored.
  returned: success
  type: int
files:
  description: Entries restored (files, directories, links), without the root.
  returned: success
  type: int
seconds:
  description: Time the restore took.
  returned: success
  type: float
throughput:
  description: Bytes of content per second.
  returned: success
  type: int
created:
  description: Whether the volume was created.
  returned: success
  type: bool
method:
  description: How the volume is written - V(local) (its directory) or V(api) (a helper container).
  returned: success, except in check mode for a volume that does not exist yet
  type: str
  sample: local
stopped_containers:
  description: Containers stopped for the restore and started again.
  returned: success
  type: list
  elements: str
actions:
  description: What was done (or would be done in check mode).
  returned: success
  type: list
  elements: str
"""

import contextlib
import os
import time

from ansible_collections.persist.docker.plugins.module_utils import (
    archive,
    archive_check,
    containers,
    locking,
    manifest,
    repository,
    restic,
    transfer,
)
from ansible_collections.persist.docker.plugins.module_utils import volume_access as va
from ansible_collections.persist.docker.plugins.module_utils.client import DockerModule, api_errors
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager
from ansible_collections.persist.docker.plugins.module_utils.volumes import (
    containers_using,
    inspect_volume,
    require_lasting,
)


class VolumeRestoreManager(Manager):
    def load_archive(self):
        """Check the archive against its checksum file and return (doc, sha256, compression)."""
        path, manifest_path, checksum_path = archive.archive_files(self.params["path"])
        for f, what in ((path, "archive"), (manifest_path, "manifest"), (checksum_path, "checksum file")):
            if not os.path.isfile(f):
                raise DockerError("the %s %s does not exist or is not a file; give the path of an archive written by "
                                  "persist.docker.volume_backup" % (what, f))
        try:
            with open(manifest_path) as f:
                doc = manifest.load(f.read())
        except (OSError, ValueError) as exc:
            raise DockerError("the manifest %s cannot be used (%s); restore from another backup"
                              % (manifest_path, exc)) from None
        try:
            archive_check.index(doc["entries"])
        except archive_check.Refused as exc:
            raise DockerError("%s: %s" % (manifest_path, exc)) from None
        recorded = archive.read_checksum_file(checksum_path)
        if recorded != doc.get("archive_sha256"):
            raise DockerError("the archive %s: its checksum file %s says %s, but its manifest says %s: it is damaged "
                              "or was changed; nothing was restored, use another backup"
                              % (path, checksum_path, recorded, doc.get("archive_sha256")))
        compression = self.params["compression"]
        if compression == "auto":
            compression = doc.get("compression") or archive.pick_compression(path, "auto")
        if compression == "zstd":
            archive.require_zstandard()
        return doc, recorded, compression

    def check_sha256(self, actual, recorded):
        """DockerError unless the archive's sha256 is the one its checksum file records."""
        path, _manifest_path, checksum_path = archive.archive_files(self.params["path"])
        if actual != recorded:
            raise DockerError("the archive %s has sha256 %s, but %s says %s: it is damaged or was changed; nothing "
                              "was restored, use another backup" % (path, actual, checksum_path, recorded))

    def load_snapshot(self):
        """The snapshot to restore, its manifest checked: (doc, None, 'none'); self.source reads it."""
        p = self.params
        repo = repository.open_repository(self.dm, p)
        self.restic_version = repo.version()
        name = p["snapshot_volume"] or p["volume"]
        restic.volume_tag(name)
        snapshot = repository.pick_snapshot(repository.snapshots_of(repo, name), p["snapshot"], name, repo.subject)
        doc = repository.load_manifest(repo, snapshot, name,
                                       repository.stat_cache_path(p["repository"], name, snapshot["hostname"]))
        self.source = repository.SnapshotSource(repo, snapshot, name, doc)
        self.label = self.source.name
        return doc, None, "none"

    def run(self):
        p = self.params
        self.source = None
        self.label = p["path"]
        if p["repository"] is None and (p["snapshot"] != "latest" or p["snapshot_volume"] is not None):
            raise DockerError("snapshot and snapshot_volume are options of repository; an archive (path) holds one "
                              "backup")
        if p["repository"] is not None:
            if p["compression"] != "auto":
                raise DockerError("compression is an option of archives (path); remove it")
            doc, sha, compression = self.load_snapshot()
        else:
            doc, sha, compression = self.load_archive()
        self.engine = locking.engine_id(self.dm.api, "the engine of volume '%s'" % p["volume"])
        with locking.held(self.engine, "volume", p["volume"], timeout=p["lock_timeout"]):
            return self.restore(doc, sha, compression)

    def restore(self, doc, sha, compression):
        p = self.params
        api = self.dm.api
        wanted = doc["entries"]
        checksum = all("sha256" in e for e in wanted if e["type"] == "file")
        level = "checksum" if checksum else "size"
        recovered, errors = containers.recover(api, self.engine, p["volume"], self.dm.check_mode)
        for error in errors:
            self.dm.warn(error)
        self.actions.extend(recovered)
        result = dict(digest=doc["digest"], stopped_containers=[],
                      created=False, seconds=0.0, throughput=0, **manifest.summary(wanted))
        if self.source is None:
            result["archive_sha256"] = sha
        else:
            result.update(snapshot_id=self.source.snapshot["id"], repository=restic.redact(p["repository"]),
                          restic_version=self.restic_version)
        attrs = inspect_volume(api, p["volume"])
        dest = None
        before = None
        state = None
        action = "copy"
        if attrs is not None:
            require_lasting(p["volume"], attrs, "the restored data")
            dest = self.open_side(attrs)
            result["method"] = dest.how
            action, state, before = self.plan(dest, wanted, level)
            if action == "none":
                return self.with_diff(result, before, before)
        if attrs is None:
            result["created"] = True
            self.act("created volume '%s'" % p["volume"])
        self.act("%s %s into volume '%s'" % ("restored" if action == "copy" else
                                             "finished restoring", self.label, p["volume"]))
        # Into a volume no container uses, through its mountpoint, the archive is hashed while it is
        # extracted, and a damaged one undoes the restore before the copy is used; otherwise first
        # (stopping containers for a damaged archive would change the host for nothing).
        # (a resumed copy is checked first: its staged tree may not be read from the archive again)
        # (a snapshot is checked by restic as it is read, and each file against its manifest)
        meanwhile = (action == "copy" and not self.dm.check_mode and (attrs is None or dest.how == "local")
                     and not (attrs and containers_using(api, p["volume"])))
        if self.source is not None:
            meanwhile = False
        elif not meanwhile:
            self.check_sha256(archive.sha256_file(p["path"]), sha)
        if self.dm.check_mode:
            return self.with_diff(result, before, doc["digest"])
        if attrs is None:
            with api_errors("volume '%s'" % p["volume"]):
                api.create_volume(p["volume"])
            dest = self.open_side(inspect_volume(api, p["volume"]))
            result["method"] = dest.how
            if dest.how != "local" and self.source is None:
                meanwhile = False
                self.undo_on_damage(archive.sha256_file(p["path"]), sha, dest, created=True)
        self.copy(result, dest, doc, sha, compression, level, state if action == "resume" else None,
                  created=attrs is None, meanwhile=meanwhile)
        return self.with_diff(result, before, doc["digest"])

    def copy(self, result, dest, doc, sha, compression, level, state, created, meanwhile):  # noqa: PLR0913
        """The staged copy of the archive into dest; with meanwhile, its sha256 is checked as it goes."""
        p = self.params
        how = "stop" if p["stop_containers"] else "none"
        with contextlib.ExitStack() as stack:
            pending = stack.enter_context(archive.sha256_meanwhile(p["path"])) if meanwhile else None
            stopped = stack.enter_context(containers.containers_stopped(
                self.dm.api, self.engine, p["volume"], how, "the restore of volume '%s'" % p["volume"]))
            result["stopped_containers"] = stopped
            start = time.monotonic()
            source = self.source or archive.ArchiveSource(p["path"], compression, doc)
            checkpoint = (lambda: self.undo_on_damage(pending(), sha, dest, created)) if pending else None
            try:
                transfer.staged_copy(source, dest, level, state, checkpoint=checkpoint)
            except DockerError:
                if pending is not None:  # a damaged archive is the cause to name
                    self.undo_on_damage(pending(), sha, dest, created)
                raise
            seconds = time.monotonic() - start
        result.update(seconds=round(seconds, 3), throughput=transfer.throughput(result["bytes"], seconds))

    def undo_on_damage(self, actual, recorded, dest, created):
        """When the archive's sha256 is not the recorded one: remove what this run made (the staging
        directory, the volume if it created it) and raise check_sha256()'s error."""
        if actual == recorded:
            return
        if dest.how == "local":
            dest.remove_staging()
        else:
            dest.run("rm -rf %s/%s" % (va.HELPER_MOUNT, manifest.STAGING))
        if created:
            with api_errors("volume '%s'" % self.params["volume"]):
                self.dm.api.remove_volume(self.params["volume"])
        self.check_sha256(actual, recorded)

    def plan(self, dest, wanted, level):
        """(action, staging state, digest before) for an existing volume; DockerError for a refusal."""
        p = self.params
        api = self.dm.api
        # Under the volume's lock: a helper found now was left by a run that was killed.
        va.remove_stale_helpers(api, p["volume"], self.dm.check_mode)
        state = dest.state()
        current = dest.manifest(level == "checksum")
        in_sync = manifest.at_level(manifest.canonical(current), level) == \
            manifest.at_level(manifest.canonical(wanted), level)
        ours = state is not None and state[1] == manifest.digest(manifest.at_level(wanted, level))
        action, reason = transfer.plan_relocation(True, True, staging=state, in_sync=in_sync,
                                                  dest_empty=manifest.is_empty(current), mode="copy",
                                                  force=p["force"], ours=ours)
        if action == "fail" and state is not None and state[0] != "partial":
            raise DockerError("volume '%s': %s, not of %s; nothing was restored. Finish that run, or "
                              "set force: true to replace it" % (p["volume"], reason, self.describe()))
        if action == "fail":
            raise DockerError("volume '%s' holds other data (%s); nothing was restored. Restore into a new "
                              "volume, or set force: true to replace that data"
                              % (p["volume"], "; ".join(manifest.differences(wanted, current, 3))))
        return action, state, manifest.digest(current)

    def describe(self):
        return self.label if self.source is not None else "the archive %s" % self.label

    def open_side(self, attrs):
        return va.open_side(self.dm.api, self.dm.host, attrs, self.params["method"], self.params["helper_image"])

    def with_diff(self, result, before, after):
        """finish() with the digests of the volume's contents before and after."""
        volume = self.params["volume"]
        return self.finish(result, {"volume": volume, "digest": before}, {"volume": volume, "digest": after})


def main():
    spec = dict(
        volume=dict(type="str", required=True),
        path=dict(type="path"),
        **repository.REPOSITORY_SPEC,
        snapshot=dict(type="str", default="latest"),
        snapshot_volume=dict(type="str"),
        compression=dict(type="str", default="auto", choices=list(archive.COMPRESSIONS)),
        force=dict(type="bool", default=False),
        stop_containers=dict(type="bool", default=True),
        method=va.method_argument(),
        helper_image=dict(type="str", default=va.DEFAULT_HELPER_IMAGE),
        **locking.LOCK_TIMEOUT_SPEC,
    )
    DockerModule(spec, mutually_exclusive=[("path", "repository"), ("repository_password", "repository_password_file")],
                 required_one_of=[("path", "repository")],
                 required_by={"repository_password": "repository", "repository_password_file": "repository"},
                 ).run(VolumeRestoreManager)


if __name__ == "__main__":
    main()
