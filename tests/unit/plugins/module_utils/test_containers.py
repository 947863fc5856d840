# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Containers held still around work on a volume, and recovered after a killed run."""
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.persist.docker.plugins.module_utils import containers
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    path = tmp_path / "quiesced"
    monkeypatch.setenv(containers.STATE_DIR_ENV, str(path))
    return path


class FakeApi:
    """Containers by id with a state; every call is logged with whether the record existed then."""

    def __init__(self, states, fail=()):
        self.states = dict(states)
        self.fail = set(fail)
        self.calls = []

    def _act(self, what, cid, new):
        self.calls.append((what, cid, os.path.exists(containers.record_path("E", "data"))))
        if (what, cid) in self.fail:
            from docker.errors import APIError
            raise APIError("refused")
        self.states[cid] = new

    def stop(self, cid, timeout=10):
        self._act("stop", cid, "exited")

    def start(self, cid):
        self._act("start", cid, "running")

    def pause(self, cid):
        self._act("pause", cid, "paused")

    def unpause(self, cid):
        self._act("unpause", cid, "running")

    def inspect_container(self, cid):
        if cid not in self.states:
            from docker.errors import NotFound
            raise NotFound("gone")
        return {"State": {"Status": self.states[cid]}}


def users(*specs):
    return [dict(id=cid, name="c-" + cid, running=running, state="running" if running else "exited")
            for cid, running in specs]


@pytest.mark.parametrize("quiesce,stop_containers,how", [
    (None, None, "none"), (None, False, "none"), (None, True, "stop"), ("pause", None, "pause"),
    ("none", None, "none"), ("stop", None, "stop"),
])
def test_backup_quiesce(quiesce, stop_containers, how):
    assert containers.backup_quiesce(quiesce, stop_containers) == how


def test_to_quiesce_takes_the_running_ones_only():
    found = users(("a", True), ("b", False), ("c", True))
    assert [u["id"] for u in containers.to_quiesce(found, "stop")] == ["a", "c"]
    assert [u["id"] for u in containers.to_quiesce(found, "pause", skip={"a"})] == ["c"]
    assert containers.to_quiesce(found, "none") == []


def test_torn_copy_warning_names_the_running_containers():
    assert containers.torn_copy_warning("data", users(("b", False))) is None
    text = containers.torn_copy_warning("data", users(("b", True), ("a", True), ("x", False)))
    assert "'data'" in text and "c-a, c-b" in text and "c-x" not in text and "quiesce: pause" in text


@pytest.mark.parametrize("how,found,undo", [
    ("stop", {"a": "exited", "b": "running"}, ["a"]),
    ("stop", {"a": "created"}, ["a"]),
    ("pause", {"a": "paused", "b": "exited"}, ["a"]),
    ("stop", {}, []),
])
def test_to_undo(how, found, undo):
    record = dict(how=how, containers=[dict(id="a", name="A"), dict(id="b", name="B")])
    assert [c["id"] for c in containers.to_undo(record, found)] == undo


@pytest.mark.parametrize("how,verbs", [("stop", ("stop", "start")), ("pause", ("pause", "unpause"))])
def test_held_still_records_before_it_acts_and_undoes_after(how, verbs):
    api = FakeApi({"a": "running", "b": "running"})
    with containers.held_still(api, "E", "data", users(("a", True), ("b", True)), how, "the test") as held:
        assert held == ["c-a", "c-b"]
        with open(containers.record_path("E", "data")) as f:
            record = json.load(f)
        assert record == dict(how=how, containers=[dict(id="a", name="c-a"), dict(id="b", name="c-b")])
        assert oct(os.stat(containers.record_path("E", "data")).st_mode & 0o777) == "0o600"
    assert api.calls == [(verbs[0], "a", True), (verbs[0], "b", True), (verbs[1], "a", True), (verbs[1], "b", True)]
    assert not os.path.exists(containers.record_path("E", "data"))
    assert api.states == {"a": "running", "b": "running"}


def test_held_still_undoes_after_an_error_and_keeps_it():
    api = FakeApi({"a": "running"})
    with pytest.raises(DockerError, match="copy failed"), \
            containers.held_still(api, "E", "data", users(("a", True)), "stop", "the test"):
        raise DockerError("copy failed")
    assert api.states["a"] == "running" and not os.path.exists(containers.record_path("E", "data"))


