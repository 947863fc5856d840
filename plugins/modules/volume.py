#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: volume
short_description: Manage named Docker volumes that are never lost by accident
version_added: 0.1.0
description:
  - Creates and removes named volumes, with any volume driver, and shortcuts for the C(local)
    driver's bind, NFS and tmpfs volumes.
  - Drift in the driver, driver options or labels of an existing volume is shown in the diff and
    as a warning; the volume is recreated only under O(recreate). A volume that a container uses,
    running or stopped, is never removed or recreated; the error names the containers. A volume
    that holds data is removed or recreated only with O(force=true); the error says how much data
    is there. Volumes whose data lives elsewhere (bind, NFS, a device) or nowhere (tmpfs) do not
    hold data in this sense.
  - Sets the owner, group and mode of the volume root (and with O(recursive) of everything in
    it), changing only what differs. On an engine with C(userns-remap), ids are container ids
    and are mapped to host ids.
  - Manages a whole set of volumes in one call with O(volumes).
  - The volume root is read and changed through its mountpoint when the engine is on a local
    Unix socket and the module runs as root, otherwise through a short-lived helper container
    (O(helper_image)); see O(method).
extends_documentation_fragment:
  - persist.docker.docker
  - persist.docker.attributes
  - persist.docker.attributes.actiongroup_docker
attributes:
  check_mode:
    support: full
    description: Predicts exactly what a real run creates, removes, recreates and changes.
  diff_mode:
    support: full
    description: Shows the driver, options, labels and ownership of each volume before and after. Drift
      that is kept (O(recreate=never)) shows as the difference, although nothing changes.
  idempotent:
    support: full
    description: A second run with the same options reports no change.
options:
  name:
    description:
      - Name of the volume. Required unless O(volumes) is given.
    type: str
    aliases: [volume_name]
  state:
    description:
      - V(present) creates the volume if it is missing; V(absent) removes it.
      - Defaults to V(present).
    type: str
    choices: [present, absent]
  driver:
    description:
      - Volume driver. Defaults to V(local).
      - The engine must know the driver (C(docker plugin ls), C(docker info)).
    type: str
  driver_opts:
    description:
      - Options of the volume driver, as C(docker volume create --opt). Not compared when omitted.
      - The alias O(driver_options) is the name community.docker.docker_volume uses.
    type: dict
    aliases: [driver_options]
  labels:
    description:
      - Labels of the volume. Labels the volume has beyond these are not drift. Not compared when
        omitted.
    type: dict
  bind:
    description:
      - Absolute host path for a C(local) volume that binds it (C(type=none), C(o=bind)).
      - The directory is created when it is missing and the engine is local.
    type: str
  nfs:
    description:
      - An NFS export for a C(local) volume (C(type=nfs)).
    type: dict
    suboptions:
      server:
        description: Host name or address of the NFS server.
        type: str
        required: true
      path:
        description: Absolute exported path on the server.
        type: str
        required: true
      options:
        description: Further mount options, for example V(rw,nfsvers=4).
        type: str
        default: rw
  tmpfs:
    description:
      - A C(local) tmpfs volume, whose data lives in memory and never survives its last container.
      - O(owner) and O(group) must then be numeric; they become mount options.
    type: dict
    suboptions:
      size:
        description: Size limit, for example V(64m).
        type: str
      mode:
        description: Mode of the file system root, for example V('1777').
        type: raw
  owner:
    description:
      - Owner of the volume root, a numeric id or a user name of the managed host.
    type: str
  group:
    description:
      - Group of the volume root, a numeric id or a group name of the managed host.
    type: str
  mode:
    description:
      - Mode of the volume root, as an octal string, for example V('0750').
    type: raw
  recursive:
    description:
      - Apply O(owner) and O(group) to everything in the volume, not only its root.
      - Defaults to V(false).
    type: bool
  recreate:
    description:
      - V(never) keeps an existing volume whose driver, options or labels differ (the diff and a
        warning show the drift); V(options-changed) recreates it; V(always) recreates it on every
        run. Defaults to V(never).
      - Recreating, like removing, is refused for a volume in use or holding data; see O(force).
    type: str
    choices: [never, options-changed, always]
  force:
    description:
      - Remove or recreate a volume even though it holds data. The data is lost.
      - Never removes containers; a volume in use is refused even with O(force=true).
      - Defaults to V(false).
    type: bool
  volumes:
    description:
      - A set of volumes managed in one call, each with the options above. Options given at the
        top level serve as defaults for every item.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the volume.
        type: str
        required: true
      state:
        description: As O(state).
        type: str
        choices: [present, absent]
      driver:
        description: As O(driver).
        type: str
      driver_opts:
        description: As O(driver_opts).
        type: dict
      labels:
        description: As O(labels).
        type: dict
      bind:
        description: As O(bind).
        type: str
      nfs:
        description: As O(nfs).
        type: dict
        suboptions:
          server:
            description: As O(nfs.server).
            type: str
            required: true
          path:
            description: As O(nfs.path).
            type: str
            required: true
          options:
            description: As O(nfs.options).
            type: str
            default: rw
      tmpfs:
        description: As O(tmpfs).
        type: dict
        suboptions:
          size:
            description: As O(tmpfs.size).
            type: str
          mode:
            description: As O(tmpfs.mode).
            type: raw
      owner:
        description: As O(owner).
        type: str
      group:
        description: As O(group).
        type: str
      mode:
        description: As O(mode).
        type: raw
      recursive:
        description: As O(recursive).
        type: bool
      recreate:
        description: As O(recreate).
        type: str
        choices: [never, options-changed, always]
      force:
        description: As O(force).
        type: bool
  helper_image:
    description:
      - Image of the helper container used when the volume root cannot be reached directly. It
        needs C(sh), C(find), C(stat), C(chown), C(chmod) and C(awk), as busybox has.
    type: str
    default: busybox:latest
  method:
    description:
      - How the volume root is reached. V(auto) uses the mountpoint when the engine is local and
        the module runs as root, else a helper container; V(local) insists on the mountpoint;
        V(api) always uses a helper container (through the Engine API).
      - V(host) and V(container) are the words of the old name O(root_access) for V(local) and
        V(api); they still work, are deprecated with that name and go in version 2.0.0.
    type: str
    choices: [auto, local, api, host, container]
    default: auto
    aliases: [root_access]
