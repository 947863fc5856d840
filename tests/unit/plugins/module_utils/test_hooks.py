# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hooks around a backup: their options checked, their order, and exec_after as a finally block.

The engine is a fake that runs nothing: the real exec is tested by the volume_backup target.
"""
from __future__ import annotations

import threading

import pytest

from ansible_collections.persist.docker.plugins.module_utils import hooks
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


class FakeApi:
    """Containers by name with a state; an exec 'runs' by giving back the output and exit code of its command.

    commands maps the first word of a command to (output bytes, exit code); 'hang' never ends.
    """

    def __init__(self, states, commands=None):
        self.states = states
        self.commands = commands or {}
        self.execs = {}
        self.log = []
        self.release = threading.Event()

    def inspect_container(self, name):
        if name not in self.states:
            from docker.errors import NotFound
            raise NotFound("gone")
        state = self.states[name]
        return {"State": {"Status": state, "Running": state in ("running", "paused"), "Paused": state == "paused"}}

    def exec_create(self, container, cmd, stdout=True, stderr=True, user="", workdir=None):
        if self.states.get(container) != "running":
            from docker.errors import APIError
            raise APIError("Container %s is not running" % container)
        exec_id = "x%d" % len(self.execs)
        self.execs[exec_id] = (container, cmd, user, workdir)
        return {"Id": exec_id}

    def exec_start(self, exec_id, stream=False):
        container, cmd, _user, _workdir = self.execs[exec_id]
        self.log.append((container, cmd))
        output, _rc = self.commands.get(cmd[0], (b"", 0))

        def chunks():
            if cmd[0] == "hang":
                self.release.wait(5)
            yield from (output[i:i + 7] for i in range(0, len(output), 7))
        return chunks()

    def exec_inspect(self, exec_id):
        _container, cmd, _user, _workdir = self.execs[exec_id]
        return {"Running": False, "ExitCode": self.commands.get(cmd[0], (b"", 0))[1]}


def hook(what, container, command, **extra):
    return hooks.parse([dict(dict(container=container, command=command, user=None, workdir=None, timeout=None),
                             **extra)], what)[0]


# ---------------------------------------------------------------- options

@pytest.mark.parametrize("command, words", [
    ("pg_dump -U app -f '/data/dump one.sql'", ["pg_dump", "-U", "app", "-f", "/data/dump one.sql"]),
    (["sh", "-c", "date > /data/x; echo $HOME"], ["sh", "-c", "date > /data/x; echo $HOME"]),
    (["sleep", 5], ["sleep", "5"]),
    ("echo $HOME > x", ["echo", "$HOME", ">", "x"]),
])
def test_a_command_is_a_list_of_words_never_a_shell_line(command, words):
    assert hook(hooks.BEFORE, "db", command)["command"] == words


@pytest.mark.parametrize("item, message", [
    (dict(container="db", command=""), "exec_before[0] (container 'db'): the command is empty"),
    (dict(container="db", command=[]), "the command is empty"),
    (dict(container="db", command="echo 'unclosed"), "cannot be split into words"),
    (dict(container="db", command={"a": 1}), "must be a string or a list of strings"),
    (dict(container="db", command=["a", None]), "must be a string or a list of strings"),
    (dict(container="db", command="true", timeout=0), "timeout must be a positive number"),
    (dict(container="", command="true"), "exec_before[0]: container is empty"),
])
def test_bad_hooks_are_refused_with_their_place_named(item, message):
    with pytest.raises(DockerError) as err:
        hooks.parse([dict(dict(user=None, workdir=None, timeout=None), **item)], hooks.BEFORE)
    assert message in str(err.value)


def test_defaults_and_the_action_text():
    parsed = hook(hooks.AFTER, "db", "rm -f '/data/dump one.sql'")
    assert parsed["timeout"] == hooks.DEFAULT_TIMEOUT and parsed["user"] is None and parsed["what"] == "exec_after"
    assert hooks.describe(parsed) == "ran exec_after in container 'db': rm -f '/data/dump one.sql'"


def test_the_output_is_kept_as_its_last_lines_only():
    tail = hooks.Tail()
    for n in range(5000):
        tail.add(b"line %d secret-%d\n" % (n, n))
    tail.add(b"x" * 1000 + b"\n\n   \n")
    lines = tail.lines()
    assert len(lines) == hooks.TAIL_LINES and lines[-1] == "x" * hooks.TAIL_WIDTH + "..."
    assert lines[0] == "line 4991 secret-4991"
    assert len(tail.data) <= 2 * hooks.TAIL_BYTES
    assert hooks.output_text([]) == "it printed nothing"


@pytest.mark.parametrize("state, message", [
    (None, "exec_before: container 'db' does not exist"),
    ("exited", "container 'db' is not running (exited)"),
    ("paused", "container 'db' is paused"),
])
def test_a_missing_or_stopped_container_stops_the_run_before_any_hook(state, message):
    api = FakeApi({"web": "running"} if state is None else {"web": "running", "db": state})
    body = []
    with pytest.raises(DockerError) as err, \
            hooks.around(api, [hook(hooks.BEFORE, "web", "true"), hook(hooks.BEFORE, "db", "true")],
                         [hook(hooks.AFTER, "web", "true")], [], body.append, False):
        body.append("backup")
    assert message in str(err.value) and "no hook ran and nothing was backed up" in str(err.value)
    assert api.log == [] and body == []


# ---------------------------------------------------------------- order and failures

def test_hooks_run_in_order_around_the_body():
    api = FakeApi({"db": "running", "web": "running"}, {"dump": (b"dumped 3 tables\n", 0)})
    ran, actions = [], []
    with hooks.around(api, [hook(hooks.BEFORE, "db", "dump -v"), hook(hooks.BEFORE, "web", "sync")],
                      [hook(hooks.AFTER, "db", "rm dump")], ran, actions.append, False):
        actions.append("backup")
    assert actions == ["ran exec_before in container 'db': dump -v", "ran exec_before in container 'web': sync",
                       "backup", "ran exec_after in container 'db': rm dump"]
    assert [(r["what"], r["container"], r["rc"], r["output"]) for r in ran] == [
        ("exec_before", "db", 0, ["dumped 3 tables"]), ("exec_before", "web", 0, []), ("exec_after", "db", 0, [])]
    assert all(r["seconds"] >= 0 for r in ran)


def test_check_mode_runs_nothing_and_says_what_would_run():
    api = FakeApi({"db": "running"})
    ran, actions = [], []
    with hooks.around(api, [hook(hooks.BEFORE, "db", "dump")], [hook(hooks.AFTER, "db", "rm dump")], ran,
                      actions.append, True):
        actions.append("backup")
    assert actions == ["ran exec_before in container 'db': dump", "backup", "ran exec_after in container 'db': rm dump"]
    assert ran == [] and api.log == []


def test_a_failing_exec_before_stops_the_run_and_exec_after_still_runs():
    api = FakeApi({"db": "running"}, {"lock": (b"locked\n", 0), "dump": (b"a\nb\npg_dump: error: no space\n", 3)})
    ran, body = [], []
    with pytest.raises(DockerError) as err, \
            hooks.around(api, [hook(hooks.BEFORE, "db", "lock"), hook(hooks.BEFORE, "db", "dump --all"),
                               hook(hooks.BEFORE, "db", "never")],
                         [hook(hooks.AFTER, "db", "unlock")], ran, lambda a: None, False):
        body.append("backup")
    msg = str(err.value)
    assert msg.startswith("exec_before in container 'db' failed with exit code 3 (dump --all)")
    assert "its output ends with: a | b | pg_dump: error: no space" in msg and "nothing was backed up" in msg
    assert body == []
    assert [c[1][0] for c in api.log] == ["lock", "dump", "unlock"]
    assert [r["rc"] for r in ran] == [0, 3, 0]


def test_exec_after_runs_after_a_failed_body_and_every_failure_is_told():
    api = FakeApi({"db": "running", "web": "running"}, {"bad": (b"oops\n", 1)})
    ran = []
    with pytest.raises(DockerError) as err, \
            hooks.around(api, [], [hook(hooks.AFTER, "db", "bad"), hook(hooks.AFTER, "web", "fine")], ran,
                         lambda a: None, False):
        raise DockerError("volume 'v': the disk is full")
    assert str(err.value).startswith("volume 'v': the disk is full; then exec_after in container 'db' failed "
                                     "with exit code 1 (bad); its output ends with: oops")
    assert [c[1][0] for c in api.log] == ["bad", "fine"]


def test_a_failing_exec_after_fails_the_run_but_says_the_backup_was_written():
    api = FakeApi({"db": "running"}, {"bad": (b"", 2)})
    with pytest.raises(DockerError) as err, \
            hooks.around(api, [], [hook(hooks.AFTER, "db", "bad")], [], lambda a: None, False):
        pass
    assert str(err.value) == ("exec_after in container 'db' failed with exit code 2 (bad); it printed nothing; "
                              "the backup itself was written")


def test_a_container_gone_meanwhile_is_a_failure_of_that_hook():
    api = FakeApi({"db": "running", "web": "running"})
    ran = []
    with pytest.raises(DockerError) as err, \
            hooks.around(api, [hook(hooks.BEFORE, "db", "true")], [hook(hooks.AFTER, "web", "true")], ran,
                         lambda a: None, False):
        api.states["web"] = "exited"
    assert "exec_after in container 'web'" in str(err.value) and "not running" in str(err.value)


def test_a_hook_that_does_not_end_in_time_fails_with_its_output():
    api = FakeApi({"db": "running"}, {"hang": (b"started\n", 0)})
    try:
        with pytest.raises(DockerError) as err:
            hooks.run_hook(api, hook(hooks.BEFORE, "db", "hang now", timeout=1))
    finally:
        api.release.set()
    msg = str(err.value)
    assert "exec_before in container 'db' did not end within its timeout of 1 seconds (hang now)" in msg
    assert "may still run in the container" in msg
