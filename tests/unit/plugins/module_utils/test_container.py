# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

import pytest

from ansible_collections.persist.docker.plugins.module_utils import container as cu
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

IMAGE = dict(Id="sha256:img", Config=dict(Env=["PATH=/bin"], Cmd=["sh"]))


def wanted(**overrides):
    params = dict(name="app", state="started", image="busybox:latest", command=["sleep", "60"],
                  env={"TOKEN": "s3cret"}, volumes=["data:/data", "/etc/app:/etc/app:ro"], network_mode="none",
                  restart_policy=None, restart=False)
    params.update(overrides)
    return cu.wanted_container(params)


def inspect(running=True, **overrides):
    result = dict(
        Id="c1", Name="/app", Image="sha256:img",
        Config=dict(Image="busybox:latest", Cmd=["sleep", "60"], Env=["PATH=/bin", "TOKEN=s3cret"]),
        HostConfig=dict(Binds=["/etc/app:/etc/app:ro", "data:/data:rw"], NetworkMode="none",
                        RestartPolicy=dict(Name="", MaximumRetryCount=0)),
        State=dict(Running=running, Status="running" if running else "exited"),
    )
    for key, value in overrides.items():
        section, _sep, field = key.partition("__")
        if field:
            result[section][field] = value
        else:
            result[section] = value
    return result


@pytest.mark.parametrize("spec, canonical", [
    ("data:/data", "data:/data"),
    ("data:/data:rw", "data:/data"),
    ("data:/data:ro", "data:/data:ro"),
    ("/srv/x:/x:ro", "/srv/x:/x:ro"),
])
def test_parse_volume_canonical(spec, canonical):
    assert cu.parse_volume("app", spec) == canonical


@pytest.mark.parametrize("spec", ["data", "data:relative", "data:/d:rx", "./dir:/d", "a/b:/d", ":/d", "a:/b:ro:x"])
def test_parse_volume_refuses(spec):
    with pytest.raises(DockerError, match="container 'app': volume"):
        cu.parse_volume("app", spec)


def test_parse_command_forms():
    assert cu.parse_command("app", "sh -c 'echo a b'") == ["sh", "-c", "echo a b"]
    assert cu.parse_command("app", ["sleep", 60]) == ["sleep", "60"]
    assert cu.parse_command("app", None) is None
    with pytest.raises(DockerError, match="cannot be split"):
        cu.parse_command("app", "sh -c 'open")
    with pytest.raises(DockerError, match="list of arguments"):
        cu.parse_command("app", {"a": 1})


def test_parse_env_turns_scalars_into_strings_and_refuses_bad_names():
    assert cu.parse_env("app", {"A": 1, "B": True, "C": "x"}) == {"A": "1", "B": "true", "C": "x"}
    for bad in ({"": "x"}, {"A=B": "x"}, {"A": ["x"]}, {"A": "a\x00b"}):
        with pytest.raises(DockerError, match="container 'app'"):
            cu.parse_env("app", bad)


def test_env_message_never_holds_the_value():
    with pytest.raises(DockerError) as err:
        cu.parse_env("app", {"TOKEN": "top\x00secret"})
    assert "secret" not in str(err.value)


def test_current_container_normalises_binds_and_policy():
    current = cu.current_container(inspect())
    assert current["volumes"] == ["/etc/app:/etc/app:ro", "data:/data"]
    assert current["restart_policy"] == "no"
    assert current["env"] == {"PATH": "/bin", "TOKEN": "s3cret"}
    assert cu.current_container(None) is None


@pytest.mark.parametrize("state, expected", [
    ("started", ["create", "start"]),
    ("present", ["create"]),
    ("stopped", ["create"]),
    ("absent", []),
])
def test_plan_missing_container(state, expected):
    assert cu.plan_container(None, wanted(state=state), IMAGE) == (expected, [])


