#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_info
short_description: The snapshots of a restic repository, and its integrity check
version_added: 0.3.0
description:
  - Lists the snapshots of a restic repository (a local directory, S3, SFTP, REST server, ...), all of them or
    those of one volume, with the volume name and the manifest digest that the collection's backup modules write
    into each snapshot's tags (C(persist.docker.volume=NAME), C(persist.docker.digest=sha256:...)).
  - With O(check=true), also runs C(restic check), optionally reading a part of the data (O(read_data_subset)).
  - Runs the C(restic) binary on the managed host. The repository, its password and O(repository_env) reach
    restic through its environment, never its command line; messages name the repository with any password in
    it replaced by C(***).
  - Needs no Docker engine, so it takes none of the connection options and is not in the action group
    C(persist.docker.docker).
requirements:
  - restic >= 0.14 on the managed host (Debian's C(restic) package)
extends_documentation_fragment:
  - persist.docker.restic
  - persist.docker.attributes
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode, the check included.
  diff_mode:
    support: none
    description: Changes nothing, so there is no diff.
  idempotent:
    support: full
    description: Never reports a change.
options:
  repository:
    description:
      - The restic repository, as restic's C(-r) takes it, such as C(/srv/restic),
        C(s3:https://s3.example.com/bucket/prefix), C(sftp:user@host:/srv/restic) or
        C(rest:https://user:password@host:8000/).
      - Given to restic as C(RESTIC_REPOSITORY).
    type: str
    required: true
  volume:
    description: Only the snapshots tagged with this volume (C(persist.docker.volume=VOLUME)).
    type: str
  check:
    description: Also check the repository's integrity with C(restic check).
    type: bool
    default: false
  read_data_subset:
    description:
      - With O(check), also read and verify this part of the data packs, as C(restic check --read-data-subset)
        takes it - C(n/t) (group n of t, such as C(1/5)), a percentage (C(10%)) or a size (C(500M)).
      - Only with O(check=true).
    type: str
notes:
  - The snapshots are listed in the order restic gives them, the oldest first.
  - Like the restic CLI, it writes a lock file into the repository while it reads (an exclusive one for O(check)),
    so it waits for, or fails on, a lock that C(restic prune) holds; the repository's data is not changed.
seealso:
  - module: persist.docker.volume_backup
  - module: persist.docker.volume_restore
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: The snapshots of the volume web_data in an S3 repository
  persist.docker.backup_info:
    repository: s3:https://s3.example.com/backups/docker
    repository_password: "{{ vault_restic_password }}"
    repository_env:
      AWS_ACCESS_KEY_ID: "{{ vault_s3_access_key }}"
      AWS_SECRET_ACCESS_KEY: "{{ vault_s3_secret_key }}"
    volume: web_data
  register: web_backups

- name: The newest one holds the data of the manifest we expect
  ansible.builtin.assert:
    that: (web_backups.snapshots | last).digest == expected_digest

- name: Check a local repository, reading a fifth of its data
  persist.docker.backup_info:
    repository: /srv/restic
    repository_password_file: /root/.restic-password
    check: true
    read_data_subset: 1/5
  register: checked

- name: The repository has no errors
  ansible.builtin.assert:
    that: checked.check.ok
    fail_msg: "{{ checked.check.output | join('\n') }}"
"""

RETURN = r"""
repository:
  description: The repository, with any password in it replaced by C(***).
  returned: always
  type: str
  sample: s3:https://s3.example.com/backups/docker
restic_version:
  description: Version of the restic binary that ran.
  returned: always
  type: str
  sample: 0.14.0
snapshots:
  description: The snapshots (of O(volume) when given), the oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The snapshot's ID.
      type: str
    short_id:
      description: Its first 8 characters, as restic shows it.
      type: str
      sample: d9d6130f
    time:
      description: When the snapshot was made (RFC 3339, as restic gives it).
      type: str
      sample: "2026-12-03T03:34:23.575896882Z"
    hostname:
      description: The host that made it.
      type: str
    paths:
      description: The paths it holds.
      type: list
      elements: str
    tags:
      description: All its tags.
      type: list
      elements: str
    volume:
      description: The volume it holds, from its tag C(persist.docker.volume=NAME); null without that tag.
      type: str
    digest:
      description: The manifest digest of the volume's data, from its tag C(persist.docker.digest=sha256:...);
        null without that tag.
      type: str
    bytes:
      description: Bytes of file content in the volume, from its tag C(persist.docker.bytes=N); null without it.
      type: int
    files:
      description: Entries in the volume, from its tag C(persist.docker.files=N); null without it.
      type: int
    run:
      description: The run id that pairs the snapshot with its manifest snapshot (C(persist.docker.run=ID)).
      type: str
    format:
      description: V(tree) (the volume's directory is the snapshot's root) or V(tar) (one file C(NAME.tar)).
      type: str
    complete:
      description: Whether the manifest snapshot of its run exists, so that M(persist.docker.volume_restore) can
        restore it. A backup that was killed leaves an incomplete one.
      type: bool
check:
  description: The result of C(restic check).
  returned: when O(check=true)
  type: dict
  contains:
    ok:
      description: Whether restic found no error.
      type: bool
    output:
      description: The last lines of restic's output.
      type: list
      elements: str
      sample: ["no errors were found"]
"""

from ansible_collections.persist.docker.plugins.module_utils import repository, restic
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager
from ansible_collections.persist.docker.plugins.module_utils.module import PersistModule


class BackupInfoManager(Manager):
    def run(self):
        p = self.params
        repo = repository.open_repository(self.dm, p)
        if p["read_data_subset"] is not None:
            if not p["check"]:
                raise DockerError("read_data_subset is only used with check: true")
            restic.check_read_data_subset(p["read_data_subset"])
        if p["volume"] is not None:
            restic.volume_tag(p["volume"])
        result = dict(changed=False, repository=restic.redact(p["repository"]), restic_version=repo.version(),
                      snapshots=listed(repo, p["volume"]))
        if p["check"]:
            result["check"] = repo.check(p["read_data_subset"])
        return result


def listed(repo, volume):
    """The snapshots backup_info lists: all but the manifest snapshots, each with ``complete``."""
    found = repo.snapshots(volume, tags=[restic.manifest_tags(volume, "x")[0]] if volume is not None else ())
    complete = {s["id"]: s for s in restic.complete(found)}
    return [dict({k: v for k, v in complete.get(s["id"], s).items() if k not in ("manifest_of", "manifest_id")},
                 complete=s["id"] in complete) for s in found if not s["manifest_of"]]


def main():
    PersistModule(
        dict(
            repository=dict(type="str", required=True),
            repository_password=dict(type="str", no_log=True),
            repository_password_file=dict(type="path", no_log=False),
            repository_env=dict(type="dict", default={}, no_log=True),
            volume=dict(type="str"),
            check=dict(type="bool", default=False),
            read_data_subset=dict(type="str"),
            restic_timeout=dict(type="int", default=3600),
        ),
        mutually_exclusive=[("repository_password", "repository_password_file")],
        required_one_of=[("repository_password", "repository_password_file")],
    ).run(BackupInfoManager)


if __name__ == "__main__":
    main()
