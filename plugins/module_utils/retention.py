# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The decisions of backup_retention: which backups of a volume a retention policy removes, from a restic
repository or from a directory of archives.

**Restic repositories.** restic decides which **data snapshots** of a volume go: ``restic forget --dry-run --json
<policy> --tag persist.docker.volume=V --group-by host`` prints its plan (what it keeps, with its reasons, and what
it removes), which :func:`parse_forget` reads; the policy itself is never re-implemented for a repository, only its
options are checked and written (:func:`policy_args`). :func:`plan` adds the **manifest snapshots** (the snapshot
convention of ``restic.py``): the manifest of each removed data snapshot's run, and the orphans (manifests whose
run has no data snapshot left) that are older than the newest data snapshot of their volume and host, since a
backup writes its data snapshot first and its manifest after it. Snapshots outside the convention are never in a
plan.

**Archive directories.** A directory holds the archives volume_backup writes, each a **set** of three files:
``NAME`` (the archive), ``NAME.manifest.json`` (whose ``volume`` names the volume) and ``NAME.sha256``.
:func:`archive_sets` reads the directory (by descriptor, never through a symlink); :func:`keep_archives` is
restic's own policy (``forget``'s rules, as restic 0.14 applies them) on the archives' times; :func:`archive_plan`
is what goes; :func:`remove_set` removes one set: the archive first, then its checksum file, then its manifest, so
a run killed meanwhile never leaves an archive without the manifest that names its volume, only a manifest
without its archive (a **leftover**), which the next run removes.

All but :func:`archive_sets` and :func:`remove_set` is pure; the module runs restic and carries the plan out.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime
import json
import os
import re
import stat
import time

from ansible_collections.persist.docker.plugins.module_utils import archive, fdtree, manifest, restic
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError, os_errors

COUNTS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
POLICY = COUNTS + ("keep_within",)
# restic 0.14's duration: numbers (it panics on one beyond 64 bits) each followed by its unit.
DURATION = re.compile(r"^(?:[0-9]{1,9}[ymdh])+$")
RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)$")
# ids given to one 'restic forget' (its command line stays far below the kernel's limit)
BATCH = 200
KINDS = ("data", "manifest")


def check_within(value):
    """value if restic's ``--keep-within`` takes it and it keeps something, or raise DockerError (pure).

    restic 0.14 reads ``1y2m3d4h``: years, months (``m`` is not minutes), days, hours; it takes a
    negative number too (which keeps nothing) and panics on a number beyond 64 bits.
    """
    if not DURATION.match(value or ""):
        raise DockerError("keep_within %r is not a duration as restic reads it: numbers each followed by y "
                          "(years), m (months), d (days) or h (hours), such as 7d or 1y2m3d4h (restic has no unit "
                          "for weeks or minutes)" % (value,))
    units = re.findall(r"[ymdh]", value)
    if len(set(units)) != len(units):
        raise DockerError("keep_within %r gives a unit twice; give each of y, m, d and h once" % value)
    if not any(int(n) for n in re.findall(r"[0-9]+", value)):
        raise DockerError("keep_within %r is zero and keeps no snapshot; give a longer duration, such as 7d" % value)
    return value


def policy_args(policy):
    """The policy options of ``restic forget`` (pure), from a dict with the keys of :data:`POLICY`.

    A count of 0 is left out (restic's own meaning: not given). A policy that keeps nothing is refused:
    restic would remove every snapshot of the volume.
    """
    args = []
    for name in COUNTS:
        value = policy.get(name)
        if value is None:
            continue
        if value < 0:
            raise DockerError("%s must be 0 or more, got %d" % (name, value))
        if value:
            args += ["--" + name.replace("_", "-"), str(value)]
    if policy.get("keep_within") is not None:
        args += ["--keep-within", check_within(policy["keep_within"])]
    if not args:
        raise DockerError("the retention policy keeps no snapshot, so it would remove every backup of the volume; "
                          "give at least one of %s (above 0)" % ", ".join(POLICY))
    return args


def time_ns(text):
    """Nanoseconds since the epoch of an RFC 3339 time as restic prints it (pure), such as
    ``2024-03-04T10:00:00+01:00`` or ``2026-12-03T03:34:23.575896882Z``; DockerError if it is not one."""
    match = RFC3339.match(text or "")
    if not match:
        raise DockerError("snapshot time %r is not an RFC 3339 time; is the restic binary a restic >= 0.14?"
                          % (text,))
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    zone = match.group(8)
    if zone not in ("Z", "z"):
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        seconds -= offset if zone[0] == "+" else -offset
    return seconds * 10**9 + int((match.group(7) or "").ljust(9, "0"))


