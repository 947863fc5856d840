#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: engine_config
short_description: Merge settings into a Docker engine's daemon.json
version_added: 0.1.0
description:
  - Sets and removes keys of the Docker daemon's configuration file (C(daemon.json)) and keeps every
    key it is not told about. Values of known keys are checked before anything is written, log
    options against the options of the log driver, so that a typing error fails here and not when
    the engine restarts.
  - When O(settings) contains C(userns-remap), the remap user gets a subordinate id range in
    O(subuid_path) and O(subgid_path) unless it already has one there (an existing range is kept).
  - When O(settings) contains C(data-root), the module checks that the path is a directory or
    absent, and reports in RV(data_root) whether the engine's data would have to move. It does not
    move data and does not restart the engine; the role C(persist.docker.engine) does both.
  - If the engine at O(docker_host) answers, its effective settings are returned in RV(engine).
    An engine that does not answer is not an error.
extends_documentation_fragment:
  - persist.docker.docker
  - persist.docker.attributes
  - persist.docker.attributes.actiongroup_docker
attributes:
  check_mode:
    support: full
    description: Validates everything and predicts exactly which keys and files change.
  diff_mode:
    support: full
    description: Shows daemon.json (and the subordinate id files) before and after.
  idempotent:
    support: full
    description: A second run with the same settings reports no change.
options:
  path:
    description:
      - The daemon's configuration file. It is created, with its directory, when missing.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description:
      - Keys to set, as they are written in C(daemon.json), for example C(data-root),
        C(userns-remap), C(insecure-registries), C(registry-mirrors), C(live-restore), C(log-driver)
        and C(log-opts).
      - A value replaces the key's current value as a whole (a dictionary is not merged).
      - C(log-opts) values may be given as numbers or booleans; they are written as strings.
    type: dict
    default: {}
  remove:
    description:
      - Keys to remove from the file.
    type: list
    elements: str
    default: []
  backup:
    description:
      - Keep a timestamped copy of the file before changing it.
    type: bool
    default: false
  subid_start:
    description:
      - First subordinate id of the range given to the C(userns-remap) user when it has none.
    type: int
    default: 100000
  subid_count:
    description:
      - Size of that range.
    type: int
    default: 65536
  subuid_path:
    description:
      - The subordinate user id file.
    type: path
    default: /etc/subuid
  subgid_path:
    description:
      - The subordinate group id file.
    type: path
    default: /etc/subgid
  query_engine:
    description:
      - Ask the engine at O(docker_host) for its effective settings (RV(engine)) and use its
        data-root as the current one. When false, or when it does not answer, the current data-root
        is the one in the file (or C(/var/lib/docker)).
    type: bool
    default: true
notes:
  - Restart the engine after a change (RV(restart_needed)); the module never does.
seealso:
  - name: daemon.json reference
    description: The keys dockerd reads from its configuration file.
    link: https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: Limit the container logs and keep containers running across engine restarts
  persist.docker.engine_config:
    settings:
      live-restore: true
      log-driver: json-file
      log-opts:
        max-size: 10m
        max-file: 3
  register: engine_config

