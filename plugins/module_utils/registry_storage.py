# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a registry keeps its images, and when that place may be deleted (pure decisions).

:func:`plan_storage` chooses the storage mount of the registry container: the one the options
name, or, when they name none, the one the existing container already mounts at
``/var/lib/registry`` (a registry started by hand with ``docker run registry:2`` keeps its images
in an anonymous volume; recreating it with other storage would lose them from sight).
:func:`plan_purge` decides whether ``purge_storage`` may delete that storage: only what this module
created, on this host, and that no other container mounts.
"""

from __future__ import annotations

import os
import re

from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.registry_config import STORAGE_DIR, STORAGE_LABEL

# Container label: the host directory this module created for the storage (purge_storage may delete it).
# STORAGE_LABEL (on the container and on a volume the module created) records the storage itself.
CREATED_LABEL = "persist.docker.registry.created_path"

# Directories purge_storage never deletes, nor any directory that holds one of them (top-level ones are
# refused by their depth).
PROTECTED_DIRS = ("/var/lib", "/var/lib/docker", "/var/log", "/var/cache", "/var/spool", "/var/tmp", "/var/mail",
                  "/usr/local", "/usr/lib", "/usr/share", "/usr/bin", "/usr/sbin", "/etc/docker", "/root/.ssh")

ANONYMOUS_RE = re.compile(r"^[0-9a-f]{64}$")


def is_anonymous(volume_name):
    return bool(ANONYMOUS_RE.match(volume_name or ""))


def mounted_storage(container):
    """The mount of an existing container at /var/lib/registry, as "bind:<path>" or "volume:<name>", or None."""
    for mount in (container or {}).get("Mounts") or []:
        if mount.get("Destination") != STORAGE_DIR:
            continue
        if mount.get("Type") == "bind":
            return "bind:%s" % mount["Source"].rstrip("/")
        if mount.get("Type") == "volume" and mount.get("Name"):
            return "volume:%s" % mount["Name"]
    return None


def default_volume(params):
    return params.get("storage_volume") or "%s-data" % params["name"]


def plan_storage(params, container, strict=True):
    """The storage mount the registry container should have.

    params: the module options; container: the inspect of the existing container or None.
    Returns dict(mounts={STORAGE_DIR: "bind:<path>" | "volume:<name>"} (empty for storage outside
    the host), adopted=the adopted mount or None, anonymous=the adopted anonymous volume or None,
    warnings=[...]). With strict, raises DockerError when the options would leave the images of an
    anonymous volume behind.
    """
    current = mounted_storage(container)
    labels = ((container or {}).get("Config") or {}).get("Labels") or {}
    recorded = labels.get(STORAGE_LABEL)
    # a container this module deployed with storage outside the host has only the image's empty volume there
    current_is_storage = current is not None and (recorded is None or recorded.startswith(("bind:", "volume:")))
    anonymous = current[len("volume:"):] if current_is_storage and current.startswith("volume:") else None
    anonymous = anonymous if is_anonymous(anonymous) else None

    if params["storage"] != "filesystem":
        wanted = params["storage"]
    elif params.get("storage_path"):
        wanted = "bind:%s" % params["storage_path"].rstrip("/")
    elif params.get("storage_volume"):
        wanted = "volume:%s" % params["storage_volume"]
    elif current_is_storage:  # filesystem storage, and the options name none: keep what is there
        adopted = current if current != "volume:%s" % default_volume(params) else None
        warnings = []
        if anonymous:
            warnings.append(
                "registry '%s' keeps its images in the anonymous volume %s, which this run adopted as its storage; "
                "an anonymous volume is easily lost (docker rm -v, docker volume prune): copy it into a named volume "
                "and give storage_volume" % (params["name"], anonymous))
        return dict(mounts={STORAGE_DIR: current}, adopted=adopted, anonymous=anonymous, warnings=warnings)
    else:
        wanted = "volume:%s" % default_volume(params)

    if strict and anonymous and wanted != current:
        raise DockerError(
            "registry '%s': the container keeps its images in the anonymous volume %s, and %s would start it on "
            "other storage and leave them behind; to keep them, leave storage_path and storage_volume unset (the "
            "volume is adopted) or set storage_volume: %s; to start afresh, remove the container first (state: "
            "absent keeps the volume)" % (params["name"], anonymous, _describe(wanted), anonymous))
    mounts = {STORAGE_DIR: wanted} if params["storage"] == "filesystem" else {}
    return dict(mounts=mounts, adopted=None, anonymous=None, warnings=[])


def _describe(storage):
    kind, _sep, source = storage.partition(":")
    return "%s %s" % ("storage_path" if kind == "bind" else "volume", source) if source else "storage %s" % kind


def storage_label(mounts, backend):
    """The value of STORAGE_LABEL for a container with these wanted mounts."""
    return mounts.get(STORAGE_DIR) or backend


def created_path(params, container, created_now):
    """The directory to record in CREATED_LABEL: created by this run, or recorded on the container it replaces."""
    path = (params.get("storage_path") or "").rstrip("/")
    if not path:
        return None
    if created_now:
        return path
    labels = ((container or {}).get("Config") or {}).get("Labels") or {}
    recorded = labels.get(CREATED_LABEL)
    return recorded if recorded and is_below(path, recorded) else None


def is_below(path, top):
    """Whether path is top or lies below it (both absolute, already resolved)."""
    path, top = path.rstrip("/") or "/", top.rstrip("/") or "/"
    if top == "/":
        return True
    return path == top or path.startswith(top + "/")


def plan_purge(name, target, *, local, docker_host, created, resolved=None, volume_labels=None, users=()):
    """What purge_storage may delete, or DockerError saying why not.

    target: "bind:<path>" or "volume:<name>" (or None: nothing to delete); resolved: the path with its
    symbolic links resolved; local: whether the engine runs on this host; created: the directory this
    module recorded as created (CREATED_LABEL) or None; volume_labels: the labels of the volume; users:
    names of other containers that mount the storage. Returns the action text.
    """
    if not target:
        return None
    kind, _sep, source = target.partition(":")
    if users:
        raise DockerError("registry '%s': refusing to purge %s %s: container%s %s mount%s it too; remove %s first or "
                          "leave purge_storage false" % (name, "storage_path" if kind == "bind" else "volume", source,
                                                         "s" if len(users) > 1 else "", ", ".join(users),
                                                         "" if len(users) > 1 else "s",
                                                         "them" if len(users) > 1 else "it"))
    if kind == "volume":
        if (volume_labels or {}).get(STORAGE_LABEL) != name:
            raise DockerError("registry '%s': refusing to purge volume %s: this module did not create it for this "
                              "registry (no label %s=%s); delete it yourself (docker volume rm %s) if you mean it"
                              % (name, source, STORAGE_LABEL, name, source))
        return "deleted volume %s" % source
    if not local:
        raise DockerError("registry '%s': refusing to purge storage_path %s: the engine at %s is another machine, "
                          "and the path would be deleted on the host that runs this module; delete it on the "
                          "engine's host" % (name, source, docker_host))
    if resolved is not None and resolved.rstrip("/") != os.path.normpath(source):
        raise DockerError("registry '%s': refusing to purge storage_path %s: it leads through a symbolic link to %s; "
                          "delete it yourself if you mean it" % (name, source, resolved))
    if len([part for part in source.split("/") if part]) < 2:
        raise DockerError("registry '%s': refusing to purge storage_path %s, a top-level directory; delete it "
                          "yourself if you mean it" % (name, source))
    if any(is_below(protected, os.path.normpath(source)) for protected in PROTECTED_DIRS):
        raise DockerError("registry '%s': refusing to purge storage_path %s, a system directory or one that holds "
                          "one; delete what you mean yourself" % (name, source))
    if not created or not is_below(os.path.normpath(source), os.path.normpath(created)):
        raise DockerError("registry '%s': refusing to purge storage_path %s: this module did not create it (the "
                          "container records no such directory in its label %s); delete it yourself if you mean "
                          "it" % (name, source, CREATED_LABEL))
    return "deleted storage directory %s" % source
