#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_retention
short_description: Remove old volume backups from a restic repository or a directory of archives by a retention policy
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
  - With O(path) instead of O(repository), applies the same policy to a B(directory of archives) that
    M(persist.docker.volume_backup) wrote (the directory of its C(path)), such as one archive per run
    named C(<volume>-<UTC time>.tar.zst). An archive is a set of three files - C(NAME) (C(.tar), C(.tar.gz),
    C(.tar.zst) or any other name), C(NAME.manifest.json) and C(NAME.sha256) - and belongs to the volume its
    manifest names (its C(volume)); its file name does not matter. Its time is the B(modification time of the
    archive file) (when M(persist.docker.volume_backup) finished writing it; the manifest records no time), and the
    hours, days, weeks, months and years of the policy are those of the managed host's local time.
  - The policy is restic's, applied to the volume's archives as C(restic forget) applies it to snapshots (see
    O(keep_within) and the notes), each volume on its own.
  - An archive goes with its checksum file and its manifest, in that order - the archive first - so a run that is
    killed meanwhile leaves no archive without the manifest that names its volume, only a manifest (with or without
    its checksum file) whose archive is gone, a B(leftover), which the next run removes. Nothing is followed
    through a symbolic link, and only complete sets count - a set whose checksum file is missing (a backup may still
    be writing it) or does not record the sha256 of its manifest, or whose archive is a symbolic link, is neither
    counted nor removed (RV(ignored)). The archives are not hashed again; M(persist.docker.volume_restore) checks
    them.
  - Needs no Docker engine, so it takes none of the connection options and is not in the action group
    C(persist.docker.docker).
