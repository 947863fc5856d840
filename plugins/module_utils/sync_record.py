# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a relocation remembers of a volume between runs, on the host that runs the module.

One file per volume (named like its lock, below ``PERSIST_DOCKER_STATE_DIR/relocate`` or
:data:`STATE_DIR`), written 0600 in a 0700 directory after a run that left the
destination equal to its source:

* ``files``: ``{path: [ino, size, mtime_ns, ctime_ns, sha256]}`` of the volume's regular
  files - the digests the next run reuses while a file's stat key is unchanged
  (manifest.from_directory's ``known``), so that it does not read the whole volume again;
* ``copy_of`` (destinations only): the source (its engine's key and its name) and the
  digests of the manifest the run left, at the levels ``size`` and ``checksum``.

``copy_of`` is what makes a destination an *earlier copy* (:func:`earlier_copy`): only a
destination that still holds exactly what a run wrote from this source is updated without
``force``; any other data stays guarded. Losing the file costs a full read (and ``force``
for a destination that changed since), never data.
"""

from __future__ import annotations

import contextlib
import json
import os

from ansible_collections.persist.docker.plugins.module_utils import atomic, manifest

STATE_DIR = "/var/lib/persist-docker/relocate"


def path_of(file_name):
    """Where the record named file_name (locking.lock_file_name of the volume, '.json' for '.lock') is kept."""
    base = os.environ.get(atomic.STATE_DIR_ENV)
    return os.path.join(os.path.join(base, "relocate") if base else STATE_DIR, file_name)


def load(path):
    """The record at path ({} when there is none or it cannot be read: it is only a cache)."""
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(doc, dict) or doc.get("format") != 1 or not isinstance(doc.get("files"), dict):
        return {}
    return doc


def known(doc):
    """{path: (ino, size, mtime_ns, ctime_ns, sha256)} of a record (pure)."""
    out = {}
    for path, item in (doc.get("files") or {}).items():
        if isinstance(item, list) and len(item) == 5 and all(isinstance(x, int) for x in item[:4]) \
                and isinstance(item[4], str):
            out[path] = tuple(item)
    return out


def files_of(entries, stats):
    """The ``files`` of a record from a manifest with its stat keys (from_directory's stats; pure)."""
    out = {}
    for entry in entries:
        stat_key = stats.get(entry["path"])
        if entry["type"] == "file" and "sha256" in entry and stat_key is not None:
            out[entry["path"]] = list(stat_key) + [entry["sha256"]]
    return out


def digests(entries):
    """The digests of a manifest at both levels (pure); checksum is None when it holds no content digests."""
    files = [e for e in entries if e["type"] == "file"]
    return dict(size=manifest.digest(manifest.at_level(entries, "size")),
                checksum=manifest.digest(entries) if all("sha256" in e for e in files) else None)


def earlier_copy(doc, source_key, entries, level):
    """Whether a destination (its record doc and manifest entries) holds unchanged what a run wrote from
    source_key ([engine key, volume name]) (pure)."""
    copy_of = doc.get("copy_of") or {}
    if copy_of.get("source") != list(source_key):
        return False
    level = "checksum" if level == "checksum" else "size"
    wanted = copy_of.get(level)
    return wanted is not None and wanted == digests(entries)[level]


def save(path, files, copy_of=None):
    """Write the record (a failure only costs the next run a full read)."""
    doc = dict(format=1, files=files)
    if copy_of is not None:
        doc["copy_of"] = copy_of
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        atomic.write_text(path, json.dumps(doc, separators=(",", ":"), sort_keys=True))
    except OSError:
        pass


def forget(path):
    """Remove the record (its volume was removed, or its data replaced by something else)."""
    with contextlib.suppress(OSError):
        os.unlink(path)
