#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: container
short_description: Run one Docker container with its volumes, environment and restart policy
version_added: 0.2.0
description:
  - Creates, starts, stops and removes one container, idempotently. It is the small module the
    collection's roles use to run a service; for everything else a container can be, use
    community.docker.docker_container, whose option names this module shares.
  - An existing container whose image, command, environment, volumes, network mode or restart
    policy differ from the options is removed and created again. Options that are not given are
    not compared, except O(command), O(env) and O(volumes), which are compared with what the
    image adds (its command and environment) or with none. Without O(image), an existing
    container is not compared at all, only whether it runs is managed (stop or start a container
    as it is).
  - The environment goes to the engine in the API request only, never onto a command line, into a
    log or into a result; the diff shows the names of the variables, not their values.
  - The image must be on the engine; this module does not pull it.
  - Removing a container never removes its volumes.
extends_documentation_fragment:
  - persist.docker.docker
  - persist.docker.attributes
  - persist.docker.attributes.actiongroup_docker
attributes:
  check_mode:
    support: full
    description: Predicts exactly what a real run creates, removes, starts, stops and restarts.
  diff_mode:
    support: full
    description: Shows the container (image, command, names of the environment variables, volumes,
      running, and the network mode and restart policy when they are given) before and after.
  idempotent:
    support: partial
    description: A second run with the same options reports no change, unless O(restart=true).
