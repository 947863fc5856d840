# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Commands run in running containers around a backup: the options ``exec_before`` and ``exec_after``.

A hook is ``{container, command, user, workdir, timeout}``; its command runs through
the Engine API's exec (``docker exec`` without a terminal), never through a shell: a
string is split like a shell's words (``shlex``) but nothing in it is expanded.

:func:`around` is the one way a module runs them::

    with hooks.around(api, before, after, ran, self.act, check_mode):
        ...  # the backup

* the containers of every hook must exist and run before anything starts (else
  DockerError: nothing ran);
* the ``exec_before`` hooks run in order; the first that fails (an exit code other than
  0, its container gone, its timeout) stops the run: the body does not run;
* the ``exec_after`` hooks run once the body is done, and also when an ``exec_before``
  hook or the body failed, like a ``finally`` block (a hook that locked tables unlocks
  them); all of them run, even after one of them failed;
* in check mode nothing runs: each hook that would run is an action.

A hook's output (stdout and stderr together) is never kept whole: only its last
:data:`TAIL_LINES` lines (each cut at :data:`TAIL_WIDTH` characters) go into the result
and into an error message. A command that prints secrets puts them there.

:func:`argument_spec` is the options' spec; :func:`parse` checks one option's value (pure).
"""

from __future__ import annotations

import contextlib
import shlex
import threading
import time

from ansible_collections.persist.docker.plugins.module_utils.client import api_errors, get_or_none
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

BEFORE = "exec_before"
AFTER = "exec_after"
# Seconds a hook may run by default.
DEFAULT_TIMEOUT = 3600
# What is kept of a hook's output: its last lines, each cut; the bytes read are bounded too.
TAIL_LINES = 10
TAIL_WIDTH = 300
TAIL_BYTES = 16384
# How long to wait for the exit code of a command whose output has ended.
EXIT_WAIT = 10.0

HOOK_OPTIONS = dict(
    container=dict(type="str", required=True),
    command=dict(type="raw", required=True),
    user=dict(type="str"),
    workdir=dict(type="str"),
    timeout=dict(type="int", default=DEFAULT_TIMEOUT),
)


def argument_spec():
    """The spec of the options exec_before and exec_after: {name: spec}."""
    spec = dict(type="list", elements="dict", default=[], options=HOOK_OPTIONS)
    return {BEFORE: spec, AFTER: dict(spec)}


# ---------------------------------------------------------------- pure

def command_list(command, where):
    """A hook's command as a list of words: a list as it is (each word a string), a string split by shlex."""
    if isinstance(command, str):
        try:
            words = shlex.split(command)
        except ValueError as exc:
            raise DockerError("%s: the command %r cannot be split into words (%s); quote it correctly or give a "
                              "list" % (where, command, exc)) from None
    elif isinstance(command, list) and all(isinstance(w, (str, int, float)) and not isinstance(w, bool)
                                           for w in command):
        words = [str(w) for w in command]
    else:
        raise DockerError("%s: the command must be a string or a list of strings, not %r" % (where, command))
    if not words or not words[0]:
        raise DockerError("%s: the command is empty; give the program to run and its arguments" % where)
    return words


def parse(value, what):
    """The hooks of the option what (BEFORE or AFTER), checked: a list of dicts with the command as a list."""
    hooks = []
    for n, item in enumerate(value or ()):
        where = "%s[%d] (container '%s')" % (what, n, item.get("container"))
        if not item.get("container"):
            raise DockerError("%s[%d]: container is empty; name the running container to run the command in"
                              % (what, n))
        timeout = item.get("timeout")
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        if timeout <= 0:
            raise DockerError("%s: timeout must be a positive number of seconds, not %s" % (where, timeout))
        hooks.append(dict(what=what, container=item["container"], command=command_list(item.get("command"), where),
                          user=item.get("user") or None, workdir=item.get("workdir") or None, timeout=timeout))
    return hooks


def describe(hook):
    """The action of a hook: what runs where."""
    return "ran %s in container '%s': %s" % (hook["what"], hook["container"], shlex.join(hook["command"]))


class Tail:
    """The end of a stream of bytes: at most TAIL_BYTES of it, read as the last lines of text."""

    def __init__(self):
        self.data = bytearray()

    def add(self, chunk):
        self.data += chunk
        if len(self.data) > 2 * TAIL_BYTES:
            del self.data[:-TAIL_BYTES]

    def lines(self):
        text = bytes(self.data[-TAIL_BYTES:]).decode("utf-8", "replace")
        lines = [line for line in text.splitlines() if line.strip()]
        return [line if len(line) <= TAIL_WIDTH else line[:TAIL_WIDTH] + "..." for line in lines[-TAIL_LINES:]]


def output_text(lines):
    """The last output lines in one line of a message."""
    if not lines:
        return "it printed nothing"
    return "its output ends with: %s" % " | ".join(lines)


