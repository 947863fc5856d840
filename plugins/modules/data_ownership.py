#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: data_ownership
short_description: Make a volume or a bind-mounted host path owned by the user a container runs as
version_added: 0.1.0
description:
  - Sets the owner, group and mode of a named volume's root or of a host path used as a bind
    mount, so that a container running as a non-root user can write there.
  - The user is given as numeric ids, as user and group names, or as O(as_user_of_image) - the
    image's configured C(USER), resolved through the image's own C(/etc/passwd) and
    C(/etc/group), as the Engine resolves it.
  - Only what differs is changed; the result counts the entries whose owner changed.
  - Aware of C(userns-remap). When the engine remaps user namespaces, container id N is another
    id on the host; the module reads the engine's settings and the ranges in C(/etc/subuid) and
    C(/etc/subgid) and sets the host ids that containers see as the wanted ones. The filter
    P(persist.docker.userns_host_id#filter) gives the same mapping to templates.
  - The root is reached through the local file system when the engine is on a local Unix socket
    and the module runs as root, otherwise through a short-lived helper container (run with the
    host's user namespace); see O(method).
  - Through the local file system, every entry is changed relative to the descriptor of its directory
    and never through a symbolic link, so a container that changes the tree meanwhile cannot lead the
    change onto other files of the host; a root that is itself a symbolic link is refused.
extends_documentation_fragment:
  - persist.docker.docker
  - persist.docker.attributes
  - persist.docker.attributes.actiongroup_docker
attributes:
  check_mode:
    support: full
    description: Counts exactly what a real run changes.
  diff_mode:
    support: full
    description: Shows owner, group and mode of the root before and after.
  idempotent:
    support: full
    description: A second run finds nothing that differs and reports no change.
options:
  volume:
    description:
      - Name of the volume whose root to change. It must exist.
    type: str
  path:
    description:
      - Absolute host path (on the engine's host) to change, for example the source of a bind
        mount. A missing directory is created when the engine is local.
    type: path
  owner:
    description:
      - User id, or a user name resolved through O(image) (or the managed host without it), as the
        container sees it.
    type: str
  group:
    description:
      - Group id, or a group name resolved through O(image) (or the managed host without it).
      - Defaults to the primary group of a named O(owner).
    type: str
  as_user_of_image:
    description:
      - Use the user and group this image's containers run as (its C(USER), root when it has
        none), resolved through the image's own C(/etc/passwd) and C(/etc/group).
    type: str
  image:
    description:
      - Image whose C(/etc/passwd) and C(/etc/group) resolve names given in O(owner) and O(group).
    type: str
  mode:
    description:
      - Mode of the root, as an octal string such as V('0750'). Applies to the root only.
    type: raw
  recursive:
    description:
      - Change the owner and group of everything below the root too (never following symbolic
        links).
    type: bool
    default: false
  map_userns:
    description:
      - Map container ids to host ids when the engine runs with C(userns-remap). Set V(false) to
        give host ids directly.
    type: bool
    default: true
  helper_image:
    description:
      - Image of the helper container used when the root cannot be reached directly.
    type: str
    default: busybox:latest
  method:
    description:
      - How the root is reached. V(auto) uses the local file system when the engine is local and
        the module runs as root, else a helper container; V(local) insists on the local file
        system; V(api) always uses a helper container (through the Engine API).
      - V(host) and V(container) are the words of the old name O(root_access) for V(local) and
        V(api); they still work, are deprecated with that name and go in version 2.0.0.
    type: str
    choices: [auto, local, api, host, container]
    default: auto
    aliases: [root_access]
notes:
  - A tmpfs volume is owned through its mount options; set them with M(persist.docker.volume).
seealso:
  - module: persist.docker.volume
  - plugin: persist.docker.userns_host_id
    plugin_type: filter
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: A bind-mount directory for nginx, owned by the user the image runs as
  persist.docker.data_ownership:
    path: /srv/www
    as_user_of_image: nginx:latest
    recursive: true

- name: A volume for a database, by user name known to the image
  persist.docker.data_ownership:
    volume: pgdata
    owner: postgres
    group: postgres
    image: postgres:16
    mode: "0700"

- name: Numeric ids on an engine with userns-remap (host ids are mapped for you)
  persist.docker.data_ownership:
    path: /srv/app-data
    owner: "1000"
    group: "1000"
  register: owned

- name: Show the host ids that were set
  ansible.builtin.debug:
    msg: "container 1000 is host {{ owned.host_uid }}"
"""

RETURN = r"""
uid:
  description: Owner as containers see it.
  returned: success
  type: int
  sample: 1000
gid:
  description: Group as containers see it.
  returned: success
  type: int
  sample: 1000
host_uid:
  description: Owner as set on the host (differs from RV(uid) under userns-remap).
  returned: success
  type: int
  sample: 101000
host_gid:
  description: Group as set on the host.
  returned: success
  type: int
  sample: 101000
resolved_from:
  description: Where the ids came from.
  returned: success
  type: str
  sample: USER www-data of image nginx:latest
changed_entries:
  description: Number of entries whose owner or group changed (or would change in check mode).
  returned: success
  type: int
  sample: 12
mode_changed:
  description: Whether the mode of the root changed.
  returned: success
  type: bool
created:
  description: Whether the host path was created.
  returned: success
  type: bool
root:
  description: What was changed, and how it was reached (V(host) or V(container)).
  returned: success
  type: dict
  sample: {path: /srv/www, access: host}
userns:
  description: The engine's user namespace mapping as used.
  returned: success
  type: dict
  contains:
    enabled:
      description: Whether ids were mapped.
      type: bool
    uid_map:
      description: Ranges as [container_start, host_start, size].
      type: list
      elements: list
    gid_map:
      description: Ranges as [container_start, host_start, size].
      type: list
      elements: list
    note:
      description: Where the ranges came from.
      type: str
actions:
  description: What was done (or would be done in check mode).
  returned: success
  type: list
  elements: str
"""

import grp
import os
import pwd

from ansible_collections.persist.docker.plugins.module_utils import ownership
from ansible_collections.persist.docker.plugins.module_utils import volume_access as va
from ansible_collections.persist.docker.plugins.module_utils import volumes as vu
from ansible_collections.persist.docker.plugins.module_utils.client import DockerModule
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager

# The result's root.access keeps the words it has always had.
ACCESS = {"local": "host", "api": "container"}


class DataOwnershipManager(Manager):
    def run(self):
        p = self.params
        mode = vu.parse_mode(p["mode"])
        if p["volume"] is not None:
            vu.validate_volume_name(p["volume"])
        if p["path"] is not None and not os.path.isabs(p["path"]):
            raise DockerError("path %r is not absolute; give the full host path" % p["path"])
        owner = vu.parse_id(p["owner"], "owner")
        group = vu.parse_id(p["group"], "group")
        uid, gid, resolved_from = self.resolve(owner, group)

        uid_map = gid_map = None
        note = "ids not mapped (map_userns is false)"
        if p["map_userns"]:
            uid_map, gid_map, note = va.engine_id_maps(self.api, self.dm.host)
        host_uid, host_gid = vu.host_ids(uid, gid, uid_map, gid_map)

        root = self.root(uid_map is not None)
        before = root.stat()
        counts = root.apply_ownership(host_uid, host_gid, mode, p["recursive"], True)
        if not self.dm.check_mode and (counts["chown"] or counts["chmod"] or not before["exists"]):
            counts = root.apply_ownership(host_uid, host_gid, mode, p["recursive"], False)

        target = ("volume %s" % p["volume"]) if p["volume"] else p["path"]
        if not before["exists"]:
            self.act("created directory %s" % p["path"])
        if counts["chown"]:
            self.act("chown %d entr%s of %s to %s:%s (host %s:%s)" % (
                counts["chown"], "y" if counts["chown"] == 1 else "ies", target, show(uid), show(gid),
                show(host_uid), show(host_gid)))
        if counts["chmod"]:
            self.act("chmod %s %s" % (vu.format_mode(mode), target))
        result = dict(
            uid=uid, gid=gid, host_uid=host_uid, host_gid=host_gid,
            resolved_from=resolved_from,
            changed_entries=counts["chown"],
            mode_changed=bool(counts["chmod"]),
            created=not before["exists"],
            root=dict(volume=p["volume"], path=getattr(root, "path", None) or p["path"], access=ACCESS[root.how]),
            userns=dict(enabled=uid_map is not None, uid_map=[list(r) for r in uid_map or []],
                        gid_map=[list(r) for r in gid_map or []], note=note),
        )
        return self.finish(result, *self.diff(before, dict(uid=uid, gid=gid, mode=mode), counts, uid_map, gid_map))

    def diff(self, before, wanted, counts, uid_map, gid_map):
        """(before, after) of the owner, group and mode of the root."""
        before_view = {"exists": before["exists"]}
        if before["exists"]:
            before_view.update(owner=vu.container_view(before["uid"], uid_map),
                               group=vu.container_view(before["gid"], gid_map), mode=vu.format_mode(before["mode"]))
        after_view = dict(before_view, exists=True)
        if not before["exists"]:
            after_view.update(owner=0, group=0)
        if wanted["uid"] is not None:
            after_view["owner"] = wanted["uid"]
        if wanted["gid"] is not None:
            after_view["group"] = wanted["gid"]
        if wanted["mode"] is not None:
            after_view["mode"] = vu.format_mode(wanted["mode"])
        if counts["chown"] and self.params["recursive"]:
            after_view["entries_changed"] = counts["chown"]
        return before_view, after_view

    def resolve(self, owner, group):
        """(uid, gid, description) from as_user_of_image or owner/group (names through image or host)."""
        p = self.params
        if p["as_user_of_image"]:
            uid, gid, spec = ownership.image_identity(self.api, p["as_user_of_image"])
            return uid, gid, "USER %s of image %s" % (spec or "(none: root)", p["as_user_of_image"])
        if p["image"] and any(isinstance(v, str) for v in (owner, group)):
            _attrs, files = ownership.read_image_files(self.api, p["image"])
            subject = "image '%s'" % p["image"]
            uid = gid = None
            if owner is not None:
                uid, primary = ownership.resolve_user(owner, files["/etc/passwd"], subject)
                if isinstance(owner, str) and group is None:
                    gid = primary
            if group is not None:
                gid = ownership.resolve_group(group, files["/etc/group"], subject)
            return uid, gid, "names resolved through image %s" % p["image"]
        uid = gid = None
        if owner is not None:
            uid = owner if isinstance(owner, int) else host_user(owner)[0]
            if isinstance(owner, str) and group is None:
                gid = host_user(owner)[1]
        if group is not None:
            gid = group if isinstance(group, int) else host_group(group)
        source = "numeric ids" if not any(isinstance(v, str) for v in (owner, group)) else "names of the managed host"
        return uid, gid, source

    def root(self, host_userns):
        p = self.params
        kwargs = dict(helper_image=p["helper_image"], method=va.method_of(self.dm), host_userns=host_userns)
        if p["path"] is not None:
            return va.path_root(self.api, self.dm.host, p["path"], **kwargs)
        attrs = vu.inspect_volume(self.api, p["volume"])
        if attrs is None:
            raise DockerError("volume '%s' does not exist; create it first (persist.docker.volume)" % p["volume"])
        if vu.volume_kind(attrs) == "tmpfs":
            raise DockerError("volume '%s' is a tmpfs volume: its root exists only while mounted; set its owner and "
                              "mode as mount options with persist.docker.volume (tmpfs, owner, group)" % p["volume"])
        return va.volume_root(self.api, self.dm.host, attrs, **kwargs)


def show(value):
    return "-" if value is None else str(value)


def host_user(name):
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise DockerError("owner %r is not a user on the managed host; give a numeric id, or set image to resolve "
                          "it through an image's /etc/passwd" % name) from None
    return entry.pw_uid, entry.pw_gid


def host_group(name):
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise DockerError("group %r is not a group on the managed host; give a numeric id, or set image to resolve "
                          "it through an image's /etc/group" % name) from None


def main():
    spec = dict(
        volume=dict(type="str"),
        path=dict(type="path"),
        owner=dict(type="str"),
        group=dict(type="str"),
        as_user_of_image=dict(type="str"),
        image=dict(type="str"),
        mode=dict(type="raw"),
        recursive=dict(type="bool", default=False),
        map_userns=dict(type="bool", default=True),
        helper_image=dict(type="str", default=va.DEFAULT_HELPER_IMAGE),
        method=va.method_argument(root_access=True),
    )
    DockerModule(spec,
                 mutually_exclusive=[("volume", "path"), ("as_user_of_image", "owner"), ("as_user_of_image", "group"),
                                     ("as_user_of_image", "image")],
                 required_one_of=[("volume", "path"), ("owner", "group", "as_user_of_image", "mode")],
                 ).run(DataOwnershipManager)


if __name__ == "__main__":
    main()