options:
  name:
    description: Name of the container.
    type: str
    required: true
  state:
    description:
      - V(started) creates the container if it is missing and starts it.
      - V(present) creates it if it is missing but does not start it; a container that is recreated
        is started again when it ran before.
      - V(stopped) creates it if it is missing and stops it when it runs.
      - V(absent) removes it (also when it runs); its volumes stay.
    type: str
    choices: [present, started, stopped, absent]
    default: started
  image:
    description:
      - Image of the container, which must be on the engine. Needed to create a container; without it,
        an existing container is only started, stopped or removed, as it is.
      - A container made from another image (another image id under the same name, for example after
        a pull) is recreated.
    type: str
  command:
    description:
      - Command of the container, as a list of arguments or a string that is split like a shell
        would split it. Without it, the image's command.
    type: raw
  env:
    description:
      - Environment variables. Values are strings (numbers and bools are turned into strings).
      - Never shown in a log, a result or the diff.
    type: dict
  volumes:
    description:
      - Volumes and bind mounts as C(SOURCE:/TARGET[:ro|rw]); SOURCE is a volume name or an absolute
        host path. Without it, none.
    type: list
    elements: str
  network_mode:
    description:
      - Network mode, for example V(bridge), V(host), V(none) or the name of a network. Not compared
        when not given (the engine's default, V(bridge)).
    type: str
  restart_policy:
    description:
      - Restart policy. Not compared when not given (the engine's default, V(no)).
    type: str
    choices: ["no", on-failure, always, unless-stopped]
  restart:
    description:
      - With O(state=started), restart a running container that needs no other change (for example
        from a handler when its data changed). Reports a change each time.
    type: bool
    default: false
  stop_timeout:
    description:
      - Seconds the container has to stop before it is killed, when it is stopped or restarted.
        Without it, the container's own stop timeout (10 seconds unless it was created with another).
    type: int
seealso:
  - module: persist.docker.volume
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: An application with its data volume and a secret
  persist.docker.container:
    name: app
    image: busybox:latest
    command: [sleep, infinity]
    volumes:
      - app-data:/data
      - /etc/app:/etc/app:ro
    env:
      APP_TOKEN: "{{ app_token }}"
    restart_policy: unless-stopped

- name: Restart it (in a handler)
  persist.docker.container:
    name: app
    image: busybox:latest
    command: [sleep, infinity]
    volumes: [app-data:/data, /etc/app:/etc/app:ro]
    env:
      APP_TOKEN: "{{ app_token }}"
    restart_policy: unless-stopped
    restart: true

- name: Stop it on another engine
  persist.docker.container:
    name: app
    image: busybox:latest
    state: stopped
    docker_host: tcp://old-host.example.com:2376
    validate_certs: true

- name: Remove it, keeping its volumes
  persist.docker.container:
    name: app
    state: absent
"""

RETURN = r"""
actions:
  description: What was done (in check mode, what would be done).
  returned: always
  type: list
  elements: str
  sample: [created container app, started container app]
differences:
  description: The fields in which the existing container differed from the options (the cause of a
    recreation).
  returned: always
  type: list
  elements: str
  sample: [image, env]
container:
  description: The container after the run (in check mode, as it would be), or V(null) when it does
    not exist. The environment is given by names only.
  returned: always
  type: dict
  contains:
    name:
      description: Container name.
      type: str
    id:
      description: Container id; V(null) for a container that check mode would create.
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
      description: Names of the environment variables (with the image's).
      type: list
      elements: str
    volumes:
      description: Volumes and bind mounts, C(SOURCE:/TARGET[:ro]).
      type: list
      elements: str
    network_mode:
      description: Network mode; V(null) when not given and the container is yet to be created.
      type: str
    restart_policy:
      description: Restart policy.
      type: str
    running:
      description: Whether it runs.
      type: bool
    status:
      description: State of the container as the engine names it, for example V(running), V(exited) or
        V(created).
      type: str
"""

from ansible_collections.persist.docker.plugins.module_utils import container as cu
from ansible_collections.persist.docker.plugins.module_utils.client import (
    DockerError,
    DockerModule,
    api_errors,
    get_or_none,
)
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager


class ContainerManager(Manager):
    def run(self):
        wanted = cu.wanted_container(self.params)
        name = wanted["name"]
        subject = "container '%s'" % name
        current = cu.current_container(get_or_none(subject, self.api.inspect_container, name))
        image = None
        if wanted["state"] != "absent" and wanted["image"]:
            image = get_or_none("image '%s'" % wanted["image"], self.api.inspect_image, wanted["image"])
            if image is None:
                raise DockerError("container '%s': image '%s' is not on the Docker daemon at %s; pull or build it "
                                  "first (for example with persist.docker.registry_image)"
                                  % (name, wanted["image"], self.dm.host))
        plan, differences = cu.plan_container(current, wanted, image)
        after = cu.predicted(current, wanted, image, plan)
        if not self.dm.check_mode:
            self.execute(wanted, plan, subject)
            if plan:
                after = cu.current_container(get_or_none(subject, self.api.inspect_container, name))
        for action in plan:
            self.act("%s container %s" % (_PAST[action], name))
        return self.finish(dict(differences=differences, container=cu.view(name, after)),
                           cu.describe(current, wanted), cu.describe(after, wanted))

    def execute(self, wanted, plan, subject):
        name = wanted["name"]
        timeout = self.params.get("stop_timeout")
        stop_args = {} if timeout is None else dict(timeout=timeout)
        with api_errors(subject):
            for action in plan:
                if action == "remove":
                    self.api.remove_container(name, force=True, v=False)
                elif action == "create":
                    self.create(wanted)
                elif action == "start":
                    self.api.start(name)
                elif action == "stop":
                    self.api.stop(name, **stop_args)
                elif action == "restart":
                    self.api.restart(name, **stop_args)

    def create(self, wanted):
        host_config = dict(binds=wanted["volumes"] or [])
        if wanted["network_mode"]:
            host_config["network_mode"] = wanted["network_mode"]
        if wanted["restart_policy"]:
            host_config["restart_policy"] = dict(Name=wanted["restart_policy"])
        kwargs = dict(name=wanted["name"], detach=True, host_config=self.api.create_host_config(**host_config),
                      environment=wanted["env"] or None)
        if wanted["command"] is not None:
            kwargs["command"] = wanted["command"]
        if self.params.get("stop_timeout") is not None:
            kwargs["stop_timeout"] = self.params["stop_timeout"]
        self.api.create_container(wanted["image"], **kwargs)


_PAST = dict(remove="removed", create="created", start="started", stop="stopped", restart="restarted")


def main():
    spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="started", choices=list(cu.STATES)),
        image=dict(type="str"),
        command=dict(type="raw"),
        env=dict(type="dict", no_log=True),
        volumes=dict(type="list", elements="str"),
        network_mode=dict(type="str"),
        restart_policy=dict(type="str", choices=list(cu.RESTART_POLICIES)),
        restart=dict(type="bool", default=False),
        stop_timeout=dict(type="int"),
    )
    DockerModule(spec).run(ContainerManager)


if __name__ == "__main__":
    main()
