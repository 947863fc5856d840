# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``volume_backup`` into a restic repository (its option ``repository``).

From the mountpoint (``tree`` snapshots) whether anything changed is decided without reading
the data: each regular file's stat key (inode, size, mtime and ctime in ns: manifest.stat_key)
is compared with what the previous snapshot's manifest recorded, and only new or changed files
are hashed (``bytes_hashed``). restic gets that snapshot as ``--parent`` and a fixed ``--host``
(the engine's name). After restic's run the tree is looked at once more, by the same keys: a
file changed meanwhile would make the snapshot differ from its manifest, so the snapshot is
removed again and the run fails, naming the file (quiesce the containers).

Through the Engine API (``tar`` snapshots) the volume is read as one tar stream into ``restic
backup --stdin``; its manifest comes from the same stream, and the tags that need it go to the
manifest snapshot only (restic.complete() reads them from there). Whether anything changed is decided by the manifest
of the volume read through a helper (the data is read twice when it changed).

The manifest snapshot comes after the data snapshot, once the tree was found unchanged by
restic's read; from the mountpoint of a volume held still (no container uses it, or they are
quiesced) it is written while restic reads the data instead (one restic run less to wait for),
and a run whose data snapshot fails forgets it again. A run killed before both exist leaves an
incomplete snapshot, which restores and later backups ignore (restic.complete).
"""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.persist.docker.plugins.module_utils import (
    containers,
    excludes,
    hooks,
    manifest,
    repository,
    restic,
    transfer,
)
from ansible_collections.persist.docker.plugins.module_utils import volume_access as va
from ansible_collections.persist.docker.plugins.module_utils.client import api_errors
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.volumes import containers_using


def engine_name(api):
    """The engine's name (``docker info``), as restic's ``--host`` of the snapshots."""
    with api_errors("the Docker engine"):
        info = api.info()
    return restic.check_tag(info.get("Name") or "docker")


def validate(params):
    """DockerError for repository options that do not go together (pure)."""
    for option in ("compression", "mode"):
        if params.get(option) not in (None, "auto", "0600"):
            raise DockerError("%s is an option of archives (path); a restic repository compresses and encrypts "
                              "itself, remove %s" % (option, option))
    restic.user_tags(params.get("tags"))


class RepositoryBackup:
    """One backup run of a volume into a repository; ``m`` is the module's manager (dm, params, act, finish)."""

    def __init__(self, m, attrs):
        self.m = m
        self.p = m.params
        self.dm = m.dm
        self.api = m.dm.api
        self.volume = self.p["volume"]
        self.attrs = attrs
        self.repo = repository.open_repository(m.dm, self.p)
        self.walked = None  # (entries, stats) of the mountpoint read by current()
        self.pool = self.unlocking = None

    def run(self):
        p = self.p
        validate(p)
        self.exclude = excludes.of(p["exclude"], "volume '%s'" % self.volume)
        before, after = hooks.parse(p["exec_before"], hooks.BEFORE), hooks.parse(p["exec_after"], hooks.AFTER)
        result = dict(repository=restic.redact(p["repository"]), restic_version=self.repo.version(),
                      snapshot_id=None, initialized=False, bytes_added=0, files_new=0, files_changed=0,
                      bytes_hashed=0, seconds=0.0, throughput=0, stopped_containers=[], quiesced_containers=[])
        host = engine_name(self.api)
        side = va.open_side(self.api, self.dm.host, self.attrs, p["method"], p["helper_image"])
        result["method"] = side.how
        ran = []
        with ThreadPoolExecutor(max_workers=1) as pool:
            self.pool = pool
            with hooks.around(self.api, before, after, ran, self.m.act, self.dm.check_mode):
                digests = self.write(side, host, result)
        result["hooks"] = ran
        return self.finish(result, *digests)

    def write(self, side, host, result):
        """The backup (or the finding that the volume is unchanged) into result; (digest before, digest after)."""
        p, m = self.p, self.m
        snapshots = self.snapshots(host, result)
        parent = snapshots[-1] if snapshots else None
        known = self.current(side, parent, result)
        before = parent and parent["digest"]
        if parent is not None and result.get("digest") == parent["digest"] and not p["force"]:
            result["snapshot_id"] = parent["id"]
            return before, before
        m.act("backed up volume '%s' into a new snapshot of %s" % (self.volume, self.repo.subject))
        if not self.dm.check_mode:
            # the stale locks of runs of this host that were killed go (restic 0.14 keeps them, and a plain
            # 'restic check' would fail on them) while the tree is read and restic backs it up (a backup refused
            # by a stale lock is run once more by Restic.call); a run that ended well leaves no lock, and the
            # next one no 'restic unlock' to pay
            left = repository.runs_left(self.p["repository"])
            if left != []:
                self.unlocking = self.pool.submit(self.unlock, left)
        how = containers.backup_quiesce(p["quiesce"], p["stop_containers"])
        users = containers_using(self.api, self.volume)
        if how == "none" and p["quiesce"] is None:
            warning = containers.torn_copy_warning(self.volume, users)
            if warning:
                self.dm.warn(warning)
        if self.dm.check_mode:
            if "digest" not in result:  # a first backup from the mountpoint: what it would read
                self.current(side, parent, result, force=True)
            return before, result["digest"]
        run = repository.new_run()
        marker = repository.mark_run(p["repository"], run)
        with containers.containers_stopped(self.api, m.engine, self.volume, how,
                                           "the backup of volume '%s'" % self.volume, users) as held:
            result["quiesced_containers"] = held
            result["stopped_containers"] = held if how == "stop" else []
            start = time.monotonic()
            if side.how == "local":
                # held still (no container uses the volume, or they are quiesced): the manifest snapshot is sent
                # while restic reads the data; else only after the tree was found unchanged by restic's read
                entries, stats, text, summary = self.tree(side, host, run, parent, known, result,
                                                          reuse=how == "none", alongside=how != "none" or not users)
            else:
                (entries, summary), stats, text = self.tar(side, host, run, result), None, None
            if text is None:
                with ThreadPoolExecutor(max_workers=1) as pool:
                    # restic 0.14's summary names the snapshot by its short id only: its id is looked up meanwhile
                    lookup = pool.submit(self.snapshot_id, summary, run)
                    text = self.send_manifest(host, run, entries, stats)
                    snapshot_id = lookup.result()
            else:
                snapshot_id = self.snapshot_id(summary, run)
            seconds = time.monotonic() - start
        self.unlocked()
        repository.clear_marks([marker])  # this run leaves no lock
        if side.how == "local":
            repository.save_stat_cache(self.cache_path(host), text)
        counts = manifest.summary(entries)
        result.update(snapshot_id=snapshot_id, digest=manifest.digest(entries),
                      bytes_added=summary.get("data_added", 0), files_new=summary.get("files_new", 0),
                      files_changed=summary.get("files_changed", 0), seconds=round(seconds, 3),
                      throughput=transfer.throughput(counts["bytes"], seconds), **counts)
        return before, result["digest"]

    def send_manifest(self, host, run, entries, stats):
        """The manifest snapshot of this run (``backup --stdin``); its text."""
        digest = manifest.digest(entries)
        counts = manifest.summary(entries)
        text = repository.manifest_text(entries, digest, self.volume, "tar" if stats is None else "tree", stats,
                                        self.p["exclude"], run)
        self.unlocked()  # a stream cannot be sent twice: no stale lock may refuse it
        self.repo.feed("backup", [text.encode("utf-8")], "--json", "--stdin", "--stdin-filename",
                       restic.manifest_file(self.volume), "--host", host,
                       *tag_args(restic.manifest_tags(self.volume, run, digest, counts["bytes"], counts["files"])))
        return text

    def snapshot_id(self, summary, run):
        """The full id of this run's data snapshot: restic 0.14's summary gives the short one. Found in a local
        repository's snapshots/ directory, or else looked up by the run's tag."""
        short = summary.get("snapshot_id") or ""
        if len(short) == 64:
            return short
        found = restic.full_snapshot_id(self.p["repository"], short)
        if found is None:
            found = next((s["id"] for s in self.repo.snapshots(tags=[restic.run_tag(run)], lock=False)
                          if s["volume"] == self.volume and s["id"].startswith(short)), None)
        return found or short or None

    def snapshots(self, host, result):
        """The complete snapshots of the volume from this engine; the repository is created first if asked."""
        try:
            return repository.snapshots_of(self.repo, self.volume, host)
        except restic.NoRepository:
            if not self.p["init_repository"]:
                raise DockerError("%s: there is no restic repository there; check the repository and its keys, or "
                                  "set init_repository: true to create it; nothing was backed up"
                                  % self.repo.subject) from None
        self.m.act("created restic repository %s" % result["repository"])
        result["initialized"] = True
        if not self.dm.check_mode:
            self.repo.init()
        return []

    def cache_path(self, host):
        return repository.stat_cache_path(self.p["repository"], self.volume, host)

    def current(self, side, parent, result, force=False):
        """Put the volume's digest, bytes and files into result when there is a parent to compare with (from the
        mountpoint reading only what changed since the parent); return the stat cache of the mountpoint's files
        ({} through the Engine API, or without a parent)."""
        known, current = {}, None
        if parent is None and not force:
            return known  # a first backup: read while restic reads (tree()), or as it is sent (tar())
        if side.how == "local":
            if parent is not None and parent["format"] == "tree":
                known = repository.stat_cache(repository.load_manifest(self.repo, parent, self.volume,
                                                                       self.cache_path(parent["hostname"])))
            stats = {}
            # its containers still run: what they remove meanwhile is left out (restic reads after this)
            current = manifest.from_directory(side.path, True, side.ids, known, exclude=self.exclude, stats=stats,
                                              vanished_ok=True)
            result["bytes_hashed"] = stats.pop(None)
            known = repository.cache_of(current, stats)
            stats[None] = 0  # counted above
            self.walked = (current, stats)
        else:
            current = side.manifest(True, exclude=self.exclude)
            result["bytes_hashed"] = manifest.summary(current)["bytes"]
        result.update(digest=manifest.digest(current), **manifest.summary(current))
        return known

    def tree(self, side, host, run, parent, known, result, reuse=False, alongside=False):  # noqa: PLR0913
        """restic backup of the mountpoint; (entries, stats, the manifest's text, restic's summary). With
        alongside, the manifest snapshot is sent while restic reads the data; else the text is None (not sent).

        With a parent, few files are hashed: the manifest comes first and its digest is a tag of the
        snapshot. A first backup hashes every file while restic reads them, and its tags come after.
        """
        stats = {}
        args = ["--json", "--host", host, "--exclude", os.path.join(side.path, manifest.STAGING)]
        for pattern in self.exclude.restic_patterns(side.path) if self.exclude else ():
            args += ["--exclude", pattern]
        if parent is not None and parent["format"] == "tree":
            args += ["--parent", parent["id"]]
        # the volume's directory by its own name: the snapshot keeps its owner and mode too
        top = os.path.basename(side.path.rstrip("/"))
        cwd = os.path.dirname(side.path.rstrip("/"))

        def walk():  # the containers are still now
            return manifest.from_directory(side.path, True, side.ids, known, exclude=self.exclude, stats=stats)

        with ThreadPoolExecutor(max_workers=1) as pool:
            if parent is not None:
                if reuse and self.walked is not None:
                    entries, stats = self.walked  # no container was stopped since: the tree read for the comparison
                else:
                    entries = walk()
                counts = manifest.summary(entries)
                tags = restic.data_tags(self.volume, manifest.digest(entries), run, counts["bytes"], counts["files"],
                                        "tree", self.p["tags"])
                backing = pool.submit(self.repo.call, "backup", *(args + tag_args(tags) + [top]), cwd=cwd)
            else:
                tags = self.first_tags(run, "tree")
                backing = pool.submit(self.repo.call, "backup", *(args + tag_args(tags) + [top]), cwd=cwd)
            text = None
            try:
                if parent is None:
                    entries = walk()
                result["bytes_hashed"] += stats.pop(None)
                if alongside:
                    text = self.send_manifest(host, run, entries, stats)
            except BaseException:
                with contextlib.suppress(Exception):
                    backing.result()
                raise
            try:
                out = backing.result()
            except DockerError:
                # the manifest must not vouch for data restic did not store whole (restic 0.14 saves a
                # snapshot when it could not read some files): the run's snapshots go
                if text is not None:
                    with contextlib.suppress(DockerError):
                        self.repo.call("forget", "--tag", restic.run_tag(run))
                raise
        summary = restic.parse_backup_summary(out, self.repo.subject)
        after = {}
        # a file removed since restic read it is a difference (below), not a failed read
        again = manifest.from_directory(side.path, True, side.ids, repository.cache_of(entries, stats),
                                        exclude=self.exclude, stats=after, vanished_ok=True)
        if manifest.digest(again) != manifest.digest(entries):
            self.repo.call("forget", "--tag", restic.run_tag(run))
            raise DockerError("volume '%s' changed while restic read it (%s); the snapshot was removed again. Set "
                              "quiesce: pause or stop to hold its containers still during the backup"
                              % (self.volume, "; ".join(manifest.differences(entries, again, 3))))
        return entries, stats, text, summary

    def tar(self, side, host, run, result):
        """restic backup --stdin of the volume's tar stream through the Engine API; (entries, restic's summary)."""
        entries = []
        counter = [0]
        self.unlocked()  # a stream cannot be sent twice: no stale lock may refuse it
        out = self.repo.feed("backup", side.archive(True, entries, counter, exclude=self.exclude), "--json", "--stdin",
                             "--stdin-filename", restic.tar_file(self.volume), "--host", host,
                             *tag_args(self.first_tags(run, "tar")))
        summary = restic.parse_backup_summary(out, self.repo.subject)
        result["bytes_hashed"] += manifest.summary(entries)["bytes"]
        return entries, summary

    def unlock(self, left):
        """restic unlock, and the markers of the runs whose stale locks it removed forgotten."""
        if self.repo.unlock():
            repository.clear_marks(left)

    def unlocked(self):
        """Wait for the removal of stale locks, before restic writes."""
        if self.unlocking is not None:
            self.unlocking.result()

    def first_tags(self, run, fmt):
        """The tags of a data snapshot whose manifest is not known yet (its manifest snapshot's tags carry the
        rest)."""
        return [restic.volume_tag(self.volume), restic.run_tag(run), "%s=%s" % (restic.TAG_FORMAT, fmt)] + \
            restic.user_tags(self.p["tags"])

    def finish(self, result, before, after):
        volume = self.volume
        return self.m.finish(result, {"volume": volume, "digest": before}, {"volume": volume, "digest": after})


def tag_args(tags):
    """``--tag T`` for each tag (one flag each: restic splits a value at commas)."""
    args = []
    for tag in tags:
        args += ["--tag", tag]
    return args
