# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Who a container runs as: an image's USER resolved through its own /etc/passwd and /etc/group.

The parsing and resolution are pure (unit-tested); :func:`image_identity`
reads the image's configuration and files through the Engine API (a created,
never started container and GET /containers/{id}/archive).
"""

from __future__ import annotations

import io
import tarfile

from ansible_collections.persist.docker.plugins.module_utils.client import api_errors, get_or_none
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


def parse_passwd(text):
    """{name: (uid, gid)} from the text of an /etc/passwd."""
    users = {}
    for line in (text or "").splitlines():
        parts = line.strip().split(":")
        if len(parts) >= 4 and parts[0] and not parts[0].startswith("#") and parts[2].isdigit() and parts[3].isdigit():
            users.setdefault(parts[0], (int(parts[2]), int(parts[3])))
    return users


def parse_group(text):
    """{name: gid} from the text of an /etc/group."""
    groups = {}
    for line in (text or "").splitlines():
        parts = line.strip().split(":")
        if len(parts) >= 3 and parts[0] and not parts[0].startswith("#") and parts[2].isdigit():
            groups.setdefault(parts[0], int(parts[2]))
    return groups


def split_user_spec(spec):
    """An image's USER ('name', 'uid', 'name:group', 'uid:gid', '') -> (user, group or None)."""
    spec = (spec or "").strip()
    if not spec:
        return "0", None
    user, _sep, group = spec.partition(":")
    return user or "0", (group or None)


def resolve_user(user, passwd_text, subject):
    """(uid, primary gid) of a user name or numeric id, as the Engine resolves it.

    A numeric id not listed in /etc/passwd runs with gid 0, as runc does.
    """
    users = parse_passwd(passwd_text)
    if isinstance(user, int) or str(user).isdigit():
        uid = int(user)
        for entry_uid, entry_gid in users.values():
            if entry_uid == uid:
                return uid, entry_gid
        return uid, 0
    if passwd_text is None:
        raise DockerError("%s has no /etc/passwd to resolve user %r; give a numeric id" % (subject, user))
    if user not in users:
        raise DockerError("%s does not know user %r (not in its /etc/passwd; known: %s); give a numeric id or a "
                          "user the image has" % (subject, user, ", ".join(sorted(users)) or "none"))
    return users[user]


def resolve_group(group, group_text, subject):
    """gid of a group name or numeric id."""
    if isinstance(group, int) or str(group).isdigit():
        return int(group)
    if group_text is None:
        raise DockerError("%s has no /etc/group to resolve group %r; give a numeric id" % (subject, group))
    groups = parse_group(group_text)
    if group not in groups:
        raise DockerError("%s does not know group %r (not in its /etc/group; known: %s); give a numeric id or a "
                          "group the image has" % (subject, group, ", ".join(sorted(groups)) or "none"))
    return groups[group]


def resolve_identity(user_spec, passwd_text, group_text, subject):
    """(uid, gid) of an image USER string."""
    user, group = split_user_spec(user_spec)
    uid, gid = resolve_user(user, passwd_text, subject)
    if group is not None:
        gid = resolve_group(group, group_text, subject)
    return uid, gid


def read_image_files(api, image, paths=("/etc/passwd", "/etc/group")):
    """{path: text or None} of files in an image, read from a created (never started) container."""
    subject = "image '%s'" % image
    attrs = get_or_none(subject, api.inspect_image, image)
    if attrs is None:
        raise DockerError("image '%s' is not on the engine; pull or build it first" % image)
    result = {}
    with api_errors(subject):
        created = api.create_container(attrs["Id"], command=["/persist-docker-never-started"], entrypoint=[],
                                       network_disabled=True, labels={"persist.docker.helper": "image-files"})
        try:
            for path in paths:
                result[path] = _archive_text(api, created["Id"], path, subject)
        finally:
            api.remove_container(created["Id"], force=True)
    return attrs, result


def _archive_text(api, container, path, subject):
    stream = get_or_none("%s, file %s" % (subject, path), api.get_archive, container, path)
    if stream is None:
        return None
    data = b"".join(stream[0])
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            if member.isfile():
                handle = archive.extractfile(member)
                return handle.read().decode("utf-8", "replace") if handle else None
            if member.issym() or member.islnk():
                raise DockerError("%s: %s is a link; resolve names with numeric ids instead" % (subject, path))
    return None


def image_identity(api, image):
    """(uid, gid, user_spec) the image's containers run as, resolved through its own files."""
    attrs, files = read_image_files(api, image)
    user_spec = ((attrs.get("Config") or {}).get("User") or "").strip()
    uid, gid = resolve_identity(user_spec, files["/etc/passwd"], files["/etc/group"], "image '%s'" % image)
    return uid, gid, user_spec