@pytest.mark.parametrize("state, running, restart, expected", [
    ("started", True, False, []),
    ("started", False, False, ["start"]),
    ("started", True, True, ["restart"]),
    ("started", False, True, ["start"]),
    ("stopped", True, False, ["stop"]),
    ("stopped", False, False, []),
    ("present", True, False, []),
    ("present", False, False, []),
    ("absent", True, False, ["remove"]),
])
def test_plan_matching_container(state, running, restart, expected):
    current = cu.current_container(inspect(running=running))
    assert cu.plan_container(current, wanted(state=state, restart=restart), IMAGE) == (expected, [])


@pytest.mark.parametrize("change, field", [
    (dict(Image="sha256:other"), "image"),
    (dict(Config__Cmd=["sleep", "61"]), "command"),
    (dict(Config__Env=["PATH=/bin", "TOKEN=other"]), "env"),
    (dict(Config__Env=["PATH=/bin", "TOKEN=s3cret", "EXTRA=1"]), "env"),
    (dict(HostConfig__Binds=["data:/data"]), "volumes"),
    (dict(HostConfig__NetworkMode="bridge"), "network_mode"),
])
def test_plan_recreates_on_each_difference(change, field):
    current = cu.current_container(inspect(**change))
    actions, diff = cu.plan_container(current, wanted(), IMAGE)
    assert diff == [field]
    assert actions == ["remove", "create", "start"]


def test_restart_policy_compared_only_when_given():
    current = cu.current_container(inspect(HostConfig__RestartPolicy=dict(Name="always")))
    assert cu.plan_container(current, wanted(), IMAGE) == ([], [])
    assert cu.plan_container(current, wanted(restart_policy="no"), IMAGE)[1] == ["restart_policy"]


def test_network_mode_not_compared_when_not_given():
    current = cu.current_container(inspect(HostConfig__NetworkMode="default"))
    assert cu.plan_container(current, wanted(network_mode=None), IMAGE) == ([], [])


def test_image_command_and_env_fill_in_what_is_not_given():
    current = cu.current_container(inspect(Config__Cmd=["sh"], Config__Env=["PATH=/bin"], HostConfig__Binds=None))
    assert cu.plan_container(current, wanted(command=None, env=None, volumes=None), IMAGE) == ([], [])


@pytest.mark.parametrize("state, running, expected", [
    ("present", True, ["remove", "create", "start"]),
    ("present", False, ["remove", "create"]),
    ("stopped", True, ["remove", "create"]),
])
def test_recreate_keeps_running_only_where_wanted(state, running, expected):
    current = cu.current_container(inspect(running=running, Image="sha256:old"))
    assert cu.plan_container(current, wanted(state=state), IMAGE)[0] == expected


def test_predicted_state_matches_a_created_container():
    w = wanted()
    after = cu.predicted(None, w, IMAGE, ["create", "start"])
    real = cu.current_container(inspect())
    assert cu.describe(after, w) == cu.describe(real, w)
    assert cu.predicted(cu.current_container(inspect()), w, IMAGE, ["remove"]) is None
    assert cu.predicted(real, w, IMAGE, ["stop"])["running"] is False


def test_describe_hides_env_values_and_unmanaged_fields():
    view = cu.describe(cu.current_container(inspect()), wanted(network_mode=None))
    assert view["env"] == ["PATH", "TOKEN"]
    assert "s3cret" not in repr(view)
    assert "network_mode" not in view and "restart_policy" not in view
    assert cu.describe(None, wanted()) == {"exists": False}


def test_without_image_only_the_running_state_is_managed():
    current = cu.current_container(inspect(running=True, Image="sha256:other", Config__Cmd=["x"]))
    assert cu.plan_container(current, wanted(image=None, state="stopped"), None) == (["stop"], [])
    assert cu.plan_container(current, wanted(image=None, state="started"), None) == ([], [])


def test_without_image_a_missing_container_cannot_be_created():
    with pytest.raises(DockerError, match="container 'app' does not exist, and without image"):
        cu.plan_container(None, wanted(image=None, state="stopped"), None)
    assert cu.plan_container(None, wanted(image=None, state="absent"), None) == ([], [])


def test_view_gives_env_names_only():
    result = cu.view("app", cu.current_container(inspect()))
    assert result["env"] == ["PATH", "TOKEN"] and result["status"] == "running"
    assert "s3cret" not in repr(result)
    assert cu.view("app", None) is None