notes:
  - A tmpfs volume's root exists only while a container mounts it; its ownership is set through
    the mount options.
  - In check mode, the root of a volume that does not exist yet is assumed empty and owned by
    root with mode 0755, as the C(local) driver creates it.
seealso:
  - module: persist.docker.volume_info
  - module: persist.docker.data_ownership
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: A named volume for a database, owned by the user the database runs as
  persist.docker.volume:
    name: pgdata
    labels:
      app: db
    owner: "999"
    group: "999"
    mode: "0700"

- name: A bind volume, an NFS volume and a tmpfs volume
  persist.docker.volume:
    volumes:
      - name: uploads
        bind: /srv/uploads
      - name: shared
        nfs:
          server: nfs.example.com
          path: /exports/shared
          options: rw,nfsvers=4
      - name: scratch
        tmpfs:
          size: 64m
          mode: "1777"

- name: Labelled volumes in one call (top-level options are defaults for every item)
  persist.docker.volume:
    labels:
      team: data
    volumes:
      - name: cache-1
      - name: cache-2
      - name: old-cache
        state: absent

- name: Recreate a volume whose options changed, even though it holds data
  persist.docker.volume:
    name: uploads
    bind: /srv/uploads-new
    recreate: options-changed
    force: true

- name: Remove a volume (refused while a container uses it)
  persist.docker.volume:
    name: scratch
    state: absent
"""

RETURN = r"""
volume:
  description: The volume after the run (single form, with O(name)). Same keys as the items of RV(volumes).
  returned: success and O(name) given
  type: dict
volumes:
  description: Every volume of the call, after the run.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Volume name.
      type: str
    state:
      description: V(present) or V(absent) after the run (predicted in check mode).
      type: str
    action:
      description: One of V(create), V(remove), V(recreate), V(none), V(keep-drift).
      type: str
    drift:
      description: Fields that differed from the wanted state (driver, driver_opts, labels).
      type: list
      elements: dict
    driver:
      description: Volume driver.
      type: str
    driver_opts:
      description: Driver options.
      type: dict
    labels:
      description: Labels.
      type: dict
    mountpoint:
      description: Mountpoint on the engine's host (V(null) in check mode for a new volume).
      type: str
    ownership:
      description: Entries whose owner or group changed (V(chown)) and whether the root's mode
        changed (V(chmod)); V(null) when no ownership was asked for.
      type: dict
      sample: {chown: 3, chmod: 1}
    removed_usage:
      description: Data that a forced removal or recreation deleted (size, files, entries).
      type: dict
actions:
  description: What was done (or would be done in check mode).
  returned: success
  type: list
  elements: str
  sample: ["created volume pgdata", "chown 1 entry of volume pgdata to 999:999"]
