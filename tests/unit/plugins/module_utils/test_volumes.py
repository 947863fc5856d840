"""Pure decisions of the volume modules (no Docker needed)."""


import pytest

from ansible_collections.persist.docker.plugins.module_utils import volumes as v
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


def spec(**kw):
    base = dict(name="data", state="present", driver="local", driver_opts=None, labels=None, bind=None, nfs=None,
                tmpfs=None, owner=None, group=None, mode=None, recursive=False, recreate="never", force=False)
    base.update(kw)
    return base


@pytest.mark.parametrize("name", ["ab", "data_1", "a.b-c", "A9"])
def test_valid_names(name):
    assert v.validate_volume_name(name) == name


@pytest.mark.parametrize("name", ["a", "", "-data", "bad/name", "sp ace", None, "über"])
def test_invalid_names(name):
    with pytest.raises(DockerError, match="invalid volume name"):
        v.validate_volume_name(name)


@pytest.mark.parametrize("value,expected", [("0750", 0o750), ("750", 0o750), (488, 0o750), ("1777", 0o1777),
                                            ("0o700", 0o700), (None, None)])
def test_parse_mode(value, expected):
    assert v.parse_mode(value) == expected


@pytest.mark.parametrize("value", ["rwx", "0899", "77777", -1, "u+x"])
def test_parse_mode_rejects(value):
    with pytest.raises(DockerError):
        v.parse_mode(value)


@pytest.mark.parametrize("value,expected", [("1000", 1000), (1000, 1000), ("www-data", "www-data"), (None, None),
                                            ("0", 0)])
def test_parse_id(value, expected):
    assert v.parse_id(value) == expected


@pytest.mark.parametrize("value", ["", "a b", "-1", "x;rm"])
def test_parse_id_rejects(value):
    with pytest.raises(DockerError):
        v.parse_id(value)


def test_bind_shortcut():
    w = v.wanted_volume(spec(bind="/srv/data/"))
    assert w["driver_opts"] == {"type": "none", "o": "bind", "device": "/srv/data"}
    assert w["kind"] == "bind"


def test_bind_relative_path_is_refused():
    with pytest.raises(DockerError, match="not absolute"):
        v.wanted_volume(spec(bind="srv/data"))


def test_nfs_shortcut():
    w = v.wanted_volume(spec(nfs=dict(server="10.0.0.5", path="/exports/a", options="rw,nfsvers=4")))
    assert w["driver_opts"] == {"type": "nfs", "o": "addr=10.0.0.5,rw,nfsvers=4", "device": ":/exports/a"}
    assert w["kind"] == "nfs"


@pytest.mark.parametrize("nfs,match", [(dict(server=None, path="/x"), "needs a server"),
                                       (dict(server="s", path="x"), "absolute exported path")])
def test_nfs_bad(nfs, match):
    with pytest.raises(DockerError, match=match):
        v.wanted_volume(spec(nfs=nfs))