def forget_json(text, subject):
    """The decoded JSON of ``forget --dry-run --json`` (pure): a list; restic prints nothing when no
    snapshot matched the filter."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return []
    try:
        data = json.loads(lines[-1])
    except ValueError:
        data = None
    if data is None:  # "null": no groups
        data = [] if lines[-1].strip() == "null" else None
    if not isinstance(data, list) or not all(isinstance(g, dict) for g in data):
        raise DockerError("%s: restic's 'forget --dry-run --json' printed no list of groups; is the restic binary "
                          "a restic >= 0.14?" % subject)
    return data


def parse_forget(text, subject):
    """restic's plan from ``forget --dry-run --json`` (pure): per group, its ``host``, the snapshots it keeps
    (each with its ``reasons``, restic's matches such as ``daily snapshot``) and those it removes, as
    :func:`restic.snapshot_summary` gives them."""
    groups = []
    for group in forget_json(text, subject):
        keep = group.get("keep") or []
        remove = group.get("remove") or []
        reasons = group.get("reasons") or []
        if not all(isinstance(s, dict) and s.get("id") and s.get("time") for s in keep + remove):
            raise DockerError("%s: restic's 'forget --dry-run --json' printed a snapshot without id or time; is the "
                              "restic binary a restic >= 0.14?" % subject)
        kept = []
        for index, snapshot in enumerate(keep):
            reason = reasons[index] if index < len(reasons) and isinstance(reasons[index], dict) else {}
            same = (reason.get("snapshot") or {}).get("time") == snapshot.get("time")
            kept.append(dict(restic.snapshot_summary(snapshot),
                             reasons=list(reason.get("matches") or []) if same else []))
        groups.append(dict(host=group.get("host"), keep=kept, remove=[restic.snapshot_summary(s) for s in remove]))
    return groups


def volumes_of(snapshots):
    """The volumes that have data snapshots among snapshots (pure), sorted."""
    return sorted({s["volume"] for s in snapshots if s.get("volume")})


def removed_entry(snapshot, kind):
    """A snapshot as the module's ``removed`` lists it (pure)."""
    volume = snapshot.get("volume") if kind == "data" else snapshot.get("manifest_of")
    return dict(id=snapshot["id"], short_id=snapshot.get("short_id") or snapshot["id"][:8], time=snapshot["time"],
                volume=volume, hostname=snapshot.get("hostname"), run=snapshot.get("run"), kind=kind)


def kept_entry(snapshot):
    """A data snapshot as the module's ``kept`` lists it (pure)."""
    return dict(id=snapshot["id"], short_id=snapshot.get("short_id") or snapshot["id"][:8], time=snapshot["time"],
                volume=snapshot.get("volume"), hostname=snapshot.get("hostname"), run=snapshot.get("run"),
                reasons=list(snapshot.get("reasons") or []))


def oldest_first(snapshots):
    return sorted(snapshots, key=lambda s: (time_ns(s["time"]), s["id"]))


def plan(volume, groups, snapshots):
    """What retention removes of volume's snapshots, and the data snapshots it keeps (pure).

    ``groups`` is restic's plan of the volume's data snapshots (:func:`parse_forget`); ``snapshots`` the
    repository's snapshots (:func:`restic.parse_snapshots`), where the manifest snapshots are found. Returns
    ``removed`` (data snapshots first, then manifest snapshots, each the oldest first, as :func:`removed_entry`),
    ``kept`` (the oldest first, as :func:`kept_entry`) and ``considered``, the ids of the volume's data and
    manifest snapshots.

    A manifest snapshot of volume goes when the run it belongs to (``persist.docker.run``) has a data snapshot
    that goes and none that stays, or when its run has no data snapshot at all (an orphan) and it is older than
    the newest data snapshot (kept or not) from the same host.
    """
    keep = [s for g in groups for s in g["keep"]]
    remove = [s for g in groups for s in g["remove"]]
    data_ids = {s["id"] for s in keep + remove}
    kept_runs = {s["run"] for s in keep if s.get("run")}
    removed_runs = {s["run"] for s in remove if s.get("run")} - kept_runs
    newest = {}
    for s in keep + remove:
        newest[s.get("hostname")] = max(newest.get(s.get("hostname"), time_ns(s["time"])), time_ns(s["time"]))
    manifests = [s for s in snapshots
                 if s.get("manifest_of") == volume and s.get("run") and s["id"] not in data_ids]
    going = []
    for s in manifests:
        if s["run"] in kept_runs:
            continue
        orphan = s["run"] not in removed_runs
        if orphan and not (s.get("hostname") in newest and time_ns(s["time"]) < newest[s.get("hostname")]):
            continue
        going.append(s)
    removed = ([removed_entry(s, "data") for s in oldest_first(remove)]
               + [removed_entry(s, "manifest") for s in oldest_first(going)])
    return dict(removed=removed, kept=[kept_entry(s) for s in oldest_first(keep)],
                considered=sorted(data_ids | {s["id"] for s in manifests}))


def batches(ids, size=BATCH):
    """ids in lists of at most size (pure), for one ``restic forget`` each."""
    ids = list(ids)
    return [ids[i:i + size] for i in range(0, len(ids), size)]


# -- archive directories ---------------------------------------------------------------------------

ARCHIVE_KINDS = ("archive", "leftover")
MANIFEST_SUFFIX = archive.archive_files("")[1]
CHECKSUM_SUFFIX = archive.archive_files("")[2]
# (policy option, bucket of a time, reason) as restic 0.14 applies them, in its order
BUCKETS = (
    ("keep_last", None, "last archive"),
    ("keep_hourly", lambda t: (t.year, t.month, t.day, t.hour), "hourly archive"),
    ("keep_daily", lambda t: (t.year, t.month, t.day), "daily archive"),
    ("keep_weekly", lambda t: t.isocalendar()[:2], "weekly archive"),
    ("keep_monthly", lambda t: (t.year, t.month), "monthly archive"),
    ("keep_yearly", lambda t: t.year, "yearly archive"),
)


def within_parts(value):
    """(years, months, days, hours) of a keep_within duration that :func:`check_within` takes (pure)."""
    parts = dict(y=0, m=0, d=0, h=0)
    for number, unit in re.findall(r"([0-9]+)([ymdh])", check_within(value)):
        parts[unit] = int(number)
    return parts["y"], parts["m"], parts["d"], parts["h"]


def within_start(newest, within, tz=None):
    """The unix time after which an archive is within ``within`` (y, m, d, h) of the newest one (pure), counted as
    restic counts it: the newest one's date less the years, months and days (a day past a month's end rolls
    over, as Go's AddDate does), less the hours; None when that is before the first year (keeps everything)."""
    years, months, days, hours = within
    t = datetime.datetime.fromtimestamp(newest, tz)
    month = t.month - 1 - months
    year = t.year - years + month // 12
    try:
        start = t.replace(year=year, month=month % 12 + 1, day=1) + datetime.timedelta(days=t.day - 1 - days,
                                                                                       hours=-hours)
    except (ValueError, OverflowError):
        return None
    return start.timestamp()


def check_archive_policy(policy):
    """The policy (counts and keep_within) of archives, checked as for a repository (:func:`policy_args`):
    a dict of each count (0 when not given) and ``within`` ((y, m, d, h) or None) (pure)."""
    policy_args(policy)
    checked = {name: policy.get(name) or 0 for name in COUNTS}
    checked["within"] = within_parts(policy["keep_within"]) if policy.get("keep_within") is not None else None
    return checked


def keep_archives(archives, policy, tz=None):
    """restic's policy on the archives of one volume (pure): (kept, removed), each newest first, each archive
    with ``reasons`` in kept.

    ``archives`` are dicts with ``name`` and ``time`` (unix time); ``policy`` is :func:`check_archive_policy`'s.
    As ``restic forget`` does: from the newest archive to the oldest, an archive is kept when it is within
    ``within`` of the newest one, or when it is the first one of its bucket (its hour, day, ISO week, month,
    year, in the time zone tz, the host's local time by default) while that rule still has a count left; one
    kept by a rule counts for the others too. Archives of the same time are taken in the reverse order of their
    names.
    """
    ordered = sorted(archives, key=lambda a: (a["time"], a["name"]), reverse=True)
    left = {name: policy[name] for name, _bucket, _reason in BUCKETS}
    last = {}
    start = within_start(ordered[0]["time"], policy["within"], tz) if ordered and policy["within"] else None
    kept, removed = [], []
    for number, item in enumerate(ordered):
        reasons = []
        if policy["within"] and (start is None or item["time"] > start):
            reasons.append("within %s" % "".join("%d%s" % (n, u) for n, u in zip(policy["within"], "ymdh") if n))
        t = datetime.datetime.fromtimestamp(item["time"], tz)
        for name, bucket, reason in BUCKETS:
            if left[name] <= 0:
                continue
            value = number if bucket is None else bucket(t)
            if last.get(name, ()) != value:
                last[name] = value
                left[name] -= 1
                reasons.append(reason)
        if reasons:
            kept.append(dict(item, reasons=reasons))
        else:
            removed.append(item)
    return kept, removed


def rfc3339(seconds):
    """A unix time as an RFC 3339 UTC time to the second (pure)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def archive_entry(directory, item, kind):
    """An archive set as the module's ``removed`` (kind archive or leftover) or ``kept`` (kind None) lists it
    (pure)."""
    entry = dict(path=os.path.join(directory, item["name"]), name=item["name"], volume=item["volume"],
                 time=rfc3339(item["time"]) if item.get("time") is not None else None)
    if kind is None:
        entry["reasons"] = list(item.get("reasons") or [])
    else:
        entry.update(kind=kind, files=[os.path.join(directory, f) for f in item["files"]])
    return entry


def archive_plan(directory, volume, sets, policy, tz=None):
    """What retention removes of volume's archive sets in directory, and what it keeps (pure).

    ``sets`` is :func:`archive_sets`' ``sets``; ``policy`` :func:`check_archive_policy`'s. Returns ``removed``
    (the archives that go, the oldest first, as :func:`archive_entry` of kind archive; then the volume's
    leftovers, kind leftover), ``kept`` (the oldest first) and ``considered``, the names of the volume's sets.
    """
    mine = [s for s in sets if s["volume"] == volume]
    kept, going = keep_archives([s for s in mine if s["kind"] == "archive"], policy, tz)
    leftovers = sorted((s for s in mine if s["kind"] == "leftover"), key=lambda s: s["name"])
    removed = ([archive_entry(directory, s, "archive") for s in reversed(going)]
               + [archive_entry(directory, s, "leftover") for s in leftovers])
    return dict(removed=removed, kept=[archive_entry(directory, s, None) for s in reversed(kept)],
                considered=sorted(s["name"] for s in mine), going=list(reversed(going)) + leftovers)


def open_archive_directory(path):
    """The directory of archives at path (an fdtree.Dir); DockerError when it is missing, a symbolic link or not a
    directory."""
    with os_errors("reading the directory of archives %s" % path, "check the path and its permissions"):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise DockerError("the directory of archives %s does not exist; give the directory that volume_backup "
                              "wrote the archives to" % path) from None
        if stat.S_ISLNK(st.st_mode):
            raise DockerError("the directory of archives %s is a symbolic link; refusing to follow it, give the real "
                              "directory" % path)
        if not stat.S_ISDIR(st.st_mode):
            raise DockerError("path %s is not a directory; give the directory that holds the archives (and their "
                              ".manifest.json and .sha256 files), not an archive" % path)
        return fdtree.open_root(path)


def _kind(directory, name):
    """The lstat of name in directory, or None when there is nothing."""
    try:
        return fdtree.lstat(directory, name)
    except FileNotFoundError:
        return None


def _read(directory, name, limit=None):
    """The bytes of the regular file name in directory (at most limit), never through a symlink."""
    fd = fdtree.open_file(directory, name)
    with os.fdopen(fd, "rb") as f:
        return f.read() if limit is None else f.read(limit)


def _manifest_of(directory, name):
    """(the manifest document, None) of the manifest file name, or (None, why it is not one)."""
    if _kind(directory, name + MANIFEST_SUFFIX) is not None:
        return None, "it is an archive that has a manifest of its own"
    if _read(directory, name, 1) != b"{":
        return None, "it is not a persist.docker manifest"
    try:
        doc = manifest.load(_read(directory, name).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return None, "it is not a persist.docker manifest (%s)" % exc
    if not isinstance(doc.get("volume"), str) or not doc["volume"]:
        return None, "its manifest names no volume"
    return doc, None


def archive_sets(directory, path):
    """The archive sets in directory (an fdtree.Dir of path), read without following a symlink:
    ``{"sets": [...], "ignored": [...]}``.

    A set is found by its manifest ``NAME.manifest.json`` (a regular file, a persist.docker manifest that names
    its ``volume``). It is an **archive** (``kind``) when ``NAME`` and ``NAME.sha256`` are regular files too and
    the checksum file records the sha256 the manifest does (the archive is not hashed again); its ``time`` is the
    modification time of the archive file. It is a **leftover** when ``NAME`` is gone (what a removal killed
    half-way leaves). Anything else - the checksum file missing (a backup that may still be writing it) or not
    matching, the archive a symbolic link, a manifest that cannot be read - is in ``ignored`` with the reason,
    and never removed. Each set has ``name``, ``volume``, ``time``, ``kind``, ``files`` (the names of its files,
    in the order they are removed) and ``inode`` (of its archive).
    """
    sets, ignored = [], []
    with os_errors("reading the directory of archives %s" % path, "check the directory and its permissions"):
        names = sorted(os.listdir(directory.fd))
        for name in names:
            if not name.endswith(MANIFEST_SUFFIX) or name == MANIFEST_SUFFIX:
                continue
            found, why = _archive_set(directory, name)
            if why is None:
                sets.append(found)
            else:
                ignored.append(dict(path=os.path.join(path, name[:-len(MANIFEST_SUFFIX)]), volume=found,
                                    reason=why))
    return dict(sets=sets, ignored=ignored)


def _archive_set(directory, manifest_name):
    """(set, None) of a manifest file, or (its volume or None, why it is ignored)."""
    st = _kind(directory, manifest_name)
    doc, why = None, None
    if st is None:
        why = "its manifest was removed while the directory was read"
    elif not stat.S_ISREG(st.st_mode):
        why = "its manifest is a symbolic link or not a regular file"
    else:
        doc, why = _manifest_of(directory, manifest_name)
    return (None, why) if doc is None else _set_of(directory, manifest_name, doc)


def _set_of(directory, manifest_name, doc):
    """_archive_set() of a manifest that was read."""
    archive_name, _manifest, checksum_name = archive.archive_files(manifest_name[:-len(MANIFEST_SUFFIX)])
    volume = doc["volume"]
    archive_st, checksum_st = _kind(directory, archive_name), _kind(directory, checksum_name)
    checksum_there = checksum_st is not None and stat.S_ISREG(checksum_st.st_mode)
    if archive_st is None:  # a checksum file that is a symlink goes too: unlinked, never followed
        files = ([checksum_name] if checksum_st is not None and not stat.S_ISDIR(checksum_st.st_mode) else []) \
            + [manifest_name]
        return dict(name=archive_name, volume=volume, time=None, kind="leftover", files=files, inode=None), None
    if not stat.S_ISREG(archive_st.st_mode):
        return volume, "the archive is a symbolic link or not a regular file"
    if checksum_st is None:
        return volume, "it has no checksum file (a backup may still be writing it)"
    if not checksum_there:
        return volume, "its checksum file is a symbolic link or not a regular file"
    recorded = _read(directory, checksum_name, 200).decode("ascii", "replace").split()
    if not recorded or recorded[0].lower() != doc.get("archive_sha256"):
        return volume, "its checksum file does not record the sha256 its manifest does"
    return dict(name=archive_name, volume=volume, time=archive_st.st_mtime, kind="archive",
                files=[archive_name, checksum_name, manifest_name],
                inode=(archive_st.st_dev, archive_st.st_ino)), None


def remove_set(directory, path, item):
    """Remove an archive set (of :func:`archive_sets`) from directory (an fdtree.Dir of path): the archive
    first (and the directory synced, so that it is gone before the rest), then its checksum file and its
    manifest. A file already gone is skipped; an archive that is no longer the file that was read (written
    again meanwhile) is left with its files, and DockerError says so."""
    first, rest = (item["files"][0], item["files"][1:]) if item["kind"] == "archive" else (None, item["files"])
    with os_errors("removing the archive %s" % os.path.join(path, item["name"]),
                   "check the directory and its permissions, and run again"):
        if first is not None:
            st = _kind(directory, first)
            if st is not None and (st.st_dev, st.st_ino) != item["inode"]:
                raise DockerError("the archive %s was written again while retention ran; it was left as it is, run "
                                  "again" % os.path.join(path, first))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(first, dir_fd=directory.fd)
            os.fsync(directory.fd)
        for name in rest:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=directory.fd)
        os.fsync(directory.fd)