"""

import grp
import os
import pwd

from ansible_collections.persist.docker.plugins.module_utils import volume_access as va
from ansible_collections.persist.docker.plugins.module_utils import volumes as vu
from ansible_collections.persist.docker.plugins.module_utils.client import DockerModule, api_errors
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager

VOLUME_OPTIONS = ("state", "driver", "driver_opts", "labels", "bind", "nfs", "tmpfs", "owner", "group", "mode",
                  "recursive", "recreate", "force")
BUILTIN_DEFAULTS = dict(state="present", driver="local", recursive=False, recreate="never", force=False)


def volume_specs(params):
    """The per-volume option dicts of a call: the single form or the set form with top-level defaults."""
    if not params.get("volumes"):
        return [dict((k, params.get(k)) for k in ("name",) + VOLUME_OPTIONS)]
    specs = []
    for item in params["volumes"]:
        spec = {"name": item.get("name")}
        for key in VOLUME_OPTIONS:
            value = item.get(key)
            spec[key] = params.get(key) if value is None else value
        specs.append(spec)
    return specs


def resolve_host_id(value, kind, volume):
    """A user or group name of the managed host -> numeric id (ints pass through)."""
    if value is None or isinstance(value, int):
        return value
    try:
        return (pwd.getpwnam(value).pw_uid if kind == "owner" else grp.getgrnam(value).gr_gid)
    except KeyError:
        raise DockerError("volume '%s': %s %r is not a %s on the managed host; give a numeric id, or use "
                          "persist.docker.data_ownership to resolve names through an image"
                          % (volume, kind, value, "user" if kind == "owner" else "group")) from None


class VolumeManager(Manager):
    def __init__(self, dm):
        super().__init__(dm)
        self.warnings = []

    def run(self):
        wanted = []
        for spec in volume_specs(self.params):
            for key, value in BUILTIN_DEFAULTS.items():
                if spec.get(key) is None:
                    spec[key] = value
            w = vu.wanted_volume(spec)
            if w["state"] == "present":
                w["owner"] = resolve_host_id(w["owner"], "owner", w["name"])
                w["group"] = resolve_host_id(w["group"], "group", w["name"])
            wanted.append(w)
        names = [w["name"] for w in wanted]
        duplicates = sorted(set(n for n in names if names.count(n) > 1))
        if duplicates:
            raise DockerError("volumes: %s listed more than once; give each volume once" % ", ".join(duplicates))

        plans = self.plan(wanted)
        for plan in plans:
            self.execute(plan)
        for message in self.warnings:
            self.dm.warn(message)

        items = [self.item(p) for p in plans]
        result = dict(volumes=items)
        if not self.params.get("volumes"):
            result["volume"] = items[0]
            return self.finish(result, plans[0]["before"], plans[0]["after"])
        return self.finish(result, {p["name"]: p["before"] for p in plans}, {p["name"]: p["after"] for p in plans})

    # ------------------------------------------------------------ planning (reads only)

    def plan(self, wanted):
        existing = self.existing([w["name"] for w in wanted])
        info = None
        for driver in sorted(set(w["driver"] for w in wanted if w["state"] == "present" and w["driver"] != "local")):
            info = info or vu.engine_info(self.api)
            vu.check_driver(self.api, driver, info)
        self.maps = (None, None)
        if any(self.wants_ownership(w) for w in wanted):
            uid_map, gid_map, _note = va.engine_id_maps(self.api, self.dm.host, info)
            self.maps = (uid_map, gid_map)
        plans = []
        refusals = []
        users_by_volume = None
        for w in wanted:
            current = existing.get(w["name"])
            action, drift = vu.plan_volume(current, w)
            plan = dict(name=w["name"], wanted=w, current=current, action=action, drift=drift, users=[],
                        usage=None, ownership=None)
            if action in ("remove", "recreate"):
                if users_by_volume is None:
                    users_by_volume = (vu.containers_by_volume(self.api) if len(wanted) > 1
                                       else {w["name"]: vu.containers_using(self.api, w["name"])})
                plan["users"] = users_by_volume.get(w["name"], [])
                if vu.data_at_risk(current):
                    plan["usage"] = self.root(current).usage()
                refusal = vu.removal_refusal(w["name"], action, plan["users"], plan["usage"], w["force"])
                if refusal:
                    refusals.append(refusal)
            if action == "keep-drift":
                self.warnings.append(
                    "volume '%s' differs from the wanted state in %s; it is kept as it is. Set recreate: "
                    "options-changed to recreate it" % (w["name"], ", ".join(d["field"] for d in drift)))
            plans.append(plan)
        if refusals:
            raise DockerError("; ".join(refusals))
        for plan in plans:
            self.plan_ownership(plan)
            plan["before"] = self.describe(plan["current"], plan.get("root_before"))
            plan["after"] = self.after(plan)
        return plans

    def existing(self, names):
        if len(names) == 1:
            current = vu.inspect_volume(self.api, names[0])
            return {names[0]: current} if current else {}
        every = vu.list_volumes(self.api)
        return dict((n, every[n]) for n in names if n in every)

    @staticmethod
    def wants_ownership(w):
        return (w["state"] == "present" and w["kind"] != "tmpfs"
                and any(w[k] is not None for k in ("owner", "group", "mode")))

    def root(self, attrs):
        return va.volume_root(self.api, self.dm.host, attrs, helper_image=self.params["helper_image"],
                              method=va.method_of(self.dm), host_userns=self.maps[0] is not None)

    def host_ids(self, w):
        return vu.host_ids(w["owner"], w["group"], self.maps[0], self.maps[1])

    def plan_ownership(self, plan):
        """Count what ownership changes a run makes (check mode predicts, a real run redoes it)."""
        w = plan["wanted"]
        plan["bind_dir"] = None
        if w["state"] == "absent":
            return
        if (w["kind"] == "bind" and plan["action"] != "keep-drift" and va.is_local_engine(self.dm.host)
                and va.method_of(self.dm) != "api"):
            path = w["driver_opts"]["device"]
            plan["bind_dir"] = path if not os.path.lexists(path) else None
        if not self.wants_ownership(w):
            return
        uid, gid = self.host_ids(w)
        current = plan["current"]
        if plan["action"] in ("none", "keep-drift") or w["kind"] == "bind":
            target = current if plan["action"] in ("none", "keep-drift") else self.future_attrs(w)
            root = self.root(target)
            if isinstance(root, va.LocalRoot) and not os.path.lexists(root.path):
                plan["ownership"] = self.predict_new(uid, gid, w["mode"], (0, 0))
                return
            plan["root_before"] = root.stat()
            plan["ownership"] = root.apply_ownership(uid, gid, w["mode"], w["recursive"], True)
            return
        new_root = vu.host_ids(0, 0, self.maps[0], self.maps[1])
        plan["ownership"] = self.predict_new(uid, gid, w["mode"], new_root)

    @staticmethod
    def predict_new(uid, gid, mode, owner):
        chown = 1 if ((uid is not None and uid != owner[0]) or (gid is not None and gid != owner[1])) else 0
        return dict(chown=chown, chmod=1 if (mode is not None and mode != 0o755) else 0)

    @staticmethod
    def future_attrs(w):
        return {"Name": w["name"], "Driver": w["driver"], "Options": w["driver_opts"], "Mountpoint": None}

    # ------------------------------------------------------------ carrying the plan out

    def execute(self, plan):
        w = plan["wanted"]
        name = w["name"]
        action = plan["action"]
        check = self.dm.check_mode
        if action in ("remove", "recreate"):
            lost = plan["usage"]
            note = (" (deleting %s in %d files)" % (vu.human_size(lost["size"]), lost["files"])
                    if lost and lost.get("entries") else "")
            verb = "removed" if action == "remove" else "removed (to recreate)"
            self.act("%s volume %s%s" % (verb, name, note))
            if not check:
                with api_errors("volume '%s'" % name):
                    self.api.remove_volume(name)
        if plan["bind_dir"]:
            self.act("created directory %s for bind volume %s" % (plan["bind_dir"], name))
            if not check:
                try:
                    os.makedirs(plan["bind_dir"])
                except OSError as exc:
                    raise DockerError("volume '%s': cannot create bind directory %s: %s"
                                      % (name, plan["bind_dir"], exc.strerror)) from None
        if action in ("create", "recreate"):
            self.act("created volume %s" % name)
            if not check:
                with api_errors("volume '%s'" % name):
                    plan["current"] = self.api.create_volume(name, driver=w["driver"], driver_opts=w["driver_opts"],
                                                             labels=w["labels"])
                if not plan["current"].get("Mountpoint") or "Options" not in plan["current"]:
                    plan["current"] = vu.inspect_volume(self.api, name)
        if plan["ownership"] is not None:
            if not check:
                root = self.root(plan["current"])
                uid, gid = self.host_ids(w)
                plan["ownership"] = root.apply_ownership(uid, gid, w["mode"], w["recursive"], False)
            counts = plan["ownership"]
            if counts["chown"]:
                self.act("chown %d entr%s of volume %s to %s:%s" % (
                    counts["chown"], "y" if counts["chown"] == 1 else "ies", name,
                    "-" if w["owner"] is None else w["owner"], "-" if w["group"] is None else w["group"]))
            if counts["chmod"]:
                self.act("chmod %s volume %s" % (vu.format_mode(w["mode"]), name))

    # ------------------------------------------------------------ reporting

    def view(self, value, kind):
        return vu.container_view(value, self.maps[0] if kind == "uid" else self.maps[1])

    def describe(self, attrs, root_stat=None):
        if attrs is None:
            return {"exists": False}
        result = {"exists": True, "driver": attrs.get("Driver"), "driver_opts": attrs.get("Options") or {},
                  "labels": attrs.get("Labels") or {}}
        if root_stat and root_stat.get("exists"):
            result.update(owner=self.view(root_stat["uid"], "uid"), group=self.view(root_stat["gid"], "gid"),
                          mode=vu.format_mode(root_stat["mode"]))
        return result

    def after(self, plan):
        w = plan["wanted"]
        if w["state"] == "absent":
            return {"exists": False}
        if plan["action"] == "none":
            result = self.describe(plan["current"], plan.get("root_before"))
        elif plan["action"] == "keep-drift":
            # Nothing changes, but the diff reports the drift: after is the wanted state.
            result = self.describe(plan["current"], plan.get("root_before"))
            for d in plan["drift"]:
                result[d["field"]] = (dict(result["labels"], **d["after"]) if d["field"] == "labels" else d["after"])
        else:
            labels = dict(w["labels"] or {})
            result = {"exists": True, "driver": w["driver"], "driver_opts": w["driver_opts"] or {}, "labels": labels}
        if plan["ownership"] is not None:
            if w["owner"] is not None:
                result["owner"] = w["owner"]
            if w["group"] is not None:
                result["group"] = w["group"]
            if w["mode"] is not None:
                result["mode"] = vu.format_mode(w["mode"])
        return result

    def item(self, plan):
        w = plan["wanted"]
        attrs = plan["current"] if w["state"] == "present" else None
        present = w["state"] == "present"
        if present and plan["action"] in ("create", "recreate") and self.dm.check_mode:
            attrs = self.future_attrs(w)
        return dict(
            name=w["name"],
            state="present" if present else "absent",
            action=plan["action"],
            drift=plan["drift"],
            driver=attrs.get("Driver") if attrs else None,
            driver_opts=(attrs.get("Options") or {}) if attrs else None,
            labels=(attrs.get("Labels") or {}) if attrs else None,
            mountpoint=attrs.get("Mountpoint") if attrs else None,
            ownership=plan["ownership"],
            removed_usage=plan["usage"] if plan["action"] in ("remove", "recreate") else None,
        )


def volume_item_spec():
    return dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"]),
        driver=dict(type="str"),
        driver_opts=dict(type="dict"),
        labels=dict(type="dict"),
        bind=dict(type="str"),
        nfs=dict(type="dict", options=nfs_spec()),
        tmpfs=dict(type="dict", options=tmpfs_spec()),
        owner=dict(type="str"),
        group=dict(type="str"),
        mode=dict(type="raw"),
        recursive=dict(type="bool"),
        recreate=dict(type="str", choices=["never", "options-changed", "always"]),
        force=dict(type="bool"),
    )


def nfs_spec():
    return dict(server=dict(type="str", required=True), path=dict(type="str", required=True),
                options=dict(type="str", default="rw"))


def tmpfs_spec():
    return dict(size=dict(type="str"), mode=dict(type="raw"))


def main():
    spec = dict(
        name=dict(type="str", aliases=["volume_name"]),
        state=dict(type="str", choices=["present", "absent"]),
        driver=dict(type="str"),
        driver_opts=dict(type="dict", aliases=["driver_options"]),
        labels=dict(type="dict"),
        bind=dict(type="str"),
        nfs=dict(type="dict", options=nfs_spec()),
        tmpfs=dict(type="dict", options=tmpfs_spec()),
        owner=dict(type="str"),
        group=dict(type="str"),
        mode=dict(type="raw"),
        recursive=dict(type="bool"),
        recreate=dict(type="str", choices=["never", "options-changed", "always"]),
        force=dict(type="bool"),
        volumes=dict(type="list", elements="dict", options=volume_item_spec()),
        helper_image=dict(type="str", default=va.DEFAULT_HELPER_IMAGE),
        method=va.method_argument(root_access=True),
    )
    DockerModule(spec, mutually_exclusive=[("name", "volumes")],
                 required_one_of=[("name", "volumes")]).run(VolumeManager)


if __name__ == "__main__":
    main()
