# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The decisions of the container module: one container's wanted state against the engine's.

Pure (no SDK): the options turned into a wanted state, an inspected container turned into its
current state, the differences between the two, and the plan (remove, create, start, stop,
restart) that the module carries out. Not to be confused with ``containers.py``, which stops
and starts the containers of a volume around work on it.
"""

from __future__ import annotations

import shlex

from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

STATES = ("present", "started", "stopped", "absent")
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
# The fields compared, in the order differences are reported.
COMPARED = ("image", "command", "env", "volumes", "network_mode", "restart_policy")


def parse_volume(container, spec):
    """``source:target[:ro|rw]`` -> its canonical form (``:rw`` dropped), or DockerError."""
    parts = spec.split(":") if isinstance(spec, str) else []
    mode = "rw"
    if len(parts) == 3:
        mode = parts.pop()
    if len(parts) != 2 or not parts[0] or not parts[1].startswith("/") or mode not in ("ro", "rw"):
        raise DockerError("container '%s': volume %r is not SOURCE:/TARGET[:ro|rw]; give a volume name or an "
                          "absolute host path, a colon, an absolute path in the container, and optionally :ro"
                          % (container, spec))
    if parts[0].startswith(".") or ("/" in parts[0] and not parts[0].startswith("/")):
        raise DockerError("container '%s': volume %r names a relative host path; give a volume name or an "
                          "absolute path" % (container, spec))
    return "%s:%s%s" % (parts[0], parts[1], ":ro" if mode == "ro" else "")


def parse_command(container, command):
    """The command option (a list, or a string split like a shell would) -> a list of str, or None."""
    if command is None:
        return None
    if isinstance(command, str):
        try:
            return shlex.split(command)
        except ValueError as exc:
            raise DockerError("container '%s': command %r cannot be split into arguments (%s); give it as a "
                              "list" % (container, command, exc)) from None
    if isinstance(command, (list, tuple)):
        return [str(arg) for arg in command]
    raise DockerError("container '%s': command must be a list of arguments or a string, not %s"
                      % (container, type(command).__name__))


def parse_env(container, env):
    """The env option -> {str: str}; a value must be a string, a number or a bool, without NUL."""
    if env is None:
        return None
    result = {}
    for key, given in env.items():
        if not key or "=" in key:
            raise DockerError("container '%s': environment variable name %r is empty or holds '='; give a "
                              "plain name" % (container, key))
        if isinstance(given, bool):
            value = "true" if given else "false"
        elif isinstance(given, (int, float)):
            value = str(given)
        elif isinstance(given, str):
            value = given
        else:
            raise DockerError("container '%s': the value of environment variable %s must be a string, a number "
                              "or a bool" % (container, key))
        if "\x00" in value:
            raise DockerError("container '%s': the value of environment variable %s holds a NUL character"
                              % (container, key))
        result[key] = value
    return result


def wanted_container(params):
    """The module's options -> the wanted state (validated, canonical)."""
    name = params["name"]
    volumes = params.get("volumes")
    return dict(
        name=name,
        state=params.get("state") or "started",
        image=params.get("image"),
        command=parse_command(name, params.get("command")),
        env=parse_env(name, params.get("env")),
        volumes=None if volumes is None else sorted(set(parse_volume(name, v) for v in volumes)),
        network_mode=params.get("network_mode"),
        restart_policy=params.get("restart_policy"),
        restart=bool(params.get("restart")),
    )


def env_dict(entries):
    """A container's or an image's Config.Env (["K=V", ...]) -> {K: V}."""
    result = {}
    for entry in entries or []:
        key, _sep, value = entry.partition("=")
        result[key] = value
    return result


def current_container(inspect):
    """The engine's inspect of a container (or None) -> its current state in the terms of wanted_container."""
    if inspect is None:
        return None
    config = inspect.get("Config") or {}
    host_config = inspect.get("HostConfig") or {}
    state = inspect.get("State") or {}
    binds = []
    for bind in host_config.get("Binds") or []:
        try:
            binds.append(parse_volume(inspect.get("Name", "").lstrip("/"), bind))
        except DockerError:
            binds.append(bind)
    return dict(
        id=inspect.get("Id"),
        image_id=inspect.get("Image"),
        image=config.get("Image"),
        command=list(config.get("Cmd") or []),
        env=env_dict(config.get("Env")),
        volumes=sorted(set(binds)),
        network_mode=host_config.get("NetworkMode"),
        restart_policy=(host_config.get("RestartPolicy") or {}).get("Name") or "no",
        running=bool(state.get("Running")),
        status=state.get("Status"),
    )


