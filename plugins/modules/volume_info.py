#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_info
short_description: Inspect one or all Docker volumes, their users and the ownership of their root
version_added: 0.1.0
description:
  - Returns the driver, options, mountpoint, labels and scope of one volume or of every volume,
    the containers that use each one (running or not), and the owner, group and mode of its root.
  - Size and file count are read only when asked for with O(usage), because that walks all the
    data.
  - When listing all volumes, the roots of NFS, tmpfs and plugin volumes are not read (that would
    mount each one in a helper container); ask for such a volume by O(name).
  - On an engine with C(userns-remap), owner and group are the ids containers see.
  - The root is read through its mountpoint when the engine is local and the module runs as root,
    otherwise through a short-lived helper container; see O(method).
extends_documentation_fragment:
  - persist.docker.docker
  - persist.docker.attributes
  - persist.docker.attributes.actiongroup_docker
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is no diff.
  idempotent:
    support: full
    description: Never reports a change.
options:
  name:
    description:
      - Name of the volume. Without it, every volume of the engine is returned.
    type: str
    aliases: [volume_name]
  usage:
    description:
      - Also return the size in bytes and the number of files of each volume.
    type: bool
    default: false
  ownership:
    description:
      - Read the owner, group and mode of each volume root. Set V(false) to skip it when listing
        many volumes on a remote engine (each one then needs a helper container).
    type: bool
    default: true
  helper_image:
    description:
      - Image of the helper container used when a volume root cannot be read directly.
    type: str
    default: busybox:latest
  method:
    description:
      - How volume roots are read. V(auto) uses the mountpoint when the engine is local and the
        module runs as root, else a helper container; V(local) insists on the mountpoint;
        V(api) always uses a helper container (through the Engine API).
      - V(host) and V(container) are the words of the old name O(root_access) for V(local) and
        V(api); they still work, are deprecated with that name and go in version 2.0.0.
    type: str
    choices: [auto, local, api, host, container]
    default: auto
    aliases: [root_access]
seealso:
  - module: persist.docker.volume
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: One volume, with its size
  persist.docker.volume_info:
    name: pgdata
    usage: true
  register: pgdata

- name: Fail when the volume is missing
  ansible.builtin.assert:
    that: pgdata.exists

- name: Every volume that no container uses
  persist.docker.volume_info:
  register: all_volumes

- name: Show the unused ones
  ansible.builtin.debug:
    msg: "{{ all_volumes.volumes | rejectattr('containers') | map(attribute='name') | list }}"
"""

RETURN = r"""
exists:
  description: Whether the volume O(name) exists.
  returned: O(name) given
  type: bool
volume:
  description: The volume O(name), as the items of RV(volumes), or V(null) when it does not exist.
  returned: O(name) given
  type: dict
volumes:
  description: The volumes (the one named, or all of them).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Volume name.
      type: str
    driver:
      description: Volume driver.
      type: str
      sample: local
    options:
      description: Driver options.
      type: dict
    mountpoint:
      description: Mountpoint on the engine's host.
      type: str
    labels:
      description: Labels.
      type: dict
    scope:
      description: V(local) or V(global).
      type: str
    created_at:
      description: Creation time, as the engine reports it.
      type: str
    kind:
      description: V(plain), V(bind), V(nfs), V(tmpfs), V(device) (local driver) or V(other).
      type: str
    holds_data_at_risk:
      description: Whether removing the volume would delete data kept in the volume itself (false
        for bind, NFS, device and tmpfs volumes).
      type: bool
    containers:
      description: Containers that use the volume.
      type: list
      elements: dict
      contains:
        name:
          description: Container name.
          type: str
        id:
          description: Container id.
          type: str
        running:
          description: Whether it runs.
          type: bool
        state:
          description: Container state, for example V(running) or V(exited).
          type: str
    in_use:
      description: Whether any container uses the volume.
      type: bool
    owner:
      description: Owner (uid, as containers see it) of the volume root; V(null) when not read.
      type: int
    group:
      description: Group (gid, as containers see it) of the volume root; V(null) when not read.
      type: int
    mode:
      description: Mode of the volume root, for example V('0755').
      type: str
    root_error:
      description: Why the root could not be read (for example an unreachable NFS server).
      type: str
    usage:
      description: Size in bytes and number of regular files (V(files)) and of all entries
        (V(entries)) in the volume, with O(usage=true).
      type: dict
      sample: {size: 4096, files: 1, entries: 2}
"""

from ansible_collections.persist.docker.plugins.module_utils import volume_access as va
from ansible_collections.persist.docker.plugins.module_utils import volumes as vu
from ansible_collections.persist.docker.plugins.module_utils.client import DockerModule
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager


class VolumeInfoManager(Manager):
    def run(self):
        p = self.params
        name = p["name"]
        if name is not None:
            vu.validate_volume_name(name)
            attrs = vu.inspect_volume(self.api, name)
            found = [attrs] if attrs else []
            users = {name: vu.containers_using(self.api, name)} if attrs else {}
        else:
            found = sorted(vu.list_volumes(self.api).values(), key=lambda v: v["Name"])
            users = vu.containers_by_volume(self.api)
        self.maps = (None, None)
        if found and p["ownership"]:
            uid_map, gid_map, _note = va.engine_id_maps(self.api, self.dm.host)
            self.maps = (uid_map, gid_map)
        items = [self.describe(attrs, users.get(attrs["Name"], [])) for attrs in found]
        result = dict(changed=False, volumes=items)
        if name is not None:
            result["exists"] = bool(items)
            result["volume"] = items[0] if items else None
        return result

    def describe(self, attrs, users):
        item = dict(
            name=attrs["Name"],
            driver=attrs.get("Driver"),
            options=attrs.get("Options") or {},
            mountpoint=attrs.get("Mountpoint"),
            labels=attrs.get("Labels") or {},
            scope=attrs.get("Scope"),
            created_at=attrs.get("CreatedAt"),
            kind=vu.volume_kind(attrs),
            holds_data_at_risk=vu.data_at_risk(attrs),
            containers=users,
            in_use=bool(users),
            owner=None,
            group=None,
            mode=None,
        )
        if not (self.params["ownership"] or self.params["usage"]):
            return item
        if self.params["name"] is None and item["kind"] in ("nfs", "tmpfs", "other"):
            # Reading the root mounts the volume in a helper container; a dead NFS server would hang the listing.
            item["root_error"] = ("not read when listing all volumes: a %s volume is mounted only in containers; "
                                  "ask for it by name" % item["kind"])
            return item
        try:
            root = va.volume_root(self.api, self.dm.host, attrs, helper_image=self.params["helper_image"],
                                  method=va.method_of(self.dm), host_userns=self.maps[0] is not None)
            if self.params["ownership"]:
                st = root.stat()
                if st["exists"]:
                    item.update(owner=vu.container_view(st["uid"], self.maps[0]),
                                group=vu.container_view(st["gid"], self.maps[1]), mode=vu.format_mode(st["mode"]))
            if self.params["usage"]:
                item["usage"] = root.usage()
        except DockerError as exc:
            if self.params["name"] is not None and va.method_of(self.dm) == "local":
                raise
            item["root_error"] = str(exc)
        return item


def main():
    spec = dict(
        name=dict(type="str", aliases=["volume_name"]),
        usage=dict(type="bool", default=False),
        ownership=dict(type="bool", default=True),
        helper_image=dict(type="str", default=va.DEFAULT_HELPER_IMAGE),
        method=va.method_argument(root_access=True),
    )
    DockerModule(spec).run(VolumeInfoManager)


if __name__ == "__main__":
    main()
