#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_backup
short_description: Archive a Docker volume to a tar file with a manifest and a checksum
version_added: 0.1.0
description:
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
  - An uncompressed archive of a volume read from disk is written past the page cache (C(O_DIRECT))
    where the file system allows it, so a backup does not push the services' data out of memory;
    elsewhere it is written through the page cache.
extends_documentation_fragment:
  - persist.docker.docker
attributes:
  check_mode:
    support: full
    description: Reads the volume and predicts whether a real run writes the archive.
  diff_mode:
    support: full
    description: Shows the manifest digest of the backup before and after.
  idempotent:
    support: full
    description: A second run with unchanged data reports no change.
options:
  volume:
    description:
      - Name of the volume to back up.
    type: str
    required: true
  path:
    description:
      - The archive file to write, on the host the module runs on. Its directory must exist.
    type: path
    required: true
  compression:
    description:
      - V(auto) picks by the file name - V(.gz) or V(.tgz) gzip, V(.zst) zstd, else none.
      - V(zstd) needs the Python package C(zstandard) on the managed host.
    type: str
    choices: [auto, none, gzip, zstd]
    default: auto
  stop_containers:
    description:
      - Stop the running containers that use the volume for a consistent copy, and start them again
        afterwards.
    type: bool
    default: false
  force:
    description:
      - Write a new archive even when the existing one is up to date.
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
      - Image of the helper container used when the data goes through the Engine API.
    type: str
    default: busybox:latest
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: Back up the database volume, with the database stopped meanwhile
  persist.docker.volume_backup:
    volume: pgdata
    path: /srv/backup/pgdata.tar.gz
    stop_containers: true

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
  returned: success
  type: str
  sample: /srv/backup/pgdata.tar.gz
manifest_path:
  description: The manifest beside the archive.
  returned: success
  type: str
  sample: /srv/backup/pgdata.tar.gz.manifest.json
checksum_path:
  description: The checksum file beside the archive.
  returned: success
  type: str
  sample: /srv/backup/pgdata.tar.gz.sha256
archive_sha256:
  description: sha256 of the archive file (V(null) in check mode when it would be written).
  returned: success
  type: str
digest:
  description: Digest of the volume's manifest.
  returned: success
  type: str
  sample: sha256:6b1c...
compression:
  description: The compression used.
  returned: success
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
  returned: success
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
  description: Containers stopped for the backup and started again.
  returned: success
  type: list
  elements: str
actions:
  description: What was done (or would be done in check mode).
  returned: success
  type: list
  elements: str
"""

import os
import time

from ansible_collections.persist.docker.plugins.module_utils import manifest, transfer
from ansible_collections.persist.docker.plugins.module_utils.client import DockerError, DockerModule
from ansible_collections.persist.docker.plugins.module_utils.volumes import (
    DEFAULT_HELPER_IMAGE,
    containers_using,
    inspect_volume,
)


class VolumeBackupManager:
    def __init__(self, dm):
        self.dm = dm
        self.params = dm.params

    def run(self):
        p = self.params
        api = self.dm.api
        path, manifest_path, checksum_path = transfer.archive_files(p["path"])
        compression = transfer.pick_compression(path, p["compression"])
        if compression == "zstd":
            transfer._zstandard()
        if not os.path.isdir(os.path.dirname(path) or "."):
            raise DockerError("the directory of %s does not exist; create it first" % path)
        if os.path.isdir(path):
            raise DockerError("path %s is a directory; give the path of the archive file, for example %s"
                              % (path, os.path.join(path, "%s.tar.gz" % p["volume"])))
        attrs = inspect_volume(api, p["volume"])
        if attrs is None:
            raise DockerError("volume '%s' does not exist on %s; check the name and docker_host"
                              % (p["volume"], self.dm.host))
        side = transfer.open_side(api, self.dm.host, attrs, p["method"], p["helper_image"])
        stored = self.stored(path, manifest_path, checksum_path)
        result = dict(path=path, manifest_path=manifest_path, checksum_path=checksum_path, compression=compression,
                      method=side.how, stopped_containers=[], actions=[], seconds=0.0, throughput=0)
        current = None
        if stored is not None and not p["force"]:
            with transfer.sha256_meanwhile(path) as archive_sha256:
                current = side.manifest(True)
                unchanged = manifest.digest(current) == stored["digest"] and \
                    archive_sha256() == stored["archive_sha256"]
            if unchanged:
                result.update(changed=False, archive_sha256=stored["archive_sha256"], digest=stored["digest"],
                              archive_size=os.path.getsize(path), **manifest.summary(current))
                return self.with_diff(result, stored["digest"], stored["digest"])
        result["changed"] = True
        result["actions"].append("wrote %s from volume '%s'" % (path, p["volume"]))
        if self.dm.check_mode:
            current = current if current is not None else side.manifest(True)
            result.update(archive_sha256=None, digest=manifest.digest(current), archive_size=0,
                          **manifest.summary(current))
            return self.with_diff(result, stored and stored["digest"], result["digest"])
        users = containers_using(api, p["volume"]) if p["stop_containers"] else []
        stopped = transfer.stop_running(api, users)
        result["stopped_containers"] = stopped
        try:
            entries = []
            counter = [0]
            start = time.monotonic()
            pool = transfer.BufferPool()
            sha, size = transfer.write_archive(side.archive(True, entries, counter, pool), path, compression, pool)
            seconds = time.monotonic() - start
        finally:
            errors = transfer.start_again(api, stopped)
        digest = manifest.digest(entries)
        with transfer._os_errors("writing the manifest beside %s" % path):
            transfer.write_atomic(manifest_path, manifest.dump(entries, digest, volume=p["volume"], archive_sha256=sha,
                                                               compression=compression))
            transfer.write_atomic(checksum_path, "%s  %s\n" % (sha, os.path.basename(path)))
        if errors:
            raise DockerError("backup written to %s, but containers did not start again: %s"
                              % (path, "; ".join(errors)))
        summary = manifest.summary(entries)
        result.update(archive_sha256=sha, digest=digest, archive_size=size, seconds=round(seconds, 3),
                      throughput=transfer.throughput(summary["bytes"], seconds), **summary)
        return self.with_diff(result, stored and stored["digest"], digest)

    def stored(self, path, manifest_path, checksum_path):
        """The stored backup's {'digest', 'archive_sha256'} when its three files agree, else None.

        Whether the archive still has that sha256 is checked by the caller, while it reads the volume.
        """
        if not all(os.path.isfile(f) for f in (path, manifest_path, checksum_path)):
            return None
        try:
            with open(manifest_path) as f:
                doc = manifest.load(f.read())
        except (OSError, ValueError):
            return None
        recorded = transfer.read_checksum_file(checksum_path)
        if recorded is None or recorded != doc.get("archive_sha256"):
            return None
        return dict(digest=doc["digest"], archive_sha256=recorded)

    def with_diff(self, result, before, after):
        if self.dm.diff_mode:
            result["diff"] = dict(before={"path": result["path"], "digest": before},
                                  after={"path": result["path"], "digest": after})
        return result


def main():
    spec = dict(
        volume=dict(type="str", required=True),
        path=dict(type="path", required=True),
        compression=dict(type="str", default="auto", choices=list(transfer.COMPRESSIONS)),
        stop_containers=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        method=dict(type="str", default="auto", choices=list(transfer.METHODS)),
        helper_image=dict(type="str", default=DEFAULT_HELPER_IMAGE),
    )
    DockerModule(spec).run(VolumeBackupManager)


if __name__ == "__main__":
    main()