def expected(wanted, image):
    """What a container made from wanted looks like on the engine, image being the inspected image (or None)."""
    image_config = (image or {}).get("Config") or {}
    env = env_dict(image_config.get("Env"))
    env.update(wanted["env"] or {})
    return dict(
        image_id=(image or {}).get("Id"),
        command=wanted["command"] if wanted["command"] is not None else list(image_config.get("Cmd") or []),
        env=env,
        volumes=wanted["volumes"] if wanted["volumes"] is not None else [],
        network_mode=wanted["network_mode"],
        restart_policy=wanted["restart_policy"],
    )


def differences(current, wanted, image):
    """The fields of an existing container that differ from the wanted state, in COMPARED order.

    Fields that are not given (network_mode, restart_policy) are not compared; env and command are
    compared with the image's own added in, as the engine fills them in.
    """
    want = expected(wanted, image)
    found = []
    if want["image_id"] != current["image_id"]:
        found.append("image")
    for field in ("command", "env", "volumes"):
        if want[field] != current[field]:
            found.append(field)
    for field in ("network_mode", "restart_policy"):
        if want[field] is not None and want[field] != current[field]:
            found.append(field)
    return found


def plan_container(current, wanted, image):
    """(actions, differences): what brings the container from current (or None) to wanted.

    Actions, in order, from: remove, create, start, stop, restart. A container that differs is
    removed and created again; for state present it is started again when it ran before. Without
    an image in wanted, an existing container is not compared (only whether it runs is managed).
    """
    state = wanted["state"]
    if state == "absent":
        return (["remove"] if current else []), []
    if current is None:
        if not wanted["image"]:
            raise DockerError("container '%s' does not exist, and without image it cannot be created; give image, "
                              "or state absent" % wanted["name"])
        return (["create", "start"] if state == "started" else ["create"]), []
    diff = differences(current, wanted, image) if wanted["image"] else []
    actions = []
    running = current["running"]
    if diff:
        actions += ["remove", "create"]
        if state == "started" or (state == "present" and running):
            actions.append("start")
        return actions, diff
    if state == "started" and not running:
        actions.append("start")
    elif state == "started" and wanted["restart"]:
        actions.append("restart")
    elif state == "stopped" and running:
        actions.append("stop")
    return actions, diff


def describe(state, wanted):
    """The diff view of a container state: no environment values (they may be secrets), only names;
    network mode and restart policy only when they are given (else they are not managed)."""
    if state is None:
        return dict(exists=False)
    view = dict(exists=True, running=state["running"], image=state.get("image"), command=state["command"],
                env=sorted(state["env"]), volumes=state["volumes"])
    for field in ("network_mode", "restart_policy"):
        if wanted.get(field) is not None:
            view[field] = state[field]
    return view


def view(name, state):
    """A container state as the modules return it (environment by names only), or None."""
    if state is None:
        return None
    return dict(name=name, id=state["id"], image=state["image"], image_id=state["image_id"],
                command=state["command"], env=sorted(state["env"]), volumes=state["volumes"],
                network_mode=state["network_mode"], restart_policy=state["restart_policy"],
                running=state["running"], status=state["status"])


def predicted(current, wanted, image, actions):
    """The state after the actions, in the terms of current_container (for the diff and the result)."""
    if "create" not in actions:
        if current is None:
            return None
        after = dict(current)
        if "start" in actions or "restart" in actions:
            after["running"] = True
        if "stop" in actions:
            after["running"] = False
        if "remove" in actions:
            return None
        return after
    want = expected(wanted, image)
    return dict(
        id=None,
        image_id=want["image_id"],
        image=wanted["image"],
        command=want["command"],
        env=want["env"],
        volumes=want["volumes"],
        network_mode=want["network_mode"],
        restart_policy=want["restart_policy"] or "no",
        running="start" in actions,
        status="running" if "start" in actions else "created",
    )
