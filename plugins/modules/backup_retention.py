#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_retention
short_description: Remove old volume backups from a restic repository by a retention policy, and prune it
version_added: 0.3.0
description:
  - Applies a retention policy (O(keep_last), O(keep_hourly), O(keep_daily), O(keep_weekly), O(keep_monthly),
    O(keep_yearly), O(keep_within)) to the backups of one volume (O(volume)) or of every volume in a restic
    repository, each volume on its own, then runs C(restic prune) (O(prune)) to free the space they held.
  - The policy applies to the volume's B(data snapshots), those tagged C(persist.docker.volume=VOLUME), grouped by
    host, so that volumes of the same name on several engines are kept apart (C(restic forget --group-by host)).
    restic itself decides which of them go (C(restic forget --dry-run --json)), as C(restic forget) with the same
    C(--keep-*) options would.
  - Each backup run of M(persist.docker.volume_backup) writes a data snapshot and a B(manifest snapshot) that share
    a run tag (C(persist.docker.run=RUN)). The manifest snapshot of each removed data snapshot's run is removed
    with it. A manifest snapshot whose run has no data snapshot left (an orphan, such as one that a run killed
    while it removed snapshots leaves behind) is removed too when it is older than the volume's newest data
    snapshot from the same host; a newer one may belong to a backup that is still running, and stays.
  - Snapshots without these tags (made with the plain restic CLI, or by other tools) are never removed.
  - Runs the C(restic) binary on the managed host. The repository, its password and O(repository_env) reach
    restic through its environment, never its command line; messages name the repository with any password in
    it replaced by C(***).
  - Needs no Docker engine, so it takes none of the connection options and is not in the action group
    C(persist.docker.docker).
