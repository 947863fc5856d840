# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The decisions of an incremental copy (pure): what a pass copies, keeps and removes, and when passes stop.

A *listing* is ``{relative path: Meta}`` of a tree, from ``lstat`` on this host
(:func:`meta_of`) or from a helper container's ``find``/``stat`` through the
Engine API (:func:`parse_listing`). Ids are those the containers see.

A *record* is ``{path: key}``: the :func:`key` (inode, size, mtime_ns, ctime_ns)
of the source entry each target entry was made from, kept by the run across its
passes. Only the source's key means anything from one pass to the next: the
target's entries are the run's own. A target entry is kept only when it was made
from the source entry as it is now (same key) and still looks like it (type,
size, mtime in ns, mode, owner); everything else is made anew. Entries whose key
cannot be trusted from one pass to the next - directories (their times are set
every pass), hard-linked files (a group is made whole) - are always made or set.

* :func:`plan_delta` -- one pass: remove, make, keep, and the bytes it copies.
* :func:`seedable` -- the files of an earlier copy (the destination's visible tree)
  that may seed the staged tree, by size, mtime in ns, mode and owner (rsync's
  quick check); the final verification still compares every entry.
* :func:`next_pass` -- whether pre-copy goes on with another pass or stops the containers.
* :func:`parse_listing` -- the listing a helper container writes (:data:`LISTING_SCRIPT`), for the
  same decisions through the Engine API (api_sync.py).
"""

from __future__ import annotations

import calendar
import collections
import os
import stat

from ansible_collections.persist.docker.plugins.module_utils.manifest import STAGING

# One entry of a listing. kind: file, dir, symlink, fifo, char, block.
# target: a symbolic link's target as str (surrogateescape), in a helper's listing only (None otherwise).
Meta = collections.namedtuple("Meta", "kind mode uid gid size mtime_ns ino ctime_ns nlink rdev target",
                              defaults=(None,))

_KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo",
          stat.S_IFCHR: "char", stat.S_IFBLK: "block"}


def meta_of(st, ids=None):
    """The Meta of an lstat result (None for a socket); ids maps host (uid, gid) to the containers' view."""
    kind = _KINDS.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        return None
    uid, gid = ids(st.st_uid, st.st_gid) if ids else (st.st_uid, st.st_gid)
    return Meta(kind, stat.S_IMODE(st.st_mode), uid, gid, st.st_size if kind in ("file", "symlink") else 0,
                st.st_mtime_ns, st.st_ino, st.st_ctime_ns, st.st_nlink, st.st_rdev if kind in ("char", "block") else 0)


def key(meta):
    """What says that an entry is still the one seen before: inode, size, mtime and ctime in ns."""
    return (meta.ino, meta.size, meta.mtime_ns, meta.ctime_ns)


def looks_same(src, dst):
    """Whether target entry dst looks like source entry src: type, size, mtime in ns, mode, owner (and device)."""
    if src.kind != dst.kind or (src.uid, src.gid) != (dst.uid, dst.gid) or src.rdev != dst.rdev:
        return False
    if src.kind == "symlink":  # a link's mode and mtime are not its own to set everywhere
        return src.size == dst.size
    return src.mode == dst.mode and src.size == dst.size and src.mtime_ns == dst.mtime_ns


Delta = collections.namedtuple("Delta", "remove make keep dirs bytes")


def plan_delta(source, target, record):
    """One pass from listing source to listing target (pure).

    remove: target paths to remove before anything is made (a removed
    directory goes with its tree, so none of its children is listed);
    make: source paths to make, parents first (a directory that exists is not
    in it); keep: source paths left as they are; dirs: every source directory
    (its owner, mode and times are set at the end of the pass); bytes: the
    summed size of the files made (hard links to a file made earlier count
    nothing).
    """
    remove, make, keep, dirs = [], [], [], []
    total = 0
    gone = set()
    for path in sorted(target, key=_depth):
        if path == "" or _under(path, gone):
            continue
        src = source.get(path)
        if src is None or src.kind != target[path].kind:
            remove.append(path)
            if target[path].kind == "dir":
                gone.add(path)
    removed = set(remove)
    present = dict((path, meta) for path, meta in target.items() if path not in removed and not _under(path, gone))
    whole = _whole_groups(source, present, lambda path, src, dst: record.get(path) == key(src))
    linked = {}
    for path, src in source.items():
        dst = present.get(path)
        if src.kind == "dir":
            dirs.append(path)
            if dst is None and path:
                make.append(path)
            continue
        if dst is not None and record.get(path) == key(src) and looks_same(src, dst) and (
                src.kind != "file" or src.nlink == 1 or src.ino in whole):
            keep.append(path)
            continue
        if dst is not None:
            remove.append(path)
        make.append(path)
        if src.kind == "file":
            first = linked.setdefault(src.ino, path) if src.nlink > 1 else path
            if first == path:
                total += src.size
    return Delta(remove, make, keep, dirs, total)


def _whole_groups(source, target, fits):
    """The source inodes of hard-link groups that the target holds whole: every member at its path, fits()
    and looks_same(), all of them one target inode that no other target path links (pure)."""
    groups = collections.defaultdict(list)
    for path, src in source.items():
        if src.kind == "file" and src.nlink > 1:
            groups[src.ino].append(path)
    by_inode = collections.Counter(m.ino for m in target.values() if m.kind == "file")
    whole = set()
    for ino, paths in groups.items():
        found = [target.get(path) for path in paths]
        if any(dst is None or not looks_same(source[path], dst) or not fits(path, source[path], dst)
               for path, dst in zip(paths, found)):
            continue
        inodes = set(dst.ino for dst in found)
        if len(paths) == source[paths[0]].nlink and len(inodes) == 1 and by_inode[found[0].ino] == len(paths):
            whole.add(ino)
    return whole


def _depth(path):
    return (path.count("/"), path)


def _under(path, dirs):
    """Whether path lies below one of dirs."""
    head = path
    while "/" in head:
        head = head.rpartition("/")[0]
        if head in dirs:
            return True
    return False


def seedable(source, visible):
    """The regular files of an earlier copy that may seed a new staged tree, as the record that keeps them:
    files at the same path that look like the source's (looks_same), single-link files whose copy is single
    too, and hard-link groups held whole (pure)."""
    whole = _whole_groups(source, visible, lambda path, src, dst: True)
    record = {}
    for path, src in source.items():
        dst = visible.get(path)
        if src.kind != "file" or dst is None or not looks_same(src, dst):
            continue
        if (src.nlink == 1 and dst.nlink == 1) or (src.nlink > 1 and src.ino in whole):
            record[path] = key(src)
    return record


def next_pass(passes, max_passes, threshold):
    """Whether pre-copy runs another pass while the containers run (pure).

    passes: bytes_copied of the passes made so far. Stops when the last pass
    copied at most threshold bytes, when max_passes passes are made, or when
    a pass copied no less than the one before it (the writers are as fast as
    the copy: more passes would not shorten the final one).
    """
    if not passes:
        return True
    if len(passes) >= max_passes or passes[-1] <= threshold:
        return False
    return not (len(passes) >= 2 and passes[-1] >= passes[-2])


# ---------------------------------------------------------------- the listing of a helper container

# Lists the tree at "." (the volume root, the staging directory left out) as NUL-separated names in
# NAMES and one fixed-form line per name in STATS, in the order of a second walk (parse_listing finds a
# line out of order, and leaves out a name without one): "ino size rawmode uid gid nlink
# major minor mtime ctime 'name'" (mtime and ctime as busybox stat's %y/%z: date, time with ns, zone),
# then " -> 'target'" for a symbolic link (its size is the target's length in bytes).
STAT_FORMAT = "%i %s %f %u %g %h %t %T %y %z %N"
LISTING_SCRIPT = (
    "set -e; cd \"$1\"; "
    "find . -path ./" + STAGING + " -prune -o -print0 > \"$2\"; "
    # find -exec, not xargs: busybox's xargs -0 mangles long argument lists (1.35: names repeated and cut)
    "find . -path ./" + STAGING + " -prune -o -exec stat -c '" + STAT_FORMAT + "' {} + > \"$3\" || true"
)


def _time_ns(date, clock, zone):
    """ns since the epoch of busybox stat's '2024-01-31 12:00:00.123456789 +0100' (pure)."""
    whole, _dot, frac = clock.partition(".")
    seconds = calendar.timegm(tuple(int(x) for x in date.split("-")) + tuple(int(x) for x in whole.split(":")))
    sign = -1 if zone.startswith("-") else 1
    offset = sign * (int(zone[1:3]) * 3600 + int(zone[3:5]) * 60)
    return (seconds - offset) * 10 ** 9 + int((frac + "000000000")[:9])


def parse_listing(names, stats):
    """The listing from the helper's two files (bytes): NAMES, NUL-separated, and STATS (pure).

    Each name is matched to its line by its own bytes, so any name (newlines,
    quotes, bytes that are not UTF-8) is read right; a name whose line is
    missing (the entry vanished between find and stat) is left out. The lines
    are expected in the order of the names, but a line found elsewhere is read
    too (busybox stat does not always write its lines in the order of its
    arguments).
    Paths are relative ('' is the root), str with surrogateescape.
    """
    out = {}
    pos = 0
    for raw in names.split(b"\0"):
        if not raw:
            continue
        parsed = _parse_line(stats, pos, raw) or _find_line(stats, raw)
        if parsed is None:
            continue
        meta, pos = parsed
        if meta is None:
            continue
        rel = raw[2:] if raw.startswith(b"./") else b"" if raw == b"." else raw
        out[rel.decode("utf-8", "surrogateescape")] = meta
    return out


def _find_line(stats, raw):
    """_parse_line() of name raw's line wherever it is in stats, or None (pure). The fields before a name hold
    no newline: a line starts after the last one before its name."""
    for needle in (b" " + raw + b"\n", b" '" + raw + b"' -> '"):
        at = stats.find(needle)
        while at >= 0:
            parsed = _parse_line(stats, stats.rfind(b"\n", 0, at) + 1, raw)
            if parsed is not None:
                return parsed
            at = stats.find(needle, at + 1)
    return None


def _parse_line(stats, pos, raw):
    """(Meta, position after the line) of name raw's line at pos of stats, or None when it is not there."""
    fields = []
    at = pos
    for _i in range(14):
        end = stats.find(b" ", at)
        if end < 0:
            return None
        fields.append(stats[at:end])
        at = end + 1
    try:
        ino, size, rawmode, uid, gid, nlink = (int(fields[0]), int(fields[1]), int(fields[2], 16), int(fields[3]),
                                               int(fields[4]), int(fields[5]))
        major, minor = int(fields[6], 16), int(fields[7], 16)
        mtime = _time_ns(*(f.decode("ascii") for f in fields[8:11]))
        ctime = _time_ns(*(f.decode("ascii") for f in fields[11:14]))
    except (ValueError, UnicodeDecodeError, IndexError):
        return None
    kind = _KINDS.get(stat.S_IFMT(rawmode))
    # busybox %N: the name as it is; a symbolic link's as 'name' -> 'target' (target: size bytes)
    named = b"'" + raw + b"' -> '" if kind == "symlink" else raw
    if not stats.startswith(named, at):
        return None
    at += len(named)
    target = None
    if kind == "symlink":
        target = stats[at:at + size].decode("utf-8", "surrogateescape")
        at += size + 1
    if stats[at:at + 1] != b"\n":
        return None
    if kind is None:
        return None, at + 1
    rdev = os.makedev(major, minor) if kind in ("char", "block") else 0
    return Meta(kind, stat.S_IMODE(rawmode), uid, gid, size if kind in ("file", "symlink") else 0, mtime, ino, ctime,
                nlink, rdev, target), at + 1