def test_held_still_keep_stopped_leaves_them_stopped_after_success_only():
    api = FakeApi({"a": "running"})
    with containers.held_still(api, "E", "data", users(("a", True)), "stop", "the test", keep_stopped=True) as held:
        assert held == ["c-a"] and os.path.exists(containers.record_path("E", "data"))
    assert api.states["a"] == "exited" and api.calls == [("stop", "a", True)]
    assert not os.path.exists(containers.record_path("E", "data"))
    api = FakeApi({"a": "running"})
    with pytest.raises(DockerError, match="copy failed"), \
            containers.held_still(api, "E", "data", users(("a", True)), "stop", "the test", keep_stopped=True):
        raise DockerError("copy failed")
    assert api.states["a"] == "running" and not os.path.exists(containers.record_path("E", "data"))


def test_held_still_names_what_did_not_start():
    api = FakeApi({"a": "running"}, fail={("start", "a")})
    with pytest.raises(DockerError, match="containers stopped for the test did not start again: container 'c-a'"), \
            containers.held_still(api, "E", "data", users(("a", True)), "stop", "the test"):
        pass
    with pytest.raises(DockerError, match="^copy failed; and containers stopped"), \
            containers.held_still(api, "E", "data", users(("a", True)), "stop", "the test"):
        raise DockerError("copy failed.")


def test_held_still_without_anything_to_hold_writes_no_record(state_dir):
    api = FakeApi({})
    with containers.held_still(api, "E", "data", [], "stop", "the test") as held:
        assert held == []
    with containers.held_still(api, "E", "data", users(("a", True)), "none", "the test") as held:
        assert held == []
    assert api.calls == [] and not state_dir.exists()


def test_recover_what_a_killed_run_left():
    api = FakeApi({"a": "running", "b": "running", "c": "running"})
    held = containers.held_still(api, "E", "data", users(("a", True), ("b", True), ("c", True)), "stop", "x")
    held.__enter__()  # the run is killed inside the block: the record stays, the containers stay stopped
    api.states.update(b="running")  # someone started b meanwhile
    del api.states["c"]  # and removed c
    api.calls = []
    assert containers.recover(api, "E", "data", check_mode=True) == (
        ["started container 'c-a' again (left stopped by an interrupted run)"], [])
    assert api.calls == [] and os.path.exists(containers.record_path("E", "data"))
    actions, errors = containers.recover(api, "E", "data")
    assert actions == ["started container 'c-a' again (left stopped by an interrupted run)"] and errors == []
    assert api.states == {"a": "running", "b": "running"}
    assert not os.path.exists(containers.record_path("E", "data"))
    assert containers.recover(api, "E", "data") == ([], [])


def test_recover_unpauses_and_reports_what_failed():
    api = FakeApi({"a": "running"}, fail={("unpause", "a")})
    held = containers.held_still(api, "E", "data", users(("a", True)), "pause", "x")
    held.__enter__()
    actions, errors = containers.recover(api, "E", "data")
    assert actions == ["unpaused container 'c-a' again (left paused by an interrupted run)"]
    assert len(errors) == 1 and "c-a" in errors[0]


def test_an_unreadable_record_fails_clearly(state_dir):
    state_dir.mkdir()
    with open(containers.record_path("E", "data"), "w") as f:
        f.write("{not json")
    with pytest.raises(DockerError, match="cannot be read"):
        containers.recover(FakeApi({}), "E", "data")


def test_containers_stopped_stops_the_running_users_and_starts_them_again():
    api = FakeApi({"a": "running", "b": "exited"})
    with containers.containers_stopped(api, "E", "data", "stop", "the test", users(("a", True), ("b", False))) as held:
        assert held == ["c-a"]
        assert api.states == {"a": "exited", "b": "exited"}
    assert api.calls == [("stop", "a", True), ("start", "a", True)]
    assert api.states == {"a": "running", "b": "exited"}
    assert not os.path.exists(containers.record_path("E", "data"))


def test_containers_stopped_reads_the_users_when_not_given(monkeypatch):
    api = FakeApi({"a": "running"})
    asked = []
    monkeypatch.setattr(containers, "containers_using", lambda api_, volume: asked.append(volume) or users(("a", True)))
    with containers.containers_stopped(api, "E", "data", "pause") as held:
        assert held == ["c-a"] and api.states == {"a": "paused"}
    assert asked == ["data"]
    assert api.states == {"a": "running"}


def test_containers_stopped_with_none_touches_nothing(monkeypatch):
    api = FakeApi({"a": "running"})
    monkeypatch.setattr(containers, "containers_using", lambda *a: pytest.fail("users read for how=none"))
    with containers.containers_stopped(api, "E", "data", "none") as held:
        assert held == []
    assert api.calls == []


def test_containers_stopped_starts_them_again_after_a_failure():
    api = FakeApi({"a": "running"})
    with pytest.raises(DockerError, match="copy failed"), \
            containers.containers_stopped(api, "E", "data", "stop", "the test", users(("a", True))):
        raise DockerError("copy failed")
    assert api.states == {"a": "running"}
    assert not os.path.exists(containers.record_path("E", "data"))
