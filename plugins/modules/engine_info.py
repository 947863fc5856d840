#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: engine_info
short_description: Identify a Docker engine and read its main settings
version_added: 0.2.0
description:
  - Returns the identity of a Docker engine (its ID, host name and root directory), its versions, the
    storage driver, whether live-restore and C(userns-remap) are on, and how many containers and
    images it holds.
  - Two engines are one engine when their RV(engine.identity) is equal. The ID alone does not tell
    engines apart, since engines that share C(/etc/docker/key.json) (two on one host, cloned machines)
    report the same one.
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
options: {}
seealso:
  - module: persist.docker.engine_config
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: Read both engines
  persist.docker.engine_info:
    docker_host: "{{ item }}"
  loop: [unix:///var/run/docker.sock, "tcp://backup.example.com:2376"]
  register: engines

- name: They are two engines
  ansible.builtin.assert:
    that: engines.results[0].engine.identity != engines.results[1].engine.identity
"""

RETURN = r"""
engine:
  description: The engine.
  returned: success
  type: dict
  contains:
    id:
      description: The engine's ID.
      type: str
    name:
      description: Host name of the engine.
      type: str
    docker_root_dir:
      description: Root directory (data-root) of the engine.
      type: str
      sample: /var/lib/docker
    identity:
      description: ID, host name and root directory, separated by spaces; equal for one engine only.
      type: str
    server_version:
      description: Version of the engine.
      type: str
    api_version:
      description: Newest API version the engine speaks.
      type: str
    operating_system:
      description: Operating system of the engine's host.
      type: str
    architecture:
      description: Machine architecture.
      type: str
      sample: x86_64
    storage_driver:
      description: Storage driver.
      type: str
      sample: overlay2
    live_restore:
      description: Whether live-restore is on.
      type: bool
    userns_remap:
      description: Whether C(userns-remap) is on.
      type: bool
    security_options:
      description: Security options as the engine reports them.
      type: list
      elements: str
    containers:
      description: Number of containers.
      type: int
    containers_running:
      description: Number of running containers.
      type: int
    images:
      description: Number of images.
      type: int
"""

from ansible_collections.persist.docker.plugins.module_utils import engine_info as ei
from ansible_collections.persist.docker.plugins.module_utils.client import DockerModule, api_errors
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager


class EngineInfoManager(Manager):
    def run(self):
        with api_errors("engine at %s" % self.dm.host):
            info = self.api.info()
            version = self.api.version()
        return dict(changed=False, engine=ei.summary(info, version))


def main():
    DockerModule({}).run(EngineInfoManager)


if __name__ == "__main__":
    main()
