"""The manager base builds changed, actions and the diff one way for every module."""

import pytest

from ansible_collections.persist.docker.plugins.module_utils.manager import Manager, diff_of


class FakeModule:
    def __init__(self, check_mode=False, diff_mode=False):
        self.params = dict(name="v")
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.api = "the client"


def test_diff_of_a_state():
    assert diff_of({"a": 1}, {"a": 2}) == {"before": {"a": 1}, "after": {"a": 2}}


def test_diff_of_a_file_names_it():
    assert diff_of("x\n", "y\n", header="/etc/docker/daemon.json") == {
        "before": "x\n", "after": "y\n",
        "before_header": "/etc/docker/daemon.json", "after_header": "/etc/docker/daemon.json"}


def test_manager_exposes_the_module():
    m = Manager(FakeModule(check_mode=True))
    assert (m.params, m.check_mode, m.api, m.actions) == (dict(name="v"), True, "the client", [])


@pytest.mark.parametrize(("acts", "changed"), [([], False), (["created volume v"], True)])
def test_finish_changed_follows_the_actions(acts, changed):
    m = Manager(FakeModule())
    for text in acts:
        m.act(text)
    result = m.finish(dict(volume="v"), {"exists": False}, {"exists": True})
    assert result == dict(volume="v", changed=changed, actions=acts)


def test_finish_changed_can_be_given():
    m = Manager(FakeModule())
    m.act("committed")
    assert m.finish({}, changed=False)["changed"] is False


def test_finish_adds_the_diff_only_in_diff_mode():
    m = Manager(FakeModule(diff_mode=True))
    m.act("created volume v")
    result = m.finish({}, {"exists": False}, {"exists": True})
    assert result["diff"] == {"before": {"exists": False}, "after": {"exists": True}}
    assert "diff" not in Manager(FakeModule()).finish({}, {"exists": False}, {"exists": True})


def test_finish_takes_a_list_of_file_diffs():
    m = Manager(FakeModule(diff_mode=True))
    diffs = [diff_of("", "a\n", header="/f"), diff_of("b\n", "c\n", header="/g")]
    assert m.finish({}, diffs=diffs)["diff"] == diffs