def test_tmpfs_shortcut_with_ownership():
    w = v.wanted_volume(spec(tmpfs=dict(size="64m", mode="0770"), owner="1000", group=1000))
    assert w["driver_opts"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=64m,mode=770,uid=1000,gid=1000"}
    assert w["kind"] == "tmpfs"


def test_tmpfs_mode_from_top_level():
    w = v.wanted_volume(spec(tmpfs=dict(size=None, mode=None), mode="1777"))
    assert w["driver_opts"]["o"] == "mode=1777"


@pytest.mark.parametrize("kw,match", [
    (dict(tmpfs=dict(size="lots")), "not a size"),
    (dict(tmpfs=dict(size="1m"), owner="www-data"), "numeric owner"),
    (dict(tmpfs=dict(mode="0700"), mode="0700"), "once"),
    (dict(tmpfs=dict(size="1m"), bind="/x"), "alternatives"),
    (dict(bind="/x", driver_opts={"type": "none"}), "not both"),
    (dict(bind="/x", driver="rexray"), "shortcut for the local driver"),
    (dict(recreate="sometimes"), "recreate must be"),
    (dict(tmpfs=dict(size="1m"), recursive=True), "recursive"),
])
def test_bad_combinations(kw, match):
    with pytest.raises(DockerError, match=match):
        v.wanted_volume(spec(**kw))


def test_driver_opts_are_strings():
    w = v.wanted_volume(spec(driver_opts={"type": "tmpfs", "device": "tmpfs", "o": 1}))
    assert w["driver_opts"]["o"] == "1"
    assert w["kind"] == "tmpfs"


@pytest.mark.parametrize("attrs,kind,risk", [
    ({"Driver": "local", "Options": None}, "plain", True),
    ({"Driver": "local", "Options": {}}, "plain", True),
    ({"Driver": "local", "Options": {"type": "none", "o": "bind", "device": "/x"}}, "bind", False),
    ({"Driver": "local", "Options": {"type": "nfs4", "o": "addr=a", "device": ":/x"}}, "nfs", False),
    ({"Driver": "local", "Options": {"type": "tmpfs", "device": "tmpfs"}}, "tmpfs", False),
    ({"Driver": "local", "Options": {"type": "ext4", "device": "/dev/sdb1"}}, "device", False),
    ({"Driver": "rexray", "Options": {}}, "other", True),
])
def test_kind_and_risk(attrs, kind, risk):
    assert v.volume_kind(attrs) == kind
    assert v.data_at_risk(attrs) is risk


def test_require_lasting_refuses_only_tmpfs():
    with pytest.raises(DockerError, match="volume 'scratch' is a tmpfs volume: .* so the restored data would be lost"):
        v.require_lasting("scratch", {"Driver": "local", "Options": {"type": "tmpfs", "device": "tmpfs"}},
                          "the restored data")
    for attrs in ({"Driver": "local", "Options": None}, {"Driver": "rexray", "Options": {"type": "tmpfs"}},
                  {"Driver": "local", "Options": {"type": "none", "o": "bind", "device": "/x"}}):
        v.require_lasting("data", attrs, "the restored data")


def current(driver="local", options=None, labels=None):
    return {"Name": "data", "Driver": driver, "Options": options, "Labels": labels}


def test_plan_create_and_none():
    w = v.wanted_volume(spec(labels={"app": "web"}))
    assert v.plan_volume(None, w) == ("create", [])
    assert v.plan_volume(current(labels={"app": "web", "extra": "1"}), w) == ("none", [])


def test_plan_absent():
    w = v.wanted_volume(spec(state="absent"))
    assert v.plan_volume(None, w) == ("none", [])
    assert v.plan_volume(current(), w) == ("remove", [])


def test_label_drift_is_kept_without_recreate():
    w = v.wanted_volume(spec(labels={"app": "web", "tier": "db"}))
    action, drift = v.plan_volume(current(labels={"app": "api", "tier": "db"}), w)
    assert action == "keep-drift"
    assert drift == [dict(field="labels", before={"app": "api"}, after={"app": "web"})]


def test_options_drift_recreates_under_policy():
    w = v.wanted_volume(spec(bind="/srv/b", recreate="options-changed"))
    action, drift = v.plan_volume(current(options={"type": "none", "o": "bind", "device": "/srv/a"}), w)
    assert action == "recreate"
    assert drift[0]["field"] == "driver_opts"
    assert drift[0]["after"]["device"] == "/srv/b"


def test_unmanaged_options_are_not_drift():
    w = v.wanted_volume(spec())
    assert v.plan_volume(current(options={"type": "tmpfs", "device": "tmpfs"}), w) == ("none", [])


def test_driver_drift_and_always():
    w = v.wanted_volume(spec(driver="other"))
    assert v.plan_volume(current(), w)[1][0] == dict(field="driver", before="local", after="other")
    w = v.wanted_volume(spec(recreate="always"))
    assert v.plan_volume(current(), w) == ("recreate", [])


USERS = [dict(name="web", id="1", running=True, state="running"),
         dict(name="old", id="2", running=False, state="exited")]


def test_refusal_names_the_containers_even_with_force():
    msg = v.removal_refusal("data", "remove", USERS, None, True)
    assert "web (running)" in msg and "old (exited)" in msg and "remove them first" in msg


def test_refusal_says_how_much_data():
    msg = v.removal_refusal("data", "recreate", [], dict(size=3 * 1024 * 1024, files=2, entries=3), False)
    assert "3.0 MiB in 2 files (3 entries)" in msg and "force: true" in msg


def test_no_refusal():
    assert v.removal_refusal("data", "remove", [], dict(size=10, files=1, entries=1), True) is None
    assert v.removal_refusal("data", "remove", [], dict(size=0, files=0, entries=0), False) is None
    assert v.removal_refusal("data", "remove", [], None, False) is None


def test_ownership_counts():
    entries = [("/r", 0, 0, 0o755), ("/r/a", 1000, 0), ("/r/b", 1000, 1000)]
    assert v.ownership_counts(entries, 1000, 1000, 0o750) == (2, True)
    assert v.ownership_counts(entries, 1000, None, 0o755) == (1, False)
    assert v.ownership_counts(entries, None, None, None) == (0, False)


def test_host_ids_and_view():
    m = [(0, 100000, 65536)]
    assert v.host_ids(1000, 33, m, m) == (101000, 100033)
    assert v.host_ids(1000, None, None, None) == (1000, None)
    with pytest.raises(DockerError, match="cannot map"):
        v.host_ids(70000, None, m, m)
    assert v.container_view(101000, m) == 1000
    assert v.container_view(0, m) is None
    assert v.container_view(5, None) == 5
