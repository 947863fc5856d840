"""volume, volume_info, data_ownership, volume_relocate and volume_backup reject bad input before any daemon."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.persist.docker.plugins.modules import (
    data_ownership,
    volume,
    volume_backup,
    volume_info,
    volume_relocate,
)

NO_DAEMON = "unix:///nonexistent/docker.sock"


def run_module(capsys, module, **args):
    args.setdefault("docker_host", NO_DAEMON)
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("args", "fragment"), [
    (dict(name="-bad"), "invalid volume name '-bad'"),
    (dict(name="data", bind="relative/path"), "bind path 'relative/path' is not absolute"),
    (dict(name="data", nfs=dict(server="", path="/x")), "nfs needs a server"),
    (dict(name="data", nfs=dict(path="/x")), "missing required arguments: server"),
    (dict(name="data", tmpfs=dict(size="huge")), "is not a size"),
    (dict(name="data", mode="rwx"), "is not an octal mode"),
    (dict(name="data", owner="no-such-user-anywhere"), "is not a user on the managed host"),
    (dict(name="data", bind="/srv/x", driver="nfsplugin"), "shortcut for the local driver"),
    (dict(volumes=[dict(name="aa"), dict(name="aa")]), "aa listed more than once"),
    (dict(volumes=[dict(name="aa"), dict(name="b c")]), "invalid volume name 'b c'"),
    (dict(name="aa", volumes=[dict(name="bb")]), "mutually exclusive"),
    (dict(), "one of the following is required: name, volumes"),
])
def test_volume_bad_input(capsys, args, fragment):
    result = run_module(capsys, volume, **args)
    assert result["failed"] is True
    assert fragment in result["msg"]
    assert "cannot reach" not in result["msg"]


def test_volume_unreachable_daemon(capsys):
    result = run_module(capsys, volume, name="data")
    assert result["failed"] is True
    assert result["msg"].startswith("cannot reach the Docker daemon at %s" % NO_DAEMON)


def test_volume_info_bad_name(capsys):
    result = run_module(capsys, volume_info, name="bad/name")
    assert result["failed"] is True and "invalid volume name" in result["msg"]


@pytest.mark.parametrize(("args", "fragment"), [
    (dict(path="relative", owner="1"), "path 'relative' is not absolute"),
    (dict(volume="x/y", owner="1"), "invalid volume name"),
    (dict(path="/srv", owner="1", mode="9"), "is not an octal mode"),
    (dict(path="/srv", owner="a b"), "neither a numeric id nor a valid user"),
    (dict(path="/srv", volume="data", owner="1"), "mutually exclusive"),
    (dict(path="/srv"), "one of the following is required: owner, group, as_user_of_image, mode"),
    (dict(path="/srv", owner="1", as_user_of_image="busybox"), "mutually exclusive"),
])
def test_data_ownership_bad_input(capsys, args, fragment):
    result = run_module(capsys, data_ownership, **args)
    assert result["failed"] is True
    assert fragment in result["msg"]
    assert "cannot reach" not in result["msg"]


def test_relocate_refuses_an_unchecked_move_before_anything(capsys):
    result = run_module(capsys, volume_relocate, source=dict(name="aa"), destination=dict(name="bb"),
                        mode="move", verify="none")
    assert result["failed"] is True
    assert "verify: none" in result["msg"] and "nothing was done" in result["msg"]
    assert "cannot reach" not in result["msg"]


@pytest.mark.parametrize(("args", "fragment"), [
    (dict(quiesce="stop", stop_containers=True), "mutually exclusive"),
    (dict(quiesce="freeze"), "value of quiesce must be one of"),
    (dict(lock_timeout="soon"), "lock_timeout"),
])
def test_backup_bad_input(capsys, args, fragment):
    result = run_module(capsys, volume_backup, volume="aa", path="/tmp/x.tar", **args)
    assert result["failed"] is True and fragment in result["msg"]
