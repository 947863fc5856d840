"""container_commit rejects bad input before it talks to any daemon."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.persist.docker.plugins.modules import container_commit

NO_DAEMON = "unix:///nonexistent/docker.sock"


def run_module(capsys, **args):
    args.setdefault("docker_host", NO_DAEMON)
    with patch_module_args(args), pytest.raises(SystemExit):
        container_commit.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (dict(repository="Bad Name"), "invalid repository name 'Bad Name'"),
        (dict(repository="app", tag="-x"), "invalid tag '-x'"),
        (dict(repository="app", changes=["RUN rm -rf /"]),
         "'RUN rm -rf /' is not an instruction docker commit accepts"),
    ],
)
def test_bad_input_fails_before_connecting(capsys, args, fragment):
    result = run_module(capsys, container="web", **args)
    assert result["failed"] is True
    assert fragment in result["msg"]
    assert "cannot reach" not in result["msg"]
    assert "exception" not in result


def test_unreachable_daemon_is_one_clear_line(capsys):
    result = run_module(capsys, container="web", repository="app")
    assert result["failed"] is True
    assert result["msg"].startswith("cannot reach the Docker daemon at %s" % NO_DAEMON)
    assert "\n" not in result["msg"]


def test_missing_docker_sdk_is_named(capsys, monkeypatch):
    from ansible_collections.persist.docker.plugins.module_utils import client

    monkeypatch.setattr(client, "HAS_DOCKER", False)
    result = run_module(capsys, container="web", repository="app")
    assert result["failed"] is True
    assert "docker (the Docker SDK for Python, >= 7)" in result["msg"]
    assert "pip install 'docker>=7'" in result["msg"]
