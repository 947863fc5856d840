# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The decisions of backup_retention: which snapshots of a restic repository a retention policy removes.

restic decides which **data snapshots** of a volume go: ``restic forget --dry-run --json <policy> --tag
persist.docker.volume=V --group-by host`` prints its plan (what it keeps, with its reasons, and what it
removes), which :func:`parse_forget` reads; the policy itself is never re-implemented here, only its options
are checked and written (:func:`policy_args`). :func:`plan` adds the **manifest snapshots** (the snapshot
convention of ``restic.py``): the manifest of each removed data snapshot's run, and the orphans (manifests
whose run has no data snapshot left) that are older than the newest data snapshot of their volume and host,
since a backup writes its data snapshot first and its manifest after it. Snapshots outside the convention
are never in a plan.

Everything here is pure; the module runs restic and carries the plan out.
"""

from __future__ import annotations

import calendar
import json
import re

from ansible_collections.persist.docker.plugins.module_utils import restic
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

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
