#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: container_info
short_description: Whether a Docker container exists, runs, and how it is made
version_added: 0.2.0
description:
  - Returns whether one container exists and runs, its image, command, volumes, network mode and
    restart policy, and the names of its environment variables (never their values).
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
    description: Name or id of the container.
    type: str
    required: true
seealso:
  - module: persist.docker.container
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: Look for the application on the old host
  persist.docker.container_info:
    name: app
    docker_host: tcp://old-host.example.com:2376
    validate_certs: true
  register: old_app

- name: Stop it there, as it is
  persist.docker.container:
    name: app
    state: stopped
    docker_host: tcp://old-host.example.com:2376
    validate_certs: true
  when: old_app.exists and old_app.container.running
"""

RETURN = r"""
exists:
  description: Whether the container exists.
  returned: success
  type: bool
container:
  description: The container as persist.docker.container returns it, or V(null) when it does not exist.
  returned: success
  type: dict
  contains:
    name:
      description: Container name as asked for.
      type: str
    id:
      description: Container id.
      type: str
    image:
      description: Image as given when the container was created.
      type: str
    image_id:
      description: Id of the container's image.
      type: str
    command:
      description: Command.
      type: list
      elements: str
    env:
      description: Names of the environment variables.
      type: list
      elements: str
    volumes:
      description: Volumes and bind mounts, C(SOURCE:/TARGET[:ro]).
      type: list
      elements: str
    network_mode:
      description: Network mode.
      type: str
    restart_policy:
      description: Restart policy.
      type: str
    running:
      description: Whether it runs.
      type: bool
    status:
      description: State as the engine names it, for example V(running), V(exited) or V(created).
      type: str
"""

from ansible_collections.persist.docker.plugins.module_utils import container as cu
from ansible_collections.persist.docker.plugins.module_utils.client import DockerModule, get_or_none
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager


class ContainerInfoManager(Manager):
    def run(self):
        name = self.params["name"]
        state = cu.current_container(get_or_none("container '%s'" % name, self.api.inspect_container, name))
        return dict(changed=False, exists=state is not None, container=cu.view(name, state))


def main():
    DockerModule(dict(name=dict(type="str", required=True))).run(ContainerInfoManager)


if __name__ == "__main__":
    main()