requirements:
  - restic >= 0.14 on the managed host (Debian's C(restic) package), with O(repository)
extends_documentation_fragment:
  - persist.docker.restic
  - persist.docker.attributes
attributes:
  check_mode:
    support: full
    description: Lists exactly the snapshots (or archives) a real run would remove (restic's dry run of the same
      policy), and whether it would prune; writes nothing into the repository, not even a lock, and removes no
      file.
  diff_mode:
    support: full
    description: Shows, for each volume, the short ids of its data and manifest snapshots (or the names of its
      archives) before and after.
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
      - Exactly one of O(repository) and O(path) is required.
    type: str
  path:
    description:
      - A directory of archives written by M(persist.docker.volume_backup), instead of a repository.
      - Refused when it is a symbolic link or not a directory.
    type: path
  volume:
    description:
      - Apply the policy to the backups of this volume only.
      - When not given, to those of every volume that has a data snapshot in the repository (or an archive or a
        leftover in O(path)), each volume on its own.
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
        C(keep_within=7d), the last week of them stays. The same for archives, from the newest archive of the
        volume.
      - A duration as restic reads it - numbers each followed by C(y) (years), C(m) (months, not minutes),
        C(d) (days) or C(h) (hours), each unit at most once, such as C(7d), C(36h) or C(1y2m3d4h). restic has no unit
        for weeks or minutes. A duration of zero is refused.
    type: str
  prune:
    description:
      - After removing snapshots, run C(restic prune) to delete the data that no snapshot uses any more.
      - Only when this run removed a snapshot. Without it, the space is freed by the next C(restic prune).
      - Not used with O(path) - a removed archive frees its space at once.
    type: bool
    default: true
notes:
  - With O(path), the module takes no lock, none is needed - a backup writes its archive, then its manifest, then its
    checksum file, so a set counts only once it is whole, and the newest archive of a volume is kept by every
    policy.
  - With O(path), the archives of a volume are grouped by the volume name their manifests give, not by host (a
    manifest records none), so give the backups of each host a directory of their own.
  - The policy needs at least one of O(keep_last), O(keep_hourly), O(keep_daily), O(keep_weekly), O(keep_monthly),
    O(keep_yearly) above 0 or O(keep_within); a policy that keeps nothing, which would remove every backup, is refused.
    A count of 0 is the same as not giving it.
  - The counts are those of C(restic forget) - for example O(keep_daily=7) keeps the newest snapshot of each of
    the last 7 days that have one; a snapshot that one rule keeps also counts for the others. The times are
    those restic recorded for each snapshot (when its backup started), or the modification times of the archives.
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

- name: Keep the archives of the last 14 days and at least the last 3 of each volume in /srv/backups
  persist.docker.backup_retention:
    path: /srv/backups
    keep_last: 3
    keep_within: 14d
  register: archives

- name: The archives that went
  ansible.builtin.debug:
    msg: "{{ archives.removed | map(attribute='path') | list }}"

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
  returned: with O(repository)
  type: str
  sample: s3:https://s3.example.com/backups/docker
restic_version:
  description: Version of the restic binary that ran.
  returned: with O(repository)
  type: str
  sample: 0.14.0
volumes:
  description: The volumes the policy was applied to (O(volume), or every volume with a data snapshot, or with an
    archive or a leftover in O(path)).
  returned: always
  type: list
  elements: str
  sample: [db_data, web_data]
removed:
  description:
    - The snapshots removed (in check mode, those a real run would remove); per volume, its data snapshots, then
      its manifest snapshots, each the oldest first.
    - With O(path), the archives removed (in check mode, that a real run would remove); per volume, its archives,
      the oldest first, then its leftovers.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The snapshot's ID (with O(repository)).
      type: str
    short_id:
      description: Its first 8 characters, as restic shows it (with O(repository)).
      type: str
      sample: 7e2d8d23
    time:
      description: When the snapshot was made (RFC 3339, as restic gives it); with O(path), the archive's modification
        time (RFC 3339, UTC), null for a leftover.
      type: str
      sample: "2024-03-01T10:00:00Z"
    volume:
      description: The volume it belongs to.
      type: str
      sample: web_data
    hostname:
      description: The host (engine) that made it (with O(repository)).
      type: str
    run:
      description: The backup run it belongs to (its tag C(persist.docker.run=RUN)); null without that tag (with
        O(repository)).
      type: str
    kind:
      description: C(data) (the volume's data) or C(manifest) (the manifest snapshot of a run); with O(path),
        C(archive) (an archive with its checksum file and manifest) or C(leftover) (a manifest, with or without its
        checksum file, whose archive was already gone).
      type: str
      choices: [data, manifest, archive, leftover]
    path:
      description: The archive (with O(path)).
      type: str
      sample: /srv/backups/web_data-20240301T100000Z.tar.zst
    name:
      description: The archive's file name (with O(path)).
      type: str
    files:
      description: The files removed, in the order they were removed (with O(path)).
      type: list
      elements: str
kept:
  description: The data snapshots the policy keeps, of all the volumes, the oldest first (their manifest snapshots
    stay too); with O(path), the archives it keeps.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The snapshot's ID (with O(repository)).
      type: str
    short_id:
      description: Its first 8 characters (with O(repository)).
      type: str
    path:
      description: The archive (with O(path)).
      type: str
    name:
      description: The archive's file name (with O(path)).
      type: str
    time:
      description: When the snapshot was made; with O(path), the archive's modification time (RFC 3339, UTC).
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
      description: Why restic keeps it (its matches); with O(path), the rules that keep the archive, such as
        C(last archive), C(daily archive) or C(within 7d).
      type: list
      elements: str
      sample: [daily snapshot, weekly snapshot]
ignored:
  description: With O(path), the archives that are neither counted nor removed, and why (such as C(it has no
    checksum file (a backup may still be writing it))), of every volume.
  returned: with O(path)
  type: list
  elements: dict
  contains:
    path:
      description: The archive.
      type: str
    volume:
      description: The volume its manifest names; null when its manifest cannot be read.
      type: str
    reason:
      description: Why it is ignored.
      type: str
pruned:
  description: Whether C(restic prune) ran (in check mode, whether it would run); false with O(path).
  returned: always
  type: bool
actions:
  description: What was done (in check mode, what would be done).
  returned: always
  type: list
  elements: str
  sample: ["removed 2 data and 3 manifest snapshots of volume 'web_data'", "pruned the repository"]
"""

from ansible_collections.persist.docker.plugins.module_utils import repository, restic, retention
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager
from ansible_collections.persist.docker.plugins.module_utils.module import PersistModule

MINIMUM_RESTIC = (0, 14, 0)


class BackupRetentionManager(Manager):
    def run(self):
        if self.params["path"] is not None:
            return self.archives()
        return self.repository()

    def archives(self):
        """The policy applied to a directory of archives."""
        p = self.params
        policy = retention.check_archive_policy(p)
        directory = retention.open_archive_directory(p["path"])
        found = retention.archive_sets(directory, p["path"])
        volumes = [p["volume"]] if p["volume"] is not None else sorted({s["volume"] for s in found["sets"]})
        removed, kept, going, before, after = [], [], [], {}, {}
        for volume in volumes:
            planned = retention.archive_plan(p["path"], volume, found["sets"], policy)
            removed += planned["removed"]
            kept += planned["kept"]
            going += planned["going"]
            gone = {r["name"] for r in planned["removed"]}
            before[volume] = planned["considered"]
            after[volume] = [n for n in planned["considered"] if n not in gone]
            counts = [sum(r["kind"] == kind for r in planned["removed"]) for kind in retention.ARCHIVE_KINDS]
            if counts[0]:
                self.act("removed %d archives of volume '%s' from %s" % (counts[0], volume, p["path"]))
            if counts[1]:
                self.act("removed the leftover files of %d archives of volume '%s' from %s (their archives were "
                         "already gone)" % (counts[1], volume, p["path"]))
        if not self.check_mode:
            for item in going:
                retention.remove_set(directory, p["path"], item)
        result = dict(volumes=volumes, removed=removed,
                      kept=sorted(kept, key=lambda k: (k["time"], k["path"])), ignored=found["ignored"], pruned=False)
        return self.finish(result, before, after)

    def repository(self):
        """The policy applied to a restic repository."""
        p = self.params
        repo = repository.open_repository(self.dm, p)
        policy = retention.policy_args(p)
        if p["volume"] is not None:
            restic.volume_tag(p["volume"])
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
            repository=dict(type="str"),
            path=dict(type="path"),
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
        mutually_exclusive=[("repository_password", "repository_password_file"), ("repository", "path"),
                            ("path", "repository_password"), ("path", "repository_password_file")],
        required_one_of=[("repository", "path")],
    ).run(BackupRetentionManager)


if __name__ == "__main__":
    main()
