# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Decisions for registry_gc: which tags go by the retention rule, which blobs the collector frees."""

from __future__ import annotations

import re

from ansible_collections.persist.docker.plugins.module_utils.client import DockerError

_ELIGIBLE_RE = re.compile(r"blob eligible for deletion: (sha256:[0-9a-f]{64})")
_MANIFEST_RE = re.compile(r"manifest eligible for deletion: (sha256:[0-9a-f]{64})")


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


def plan_retention(tags, keep, pattern):
    """Decide which tags of one repository go.

    tags: list of dicts {tag, digest, created} (created: ISO 8601 text or None).
    keep: keep this many of the newest matching tags (None: keep none of them when pattern is given,
    all of them otherwise). pattern: a compiled regex; only matching tags are candidates (None: all).
    Returns dict(delete=[tags], keep=[tags], digests=[manifest digests to delete], shared=[tags that
    cannot go because a kept tag points at the same manifest]).
    """
    if keep is None and pattern is None:
        return dict(delete=[], keep=[t["tag"] for t in tags], digests=[], shared=[])
    candidates = [t for t in tags if pattern is None or pattern.search(t["tag"])]
    # newest first; tags without a date count as oldest; ties broken by name, descending
    candidates.sort(key=lambda t: (created_key(t.get("created")), t["tag"]), reverse=True)
    kept = candidates[:keep] if keep else []
    going = candidates[len(kept):]
    kept_names = {t["tag"] for t in kept} | {t["tag"] for t in tags if t not in candidates}
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
    return dict(delete=sorted(delete), keep=sorted(kept_names | set(shared)), digests=digests, shared=sorted(shared))


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
