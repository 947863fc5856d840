# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Image references (``[host[:port]/]path[:tag]``): the one place that parses and validates them."""

from __future__ import annotations

import re

from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

# Docker's reference grammar (distribution/reference), without digests.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = r"(?:%s(?:\.%s)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?" % (_DOMAIN_PART, _DOMAIN_PART)
_NAME_RE = re.compile(r"^(?:%s/)?%s(?:/%s)*$" % (_DOMAIN, _COMPONENT, _COMPONENT))
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")


def split_reference(repository, tag):
    """Validate a repository name and tag; a tag inside repository wins.

    Returns (repository, tag) or raises DockerError naming what is wrong.
    """
    name = repository.strip()
    if "@" in name:
        raise DockerError("repository '%s' holds a digest; give a tag instead of @sha256:..." % repository)
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    if len(name) > 255 or not _NAME_RE.match(name):
        raise DockerError("invalid repository name '%s': use lowercase letters, digits and separators "
                          "(. _ -) in path components, optionally behind a registry host[:port]/" % repository)
    if not _TAG_RE.match(tag or ""):
        raise DockerError("invalid tag '%s' for repository '%s': up to 128 letters, digits, _ . or -, "
                          "not starting with . or -" % (tag, name))
    return name, tag


def registry_of(name):
    """The registry host[:port] a validated repository name starts with, or "" (Docker Hub)."""
    first, sep = name.partition("/")[:2]
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        return first
    return ""
