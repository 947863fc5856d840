# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Image layer stacks and a container's copy-on-write layer."""

from __future__ import annotations

import datetime
import hashlib
import os
import stat

from ansible_collections.persist.docker.plugins.module_utils.client import api_errors, is_local_engine
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

# Kind codes of GET /containers/{id}/changes, as `docker diff` prints them.
CHANGE_KINDS = {0: "C", 1: "A", 2: "D"}


def normalize_changes(raw):
    """The Engine's change list as [{'path', 'kind'}] sorted by path (kind A, C or D)."""
    return sorted(({"path": c["Path"], "kind": CHANGE_KINDS.get(c["Kind"], "?")} for c in raw or []),
                  key=lambda c: c["path"])


def format_history(history):
    """The Engine's image history, oldest layer first, in snake_case."""
    layers = []
    for entry in reversed(history or []):
        created = entry.get("Created")
        layers.append({
            "id": entry.get("Id"),
            "created": (datetime.datetime.fromtimestamp(created, datetime.timezone.utc).isoformat()
                        if created else None),
            "created_by": entry.get("CreatedBy", ""),
            "size": entry.get("Size", 0),
            "comment": entry.get("Comment", ""),
            "tags": entry.get("Tags") or [],
        })
    return layers


def image_info(api, image):
    """Layers (history), diff ids and sizes of an image given by name or id."""
    with api_errors("image '%s'" % image):
        attrs = api.inspect_image(image)
        history = api.history(attrs["Id"])
    return {
        "id": attrs["Id"],
        "tags": attrs.get("RepoTags") or [],
        "created": attrs.get("Created"),
        "author": attrs.get("Author", ""),
        "comment": attrs.get("Comment", ""),
        "size": attrs.get("Size", 0),
        "diff_ids": (attrs.get("RootFS") or {}).get("Layers") or [],
        "layers": format_history(history),
        "config": {
            "cmd": attrs["Config"].get("Cmd"),
            "entrypoint": attrs["Config"].get("Entrypoint"),
            "env": attrs["Config"].get("Env") or [],
            "labels": attrs["Config"].get("Labels") or {},
            "user": attrs["Config"].get("User", ""),
            "workdir": attrs["Config"].get("WorkingDir", ""),
        },
    }


def inspect_container(api, container, size=False):
    """GET /containers/{id}/json; with size=True also SizeRw and SizeRootFs."""
    with api_errors("container '%s'" % container):
        if not size:
            return api.inspect_container(container)
        # The SDK's inspect_container() has no size flag; this is the same request with ?size=1.
        return api._result(api._get(api._url("/containers/{0}/json", container), params={"size": 1}), True)


def container_changes(api, container):
    with api_errors("container '%s'" % container):
        return normalize_changes(api.diff(container))


def container_layer_info(api, container):
    """The copy-on-write layer of a container: its changes and sizes."""
    attrs = inspect_container(api, container, size=True)
    return {
        "id": attrs["Id"],
        "name": attrs["Name"].lstrip("/"),
        "image": attrs["Config"].get("Image"),
        "image_id": attrs["Image"],
        "running": attrs["State"].get("Running", False),
        "graph_driver": attrs.get("GraphDriver", {}).get("Name"),
        "changes": container_changes(api, attrs["Id"]),
        "size_rw": attrs.get("SizeRw", 0),
        "size_root_fs": attrs.get("SizeRootFs", 0),
    }


def local_upper_dir(attrs, docker_host):
    """The writable layer's directory when this host can read it, else None.

    Only for an engine on a local Unix socket with the overlay2 driver: its
    UpperDir is then a directory of this very file system.
    """
    if not is_local_engine(docker_host):
        return None
    driver = attrs.get("GraphDriver") or {}
    upper = (driver.get("Data") or {}).get("UpperDir")
    if driver.get("Name") != "overlay2" or not upper:
        return None
    return upper if os.access(upper, os.R_OK | os.X_OK) else None


def tree_digest(root):
    """A sha256 over the metadata of every entry below root.

    Each entry contributes its relative path, type and mode, owner, size,
    mtime, ctime, device number and link target. ctime changes on every write
    and cannot be set back, so new content in an already-changed file changes
    the digest, without reading any file's content.
    """
    digest = hashlib.sha256()
    pending = [""]
    while pending:
        rel = pending.pop()
        with os.scandir(os.path.join(root, rel)) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                path = os.path.join(rel, entry.name)
                st = entry.stat(follow_symlinks=False)
                target = os.readlink(entry.path) if stat.S_ISLNK(st.st_mode) else ""
                digest.update(("%s\0%o\0%d\0%d\0%d\0%d\0%d\0%d\0%s\n" % (
                    path, st.st_mode, st.st_uid, st.st_gid, st.st_size,
                    st.st_mtime_ns, st.st_ctime_ns, st.st_rdev, target)).encode("utf-8", "surrogateescape"))
                if stat.S_ISDIR(st.st_mode):
                    pending.append(path)
    return digest.hexdigest()


def api_layer_digest(api, container, changes):
    """A sha256 over the changes and the archived content of every changed file.

    Used when the writable layer cannot be read locally: the Engine streams
    each added or changed non-directory path as a tar (headers carry mode,
    owner and mtime); directories are skipped because their entries are
    listed in the changes themselves.
    """
    digest = hashlib.sha256()
    for change in changes:
        digest.update(("%s %s\n" % (change["kind"], change["path"])).encode("utf-8", "surrogateescape"))
        if change["kind"] == "D":
            continue
        with api_errors("path %s in container '%s'" % (change["path"], container)):
            stream, info = api.get_archive(container, change["path"])
            if stat.S_ISDIR(_go_mode(info.get("mode", 0))):
                continue
            for chunk in stream:
                digest.update(chunk)
    return digest.hexdigest()


def _go_mode(mode):
    """Go's os.FileMode bits (as the archive API reports them) to a POSIX mode."""
    go_dir = 1 << 31
    return (stat.S_IFDIR if mode & go_dir else stat.S_IFREG) | (mode & 0o7777)


def writable_layer_digest(api, docker_host, attrs, changes):
    """A digest of the container's writable layer that changes with any write."""
    upper = local_upper_dir(attrs, docker_host)
    if upper is not None:
        try:
            return "local:" + tree_digest(upper)
        except OSError as exc:
            raise DockerError("cannot read the writable layer of container '%s' at %s: %s"
                              % (attrs["Name"].lstrip("/"), upper, exc)) from None
    return "api:" + api_layer_digest(api, attrs["Id"], changes)
