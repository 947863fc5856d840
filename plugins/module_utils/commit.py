# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Decisions for container_commit: validation, fingerprints and the plan."""

from __future__ import annotations

import hashlib
import json

from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

# The Dockerfile instructions `docker commit --change` applies.
COMMIT_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD",
                       "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")

# The label that records, on each image this module commits, what it was made of.
FINGERPRINT_LABEL = "persist.docker.commit.fingerprint"


def validate_changes(changes):
    """Strip the Dockerfile instructions and check that `docker commit` accepts each one."""
    result = []
    for change in changes or []:
        text = (change or "").strip()
        keyword = text.split(None, 1)[0].upper() if text else ""
        if keyword not in COMMIT_INSTRUCTIONS:
            raise DockerError("changes: '%s' is not an instruction docker commit accepts; use one of %s"
                              % (change, ", ".join(COMMIT_INSTRUCTIONS)))
        if len(text.split(None, 1)) < 2:
            raise DockerError("changes: '%s' has no arguments" % change)
        result.append(text)
    return result


def fingerprint(container_id, layer_digest, author, comment, changes):
    """One digest of the container, its writable layer and the requested metadata."""
    material = json.dumps({
        "container": container_id,
        "layer": layer_digest,
        "author": author or "",
        "comment": comment or "",
        "changes": list(changes),
    }, sort_keys=True)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def plan_commit(existing, wanted_fingerprint, force):
    """Decide whether to commit.

    ``existing`` is the image the target name points at (inspect dict) or None.
    Returns (commit: bool, reason: str).
    """
    if force:
        return True, "forced"
    if existing is None:
        return True, "the image does not exist yet"
    labels = (existing.get("Config") or {}).get("Labels") or {}
    recorded = labels.get(FINGERPRINT_LABEL)
    if recorded is None:
        return True, "the image was not committed by this module"
    if recorded != wanted_fingerprint:
        return True, "the writable layer or the requested metadata changed since the last commit"
    return False, "the image is up to date with the container"


def commit_changes(changes, wanted_fingerprint):
    """The instructions sent to the Engine: the user's, then the fingerprint label."""
    return list(changes) + ['LABEL %s="%s"' % (FINGERPRINT_LABEL, wanted_fingerprint)]