- name: Trust a private registry over plain http and use it as a mirror
  persist.docker.engine_config:
    settings:
      insecure-registries: [registry.example.com:5000]
      registry-mirrors: [http://registry.example.com:5000]

- name: Remap container root to an unprivileged range
  persist.docker.engine_config:
    settings:
      userns-remap: dockremap
    subid_start: 200000

- name: Which data-root move would a new path need?
  persist.docker.engine_config:
    settings:
      data-root: /srv/docker
  check_mode: true
  register: plan
"""

RETURN = r"""
config:
  description: The whole configuration after the run (as predicted in check mode).
  returned: success
  type: dict
  sample: {"data-root": "/srv/docker", "live-restore": true, "debug": false}
changed_keys:
  description: The keys that were (or would be) set or removed.
  returned: success
  type: list
  elements: str
  sample: [live-restore, log-opts]
restart_needed:
  description: Whether the engine must be restarted for the change to take effect.
  returned: success
  type: bool
data_root:
  description: The data-root before and after, and whether the engine's data has to move.
  returned: success
  type: dict
  contains:
    current:
      description: The data-root the engine uses now (its own answer, or the file's value).
      type: str
      sample: /var/lib/docker
    wanted:
      description: The data-root after the run.
      type: str
      sample: /srv/docker
    move:
      description:
        - Whether data has to be copied from RV(data_root.current) to RV(data_root.wanted).
        - False when RV(data_root.current) does not exist; the engine then simply starts on the new path.
      type: bool
    source_exists:
      description: Whether RV(data_root.current) exists on the host.
      type: bool
subids:
  description: The subordinate id ranges of the C(userns-remap) user, when O(settings) names one.
  returned: when O(settings) contains C(userns-remap)
  type: dict
  sample: {"user": "dockremap", "group": "dockremap", "subuid_added": true, "subgid_added": true}
engine:
  description: The effective settings of the engine at O(docker_host), as it answers now.
  returned: success
  type: dict
  contains:
    reachable:
      description: Whether the engine answered.
      type: bool
    data_root:
      description: Its data-root (without the user namespace suffix).
      type: str
    userns:
      description: Whether it runs with user namespace remapping.
      type: bool
    live_restore:
      description: Whether live-restore is on.
      type: bool
    logging_driver:
      description: Its default log driver.
      type: str
    containers_running:
      description: How many containers run.
      type: int
    version:
      description: Its version.
      type: str
backup_file:
  description: The copy of the file made before it was changed.
  returned: when O(backup=true) and the file was changed
  type: str
  sample: /etc/docker/daemon.json.12345.2024-06-01@12:00:00~
actions:
  description: What was done (or would be done in check mode).
  returned: success
  type: list
  elements: str
  sample: ["set live-restore, log-opts in /etc/docker/daemon.json"]
"""

import contextlib
import os

from ansible_collections.persist.docker.plugins.module_utils.client import DockerModule, api_errors
from ansible_collections.persist.docker.plugins.module_utils.engine import (
    DEFAULT_DATA_ROOT,
    changed_config_keys,
    check_log_config,
    effective_data_root,
    merge_config,
    parse_config,
    parse_userns_remap,
    plan_data_root,
    plan_subids,
    render_config,
    validate_settings,
)
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager, diff_of


def read_text(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise DockerError("cannot read %s (%s); check the path and its permissions" % (path, exc)) from None


def path_kind(path):
    """('dir', names in it), ('other', []) for a file, or ('missing', []); and, for a missing
    path, the nearest existing path above it when that is not a directory (it could not be created)."""
    if os.path.isdir(path):
        return "dir", os.listdir(path), None
    if os.path.lexists(path):
        return "other", [], None
    parent = os.path.dirname(path)
    while parent != os.path.dirname(parent) and not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    return "missing", [], (None if os.path.isdir(parent) else parent)


class EngineConfigManager(Manager):
    def __init__(self, dm):
        super().__init__(dm)
        self.diffs = []
        self.writes = []
        self.backup_file = None

    def engine(self):
        if not self.params["query_engine"]:
            return dict(reachable=False)
        try:
            api = self.dm.api
            with api_errors("engine at %s" % self.dm.host):
                info = api.info()
        except DockerError:
            return dict(reachable=False)
        return dict(
            reachable=True,
            data_root=effective_data_root(info),
            userns=any("name=userns" in opt for opt in info.get("SecurityOptions") or []),
            live_restore=bool(info.get("LiveRestoreEnabled")),
            logging_driver=info.get("LoggingDriver"),
            containers_running=info.get("ContainersRunning", 0),
            version=info.get("ServerVersion"),
        )

    def run(self):
        p = self.params
        path = p["path"]
        settings, warnings = validate_settings(p["settings"] or {})
        for warning in warnings:
            self.dm.warn(warning)
        before_text = read_text(path)
        current = parse_config(before_text or "", path)
        merged = merge_config(current, settings, p["remove"])[0]
        if "log-driver" in settings or "log-opts" in settings:
            merged = check_log_config(merged)
        changed_keys = changed_config_keys(current, merged)

        engine = self.engine()
        file_root = current.get("data-root") or DEFAULT_DATA_ROOT
        current_root = engine["data_root"] if engine["reachable"] else os.path.normpath(file_root)
        wanted_root = settings.get("data-root")
        kind, entries, blocker = path_kind(wanted_root) if wanted_root else ("missing", [], None)
        source_exists = os.path.isdir(current_root)
        data_root = plan_data_root(current_root, wanted_root, kind, entries, blocker, source_exists)
        data_root["source_exists"] = source_exists

        subids = None
        if "userns-remap" in settings:
            subids = self.plan_subids(settings["userns-remap"])

        after_text = render_config(merged)
        file_changed = bool(changed_keys)
        if file_changed:
            self.describe(path, current, merged, changed_keys, before_text)
            self.diffs.insert(0, diff_of(before_text or "", after_text, header=path))
        if not self.check_mode:
            for file_path, text in self.writes:
                self.write(file_path, text, backup=False)
            if file_changed:
                self.write(path, after_text, backup=p["backup"])

        result = dict(
            config=merged,
            changed_keys=changed_keys,
            restart_needed=bool(changed_keys) or bool(subids and (subids["subuid_added"] or subids["subgid_added"])),
            data_root=data_root,
            engine=engine,
        )
        if subids is not None:
            result["subids"] = subids
        if self.backup_file:
            result["backup_file"] = self.backup_file
        return self.finish(result, diffs=self.diffs)

    def describe(self, path, current, merged, changed_keys, before_text):
        if before_text is None:
            self.act("created %s" % path)
        set_keys = [k for k in changed_keys if k in merged]
        removed = [k for k in changed_keys if k not in merged and k in current]
        if set_keys:
            self.act("set %s in %s" % (", ".join(set_keys), path))
        if removed:
            self.act("removed %s from %s" % (", ".join(removed), path))

    def plan_subids(self, value):
        p = self.params
        user, group = parse_userns_remap(value)
        result = dict(user=user, group=group, subuid_added=False, subgid_added=False)
        for key, name, file_path in (("subuid_added", user, p["subuid_path"]),
                                     ("subgid_added", group, p["subgid_path"])):
            text = read_text(file_path)
            new_text = plan_subids(text or "", name, p["subid_start"], p["subid_count"], file_path)
            if new_text is None:
                continue
            result[key] = True
            self.writes.append((file_path, new_text))
            self.act("added the range %d:%d for %s to %s"
                     % (p["subid_start"], p["subid_count"], name, file_path))
            self.diffs.append(diff_of(text or "", new_text, header=file_path))
        return result

    def write(self, path, text, backup):
        module = self.dm.module
        directory = os.path.dirname(path) or "."
        tmp = os.path.join(directory, ".%s.persist-docker.tmp" % os.path.basename(path))
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o755)
            if backup and os.path.exists(path):
                self.backup_file = module.backup_local(path)
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(text)
            if not os.path.exists(path):
                os.chmod(tmp, 0o644)
            module.atomic_move(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):  # a full disk leaves it behind
                os.unlink(tmp)
            raise DockerError("cannot write %s (%s); check the directory, its permissions and the free space"
                              % (path, exc)) from None


def main():
    spec = dict(
        path=dict(type="path", default="/etc/docker/daemon.json"),
        settings=dict(type="dict", default={}),
        remove=dict(type="list", elements="str", default=[]),
        backup=dict(type="bool", default=False),
        subid_start=dict(type="int", default=100000),
        subid_count=dict(type="int", default=65536),
        subuid_path=dict(type="path", default="/etc/subuid"),
        subgid_path=dict(type="path", default="/etc/subgid"),
        query_engine=dict(type="bool", default=True),
    )
    DockerModule(spec).run(EngineConfigManager)


if __name__ == "__main__":
    main()
