# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which storage the registry mounts (adopting a hand-started registry's volume) and when purge may delete it."""

import pytest

from ansible_collections.persist.docker.plugins.module_utils import registry_storage as rs
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.registry_config import describe_state

ANON = "a" * 64


def params(**kwargs):
    base = dict(name="registry", storage="filesystem", storage_path=None, storage_volume=None)
    base.update(kwargs)
    return base


def container(mount=None, labels=None):
    mounts = []
    if mount:
        kind, _sep, source = mount.partition(":")
        entry = dict(Type=kind, Destination="/var/lib/registry")
        entry.update(Source=source) if kind == "bind" else entry.update(Name=source, Source="/x/" + source)
        mounts.append(entry)
    return dict(Id="c1", Mounts=mounts, Config=dict(Labels=labels or {}), HostConfig={}, State={})


def test_hand_started_registry_anonymous_volume_is_adopted():
    # docker run -d -p 5000:5000 --name registry registry:2 keeps its images in an anonymous volume
    plan = rs.plan_storage(params(), container("volume:" + ANON))
    assert plan["mounts"] == {"/var/lib/registry": "volume:" + ANON}
    assert plan["anonymous"] == ANON and plan["adopted"] == "volume:" + ANON
    assert ANON in plan["warnings"][0] and "storage_volume" in plan["warnings"][0]


def test_adopted_anonymous_volume_is_compared_as_storage():
    state = describe_state(container("volume:" + ANON), keep_anonymous=True)
    assert state["mounts"] == rs.plan_storage(params(), container("volume:" + ANON))["mounts"]
    assert describe_state(container("volume:" + ANON))["mounts"] == {}


@pytest.mark.parametrize("mount", ["bind:/srv/images", "volume:images"])
def test_existing_storage_is_kept_when_the_options_name_none(mount):
    plan = rs.plan_storage(params(), container(mount))
    assert plan["mounts"] == {"/var/lib/registry": mount} and plan["adopted"] == mount and not plan["warnings"]


def test_default_volume_when_nothing_exists():
    plan = rs.plan_storage(params(), None)
    assert plan["mounts"] == {"/var/lib/registry": "volume:registry-data"} and plan["adopted"] is None
    assert rs.plan_storage(params(storage_path="/srv/reg/"), None)["mounts"] == {"/var/lib/registry": "bind:/srv/reg"}
    assert rs.plan_storage(params(storage_volume="images"), None)["mounts"] == {"/var/lib/registry": "volume:images"}


def test_own_default_volume_is_not_an_adoption():
    plan = rs.plan_storage(params(), container("volume:registry-data", {rs.STORAGE_LABEL: "volume:registry-data"}))
    assert plan["adopted"] is None


def test_remote_backend_container_volume_is_not_adopted():
    # a registry deployed with s3 has only the image's empty anonymous volume there
    plan = rs.plan_storage(params(), container("volume:" + ANON, {rs.STORAGE_LABEL: "s3"}))
    assert plan["mounts"] == {"/var/lib/registry": "volume:registry-data"} and plan["anonymous"] is None


@pytest.mark.parametrize("options", [dict(storage_volume="fresh"), dict(storage_path="/srv/registry")])
def test_other_storage_than_the_anonymous_volume_is_refused(options):
    with pytest.raises(DockerError, match="anonymous volume %s" % ANON) as caught:
        rs.plan_storage(params(**options), container("volume:" + ANON))
    assert "storage_volume: %s" % ANON in str(caught.value)
    assert rs.plan_storage(params(**options), container("volume:" + ANON), strict=False)["anonymous"] is None


def test_naming_the_anonymous_volume_keeps_it():
    plan = rs.plan_storage(params(storage_volume=ANON), container("volume:" + ANON))
    assert plan["mounts"] == {"/var/lib/registry": "volume:" + ANON}


def test_storage_outside_the_host_has_no_mount():
    assert rs.plan_storage(params(storage="s3"), container("volume:" + ANON, {rs.STORAGE_LABEL: "s3"}))["mounts"] == {}
    assert rs.plan_storage(params(storage="inmemory"), None)["mounts"] == {}


def test_hand_started_registry_moved_to_remote_storage_is_refused():
    with pytest.raises(DockerError, match="anonymous volume %s, and storage s3 would start it" % ANON):
        rs.plan_storage(params(storage="s3"), container("volume:" + ANON))


@pytest.mark.parametrize("path,top,expected", [
    ("/srv/reg", "/srv/reg", True), ("/srv/reg/a", "/srv/reg", True), ("/srv/registry", "/srv/reg", False),
    ("/srv", "/srv/reg", False), ("/x", "/", True),
])
def test_is_below(path, top, expected):
    assert rs.is_below(path, top) is expected


def purge(target, **kwargs):
    kwargs.setdefault("local", True)
    kwargs.setdefault("docker_host", "unix:///var/run/docker.sock")
    kwargs.setdefault("created", None)
    return rs.plan_purge("registry", target, **kwargs)


def test_purge_of_the_directory_the_module_created():
    assert purge("bind:/srv/reg", created="/srv/reg") == "deleted storage directory /srv/reg"
    assert purge("bind:/srv/reg/images", created="/srv/reg") == "deleted storage directory /srv/reg/images"


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(created=None), "this module did not create it"),
    (dict(created="/srv/other"), "this module did not create it"),
    (dict(created="/srv/reg", local=False, docker_host="tcp://192.0.2.1:2376"),
     "the engine at tcp://192.0.2.1:2376 is another machine"),
    (dict(created="/srv/reg", users=["web"]), "container web mounts it too"),
    (dict(created="/srv/reg", resolved="/var/lib"), "leads through a symbolic link to /var/lib"),
])
def test_purge_refusals(kwargs, fragment):
    with pytest.raises(DockerError, match=fragment) as caught:
        purge("bind:/srv/reg", **kwargs)
    assert "registry 'registry'" in str(caught.value) and "/srv/reg" in str(caught.value)


@pytest.mark.parametrize("path", ["/var/lib", "/var/lib/", "/srv", "/"])
def test_purge_refuses_system_directories_even_when_recorded(path):
    # wave 1 deleted /var/lib when asked to; a recorded directory must still be the one the module created
    with pytest.raises(DockerError, match="refusing to purge"):
        purge("bind:" + path.rstrip("/"), created="/srv/reg")
    with pytest.raises(DockerError, match="refusing to purge"):
        purge("bind:" + (path.rstrip("/") or "/"), created=path)


def test_purge_of_volumes():
    assert purge("volume:registry-data", volume_labels={rs.STORAGE_LABEL: "registry"}) == "deleted volume registry-data"
    with pytest.raises(DockerError, match="did not create it for this registry"):
        purge("volume:" + ANON, volume_labels={})
    with pytest.raises(DockerError, match="containers a, b mount it too"):
        purge("volume:registry-data", volume_labels={rs.STORAGE_LABEL: "registry"}, users=["a", "b"])
    assert purge(None) is None


@pytest.mark.parametrize("created_now,previous,expected", [
    (True, None, "/srv/reg"),
    (False, container("bind:/srv/reg", {rs.CREATED_LABEL: "/srv/reg"}), "/srv/reg"),
    (False, container("bind:/srv/reg", {rs.CREATED_LABEL: "/srv/other"}), None),
    (False, None, None),
])
def test_created_path_is_carried_forward(created_now, previous, expected):
    assert rs.created_path(params(storage_path="/srv/reg/"), previous, created_now) == expected