def failure(result):
    """Why a hook that ran failed (result: see run_hook), or None when it succeeded."""
    if result["rc"] == 0:
        return None
    return "%s in container '%s' failed with exit code %s (%s); %s" % (
        result["what"], result["container"], result["rc"], shlex.join(result["command"]), output_text(result["output"]))


def container_problem(hook, attrs):
    """Why hook cannot run in its container (attrs: its inspect dict, None when missing), or None."""
    where = "%s: container '%s'" % (hook["what"], hook["container"])
    if attrs is None:
        return "%s does not exist; check the name" % where
    state = attrs.get("State") or {}
    if state.get("Paused"):
        return "%s is paused; unpause it or remove the hook" % where
    if not state.get("Running"):
        return "%s is not running (%s); start it or remove the hook" % (where, state.get("Status") or "stopped")
    return None


# ---------------------------------------------------------------- with the engine

def check_containers(api, hooks):
    """DockerError when the container of a hook is missing or does not run (nothing has run yet)."""
    for hook in hooks:
        attrs = get_or_none("container '%s'" % hook["container"], api.inspect_container, hook["container"])
        problem = container_problem(hook, attrs)
        if problem:
            raise DockerError("%s; no hook ran and nothing was backed up" % problem)


def run_hook(api, hook):
    """Run one hook; its result {what, container, command, rc, seconds, output}. DockerError when it could not
    run or did not end within its timeout (its exit code is in the result otherwise)."""
    subject = "%s in container '%s'" % (hook["what"], hook["container"])
    start = time.monotonic()
    with api_errors(subject):
        exec_id = api.exec_create(hook["container"], hook["command"], stdout=True, stderr=True,
                                  user=hook["user"] or "", workdir=hook["workdir"])["Id"]
        stream = api.exec_start(exec_id, stream=True)
    tail = Tail()
    lost = []

    def read():
        try:
            for chunk in stream:
                tail.add(chunk)
        except Exception as exc:  # noqa: BLE001 - raised by run_hook below
            lost.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(hook["timeout"])
    if reader.is_alive():
        raise DockerError("%s did not end within its timeout of %s seconds (%s); it may still run in the "
                          "container, the Engine API cannot stop it; %s. Raise the hook's timeout or fix the command"
                          % (subject, hook["timeout"], shlex.join(hook["command"]), output_text(tail.lines())))
    if lost:
        raise DockerError("%s: lost the connection to the Docker daemon while the command ran (%s); %s"
                          % (subject, lost[0], output_text(tail.lines())))
    rc = exit_code(api, exec_id, subject)
    return dict(what=hook["what"], container=hook["container"], command=hook["command"], rc=rc,
                seconds=round(time.monotonic() - start, 3), output=tail.lines())


def exit_code(api, exec_id, subject):
    """The exit code of an exec whose output has ended (the engine records it a moment later)."""
    deadline = time.monotonic() + EXIT_WAIT
    while True:
        with api_errors(subject):
            info = api.exec_inspect(exec_id)
        if not info.get("Running") and info.get("ExitCode") is not None:
            return info["ExitCode"]
        if time.monotonic() > deadline:
            raise DockerError("%s: the command's output ended but the engine reports no exit code after %s seconds; "
                              "check the container" % (subject, EXIT_WAIT))
        time.sleep(0.05)


def run_hooks(api, hooks, ran, act, keep_going=False):
    """Run hooks in order, appending each result to ran and its action with act.

    Stops at the first failure with DockerError unless keep_going; then all run and the
    list of failure messages is returned.
    """
    failures = []
    for hook in hooks:
        try:
            result = run_hook(api, hook)
        except DockerError as exc:
            if not keep_going:
                raise
            failures.append(str(exc))
            continue
        ran.append(result)
        act(describe(hook))
        problem = failure(result)
        if problem and not keep_going:
            raise DockerError(problem)
        if problem:
            failures.append(problem)
    return failures


@contextlib.contextmanager
def around(api, before, after, ran, act, check_mode):
    """Run the exec_before hooks, the body, and the exec_after hooks (see the file's docstring).

    ran gets each hook's result, act each hook's action (in check mode: each hook that would run).
    """
    check_containers(api, before + after)
    if check_mode:
        for hook in before:
            act(describe(hook))
        yield
        for hook in after:
            act(describe(hook))
        return
    try:
        try:
            run_hooks(api, before, ran, act)
        except DockerError as exc:
            raise DockerError("%s; nothing was backed up" % exc) from None
        yield
    except Exception as exc:
        failures = run_hooks(api, after, ran, act, keep_going=True)
        if failures and isinstance(exc, DockerError):
            raise DockerError("%s; then %s" % (exc, "; ".join(failures))) from None
        raise
    failures = run_hooks(api, after, ran, act, keep_going=True)
    if failures:
        raise DockerError("%s; the backup itself was written" % "; ".join(failures))
