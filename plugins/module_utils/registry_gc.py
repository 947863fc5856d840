# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Decisions for registry_gc: which tags go by the retention rule, which blobs the collector frees."""

from __future__ import annotations

import re

from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

_ELIGIBLE_RE = re.compile(r"blob eligible for deletion: (sha256:[0-9a-f]{64})")
_MANIFEST_RE = re.compile(r"manifest eligible for deletion: (sha256:[0-9a-f]{64})")
# The collector of registry:2 fails on a store that has never held a repository (no repositories
# directory yet, e.g. a fresh filesystem store): "failed to mark: filesystem: Path not found: ...".
_EMPTY_STORE_RE = re.compile(r"failed to mark: [\w.-]+: Path not found: (/[^\s]*)?/docker/registry/v2/repositories\s*$",
                             re.MULTILINE)


def compile_pattern(pattern):
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise DockerError("match '%s' is not a valid regular expression: %s" % (pattern, exc)) from None


def created_key(created):
    """A sortable form of an RFC 3339 time with optional nanoseconds (Go trims trailing zeros)."""
    if not created:
        return ""
    text = created.strip().rstrip("Zz")
    match = re.match(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?:\.(\d+))?", text)
    if not match:
        return text
    return "%s.%s" % (match.group(1).replace(" ", "T"), (match.group(2) or "").ljust(9, "0")[:9])


def natural_key(text):
    """A sort key that orders the numbers inside a name by value: v9 before v10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text or "") if part]


def newest_created(dates):
    """The newest of several RFC 3339 times (None when none is known): the date of an image index."""
    known = [d for d in dates if d]
    return max(known, key=created_key) if known else None


def plan_retention(tags, keep, pattern, unknown_age="keep"):
    """Decide which tags of one repository go.

    tags: list of dicts {tag, digest, created} (created: ISO 8601 text or None when the age is unknown).
    keep: keep this many of the newest matching tags (None: keep none of them when pattern is given,
    all of them otherwise). pattern: a compiled regex; only matching tags are candidates (None: all).
    unknown_age: "keep" leaves the matching tags without a date out of the rule (they stay);
    "delete" ranks them below every dated tag, the lower version number (v9 below v10) first to go.
    Returns dict(delete=[tags], keep=[tags], digests=[manifest digests to delete], shared=[tags that
    cannot go because a kept tag points at the same manifest], unknown=[matching tags of unknown age
    kept by unknown_age=keep]).
    """
    if keep is None and pattern is None:
        return dict(delete=[], keep=sorted(t["tag"] for t in tags), digests=[], shared=[], unknown=[])
    candidates = [t for t in tags if pattern is None or pattern.search(t["tag"])]
    unknown = sorted(t["tag"] for t in candidates if not t.get("created")) if unknown_age == "keep" else []
    candidates = [t for t in candidates if t["tag"] not in unknown]
    # newest first; tags without a date after every dated one; ties by version-aware name, the higher first
    candidates.sort(key=lambda t: (bool(t.get("created")), created_key(t.get("created")), natural_key(t["tag"])),
                    reverse=True)
    kept = candidates[:keep] if keep else []
    going = candidates[len(kept):]
    going_names = {t["tag"] for t in going}
    kept_names = {t["tag"] for t in tags if t["tag"] not in going_names}
    kept_digests = {t["digest"] for t in tags if t["tag"] in kept_names}
    delete, shared, digests = [], [], []
    for tag in going:
        if tag["digest"] in kept_digests:
            shared.append(tag["tag"])
            continue
        delete.append(tag["tag"])
        if tag["digest"] not in digests:
            digests.append(tag["digest"])
    # a manifest is deleted only when every tag pointing at it goes
    return dict(delete=sorted(delete), keep=sorted(kept_names | set(shared)), digests=digests, shared=sorted(shared),
                unknown=unknown)


def still_deletable(digest, planned_tags, current):
    """Whether a manifest may still be deleted: no tag outside the planned ones points at it now (pure).

    current: {tag: digest} read again just before the delete (a push may have moved a tag onto it).
    """
    return not [tag for tag, found in current.items() if found == digest and tag not in planned_tags]


def predict_freed_blobs(deleted, remaining, eligible_now):
    """Blobs the collector will delete after the manifests in ``deleted`` are gone.

    deleted / remaining: lists of manifest summaries (digest, config_digest, layers); eligible_now:
    blob digests a dry run of the collector already reports. A deleted manifest's own blob, its config
    and its layers become free unless a remaining manifest references them.
    """
    referenced = set()
    for manifest in remaining:
        referenced.update(_blobs_of(manifest))
    freed = set(eligible_now)
    for manifest in deleted:
        freed.update(b for b in _blobs_of(manifest) if b not in referenced)
    return sorted(freed)


def _blobs_of(manifest):
    blobs = {manifest.get("digest")}
    if manifest.get("config_digest"):
        blobs.add(manifest["config_digest"])
    blobs.update(layer["digest"] for layer in manifest.get("layers") or [])
    blobs.discard(None)
    return blobs


def blob_sizes(manifests):
    """{digest: size} of configs and layers known from manifest summaries."""
    sizes = {}
    for manifest in manifests:
        if manifest.get("config_digest"):
            sizes[manifest["config_digest"]] = manifest.get("config_size") or 0
        for layer in manifest.get("layers") or []:
            sizes[layer["digest"]] = layer["size"]
    return sizes


def parse_gc_output(text):
    """The blob digests (and untagged manifests) the registry's garbage collector reports as deleted."""
    blobs = sorted(set(_ELIGIBLE_RE.findall(text or "")))
    manifests = sorted(set(_MANIFEST_RE.findall(text or "")))
    return blobs, manifests


def empty_store(output):
    """Whether the collector failed only because the storage holds no repository yet (nothing to collect)."""
    return bool(_EMPTY_STORE_RE.search(output or ""))


def readonly_config(config):
    """A copy of a rendered registry config in read-only maintenance mode."""
    result = dict(config)
    storage = dict(result.get("storage") or {})
    maintenance = dict(storage.get("maintenance") or {})
    maintenance["readonly"] = {"enabled": True}
    maintenance["uploadpurging"] = {"enabled": False}
    storage["maintenance"] = maintenance
    result["storage"] = storage
    return result