requirements:
  - restic >= 0.14 on the managed host (Debian's C(restic) package)
extends_documentation_fragment:
  - persist.docker.attributes
attributes:
  check_mode:
    support: full
    description: Lists exactly the snapshots a real run would remove (restic's dry run of the same policy), and
      whether it would prune; writes nothing into the repository, not even a lock.
  diff_mode:
    support: full
    description: Shows, for each volume, the short ids of its data and manifest snapshots before and after.
  idempotent:
    support: full
    description: A second run with the same policy finds nothing to remove, does not prune and reports no change.
options:
  repository:
    description:
      - The restic repository, as restic's C(-r) takes it, such as C(/srv/restic),
        C(s3:https://s3.example.com/bucket/prefix), C(sftp:user@host:/srv/restic) or
        C(rest:https://user:password@host:8000/).
      - Given to restic as C(RESTIC_REPOSITORY).
    type: str
    required: true
  repository_password:
    description: The repository's password (given to restic as C(RESTIC_PASSWORD)).
    type: str
  repository_password_file:
    description: A file on the managed host that holds the repository's password (C(RESTIC_PASSWORD_FILE)).
    type: path
  repository_env:
    description:
      - More environment for restic, such as C(AWS_ACCESS_KEY_ID), C(AWS_SECRET_ACCESS_KEY) and
        C(AWS_DEFAULT_REGION) for S3, or C(RESTIC_CACHE_DIR).
      - C(RESTIC_REPOSITORY*) and C(RESTIC_PASSWORD*) are refused; use the options above.
    type: dict
    default: {}
  volume:
    description:
      - Apply the policy to the backups of this volume only.
      - When not given, to those of every volume that has a data snapshot in the repository, each volume on its own.
    type: str
  keep_last:
    description: Keep the newest N data snapshots (of each volume and host).
    type: int
  keep_hourly:
    description: Keep the newest data snapshot of each of the last N hours that have one.
    type: int
  keep_daily:
    description: Keep the newest data snapshot of each of the last N days that have one.
    type: int
  keep_weekly:
    description: Keep the newest data snapshot of each of the last N weeks that have one.
    type: int
  keep_monthly:
    description: Keep the newest data snapshot of each of the last N months that have one.
    type: int
  keep_yearly:
    description: Keep the newest data snapshot of each of the last N years that have one.
    type: int
  keep_within:
    description:
      - Keep the data snapshots made within this duration B(before the newest data snapshot of the volume and host),
        not before now - as restic counts it; so backups that stopped a year ago are not all removed by
        C(keep_within=7d), the last week of them stays.
      - A duration as restic reads it - numbers each followed by C(y) (years), C(m) (months, not minutes),
        C(d) (days) or C(h) (hours), each unit at most once, such as C(7d), C(36h) or C(1y2m3d4h). restic has no unit
        for weeks or minutes. A duration of zero is refused.
    type: str
  prune:
    description:
      - After removing snapshots, run C(restic prune) to delete the data that no snapshot uses any more.
      - Only when this run removed a snapshot. Without it, the space is freed by the next C(restic prune).
    type: bool
    default: true
  restic_timeout:
    description: Seconds each restic run may take before it is killed and the module fails.
    type: int
    default: 3600
notes:
  - The policy needs at least one of O(keep_last), O(keep_hourly), O(keep_daily), O(keep_weekly), O(keep_monthly),
    O(keep_yearly) above 0 or O(keep_within); a policy that keeps nothing, which would remove every backup, is refused.
    A count of 0 is the same as not giving it.
  - The counts are those of C(restic forget) - for example O(keep_daily=7) keeps the newest snapshot of each of
    the last 7 days that have one; a snapshot that one rule keeps also counts for the others. The times are
    those restic recorded for each snapshot (when its backup started).
  - A data snapshot without its manifest snapshot (from a backup killed between the two) counts for the policy like
    the others.
  - Reads the repository without a lock (C(--no-lock)); removing snapshots and pruning take restic's exclusive
    lock, so they fail while a backup or another restic command holds a lock (the message says so); run it again
    later. Data snapshots are removed before manifest snapshots, so a run killed meanwhile leaves orphan manifests
    that the next run removes.
  - When C(restic prune) fails after snapshots were removed, the module fails and says so; the next run finds
    nothing to remove and does not prune, so run C(restic prune) by hand then.
seealso:
  - module: persist.docker.backup_info
  - module: persist.docker.volume_backup
  - name: restic's forget command and its policies
    description: How restic chooses the snapshots to keep.
    link: https://restic.readthedocs.io/en/stable/060_forget.html
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: Keep 7 daily, 4 weekly and 12 monthly backups of every volume in an S3 repository, and prune
  persist.docker.backup_retention:
    repository: s3:https://s3.example.com/backups/docker
    repository_password: "{{ vault_restic_password }}"
    repository_env:
      AWS_ACCESS_KEY_ID: "{{ vault_s3_access_key }}"
      AWS_SECRET_ACCESS_KEY: "{{ vault_s3_secret_key }}"
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 12

- name: What would go of the volume db_data, keeping the last 3 backups and those of the 14 days before the newest
  persist.docker.backup_retention:
    repository: /srv/restic
    repository_password_file: /root/.restic-password
    volume: db_data
    keep_last: 3
    keep_within: 14d
  check_mode: true
  register: would_go

- name: Show it
  ansible.builtin.debug:
    msg: "{{ would_go.removed | map(attribute='short_id') | list }}"

- name: Remove the snapshots now, leaving the space to the weekly prune job
  persist.docker.backup_retention:
    repository: /srv/restic
    repository_password_file: /root/.restic-password
    volume: db_data
    keep_last: 3
    keep_within: 14d
    prune: false
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
volumes:
  description: The volumes the policy was applied to (O(volume), or every volume with a data snapshot).
  returned: always
  type: list
  elements: str
  sample: [db_data, web_data]
removed:
  description:
    - The snapshots removed (in check mode, those a real run would remove); per volume, its data snapshots, then
      its manifest snapshots, each the oldest first.
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
      sample: 7e2d8d23
    time:
      description: When the snapshot was made (RFC 3339, as restic gives it).
      type: str
      sample: "2024-03-01T10:00:00Z"
    volume:
      description: The volume it belongs to.
      type: str
      sample: web_data
    hostname:
      description: The host (engine) that made it.
      type: str
    run:
      description: The backup run it belongs to (its tag C(persist.docker.run=RUN)); null without that tag.
      type: str
    kind:
      description: C(data) (the volume's data) or C(manifest) (the manifest snapshot of a run).
      type: str
      choices: [data, manifest]
kept:
  description: The data snapshots the policy keeps, of all the volumes, the oldest first (their manifest snapshots
    stay too).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The snapshot's ID.
      type: str
    short_id:
      description: Its first 8 characters.
      type: str
    time:
      description: When the snapshot was made.
      type: str
    volume:
      description: The volume it belongs to.
      type: str
    hostname:
      description: The host (engine) that made it.
      type: str
    run:
      description: The backup run it belongs to; null without that tag.
      type: str
    reasons:
      description: Why restic keeps it (its matches).
      type: list
      elements: str
      sample: [daily snapshot, weekly snapshot]
pruned:
  description: Whether C(restic prune) ran (in check mode, whether it would run).
  returned: always
  type: bool
actions:
  description: What was done (in check mode, what would be done).
  returned: always
  type: list
  elements: str
  sample: ["removed 2 data and 3 manifest snapshots of volume 'web_data'", "pruned the repository"]
"""

from ansible_collections.persist.docker.plugins.module_utils import restic, retention
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager
from ansible_collections.persist.docker.plugins.module_utils.module import PersistModule

MINIMUM_RESTIC = (0, 14, 0)


class BackupRetentionManager(Manager):
    def run(self):
        p = self.params
        secret = restic.url_password(p["repository"])
        if secret:  # not in the module's result, its invocation included
            self.dm.module.no_log_values.add(secret)
        policy = retention.policy_args(p)
        if p["volume"] is not None:
            restic.volume_tag(p["volume"])
        if p["restic_timeout"] < 1:
            raise DockerError("restic_timeout must be at least 1 second")
        repo = restic.Restic(p["repository"], password=p["repository_password"],
                             password_file=p["repository_password_file"], repository_env=p["repository_env"],
                             timeout=p["restic_timeout"])
        version = repo.version()
        if tuple(int(n) for n in version.split(".")) < MINIMUM_RESTIC:
            raise DockerError("restic %s is older than 0.14, which backup_retention needs (forget --dry-run "
                              "--no-lock); install restic 0.14 or newer" % version)
        snapshots = restic.parse_snapshots(repo.call("snapshots", "--no-lock", "--json"), repo.subject)
        volumes = [p["volume"]] if p["volume"] is not None else retention.volumes_of(snapshots)
        removed, kept, before, after = [], [], {}, {}
        for volume in volumes:
            groups = retention.parse_forget(
                repo.call("forget", "--no-lock", "--dry-run", "--json", *policy, "--tag", restic.volume_tag(volume),
                          "--group-by", "host"), repo.subject)
            planned = retention.plan(volume, groups, snapshots)
            removed += planned["removed"]
            kept += planned["kept"]
            going = {r["id"] for r in planned["removed"]}
            before[volume] = [i[:8] for i in planned["considered"]]
            after[volume] = [i[:8] for i in planned["considered"] if i not in going]
            counts = [sum(r["kind"] == kind for r in planned["removed"]) for kind in retention.KINDS]
            if any(counts):
                self.act("removed %d data and %d manifest snapshots of volume '%s'" % (counts[0], counts[1], volume))
        pruned = bool(removed) and p["prune"]
        if pruned:
            self.act("pruned the repository")
        if removed and not self.check_mode:
            self.remove(repo, removed, pruned)
        result = dict(repository=restic.redact(p["repository"]), restic_version=version, volumes=volumes,
                      removed=removed, kept=sorted(kept, key=lambda k: (retention.time_ns(k["time"]), k["id"])),
                      pruned=pruned)
        return self.finish(result, before, after)

    def remove(self, repo, removed, prune):
        """Forget the data snapshots, then the manifest snapshots (an interrupted run leaves orphan manifests,
        which the next run removes), then prune."""
        for kind in retention.KINDS:
            for batch in retention.batches(r["id"] for r in removed if r["kind"] == kind):
                repo.call("forget", *batch)
        if prune:
            try:
                repo.call("prune")
            except DockerError as exc:
                raise DockerError("%s; the %d snapshots were removed but the data they held is still stored: run "
                                  "'restic prune' on the repository" % (exc, len(removed))) from None


def main():
    PersistModule(
        dict(
            repository=dict(type="str", required=True),
            repository_password=dict(type="str", no_log=True),
            repository_password_file=dict(type="path", no_log=False),
            repository_env=dict(type="dict", default={}, no_log=True),
            volume=dict(type="str"),
            keep_last=dict(type="int"),
            keep_hourly=dict(type="int"),
            keep_daily=dict(type="int"),
            keep_weekly=dict(type="int"),
            keep_monthly=dict(type="int"),
            keep_yearly=dict(type="int"),
            keep_within=dict(type="str"),
            prune=dict(type="bool", default=True),
            restic_timeout=dict(type="int", default=3600),
        ),
        mutually_exclusive=[("repository_password", "repository_password_file")],
        required_one_of=[("repository_password", "repository_password_file")],
    ).run(BackupRetentionManager)


if __name__ == "__main__":
    main()
