"""userns-remap id mapping (pure)."""

import pytest

from ansible_collections.persist.docker.plugins.module_utils import idmap

SUBUID = """\
# comment
alice:200000:65536
dockremap:165536:65536
dockremap:100000:65536
1001:300000:10
"""


def test_parse_subid_sorted_and_by_id():
    assert idmap.parse_subid(SUBUID, "dockremap") == [(100000, 65536), (165536, 65536)]
    assert idmap.parse_subid(SUBUID, "bob", user_id=1001) == [(300000, 10)]
    assert idmap.parse_subid(SUBUID, "nobody") == []


@pytest.mark.parametrize("text", ["a:b:c", "a:1", "a:1:0", "a:-5:10"])
def test_parse_subid_rejects(text):
    with pytest.raises(idmap.IdMapError):
        idmap.parse_subid(text, "a")


def test_map_both_ways_across_ranges():
    m = idmap.build_map(idmap.parse_subid(SUBUID, "dockremap"))
    assert m == [(0, 100000, 65536), (65536, 165536, 65536)]
    assert idmap.to_host(0, m) == 100000
    assert idmap.to_host(1000, m) == 101000
    assert idmap.to_host(65536, m) == 165536
    assert idmap.to_container(165537, m) == 65537
    assert idmap.to_container(101000, m) == 1000
    with pytest.raises(idmap.IdMapError, match="outside"):
        idmap.to_host(131072, m)
    with pytest.raises(idmap.IdMapError, match="nobody"):
        idmap.to_container(1000, m)
    assert idmap.to_container_or_none(5, m) is None


def test_identity_without_map():
    assert idmap.to_host(1000, []) == 1000
    assert idmap.to_container("1000", None) == 1000


@pytest.mark.parametrize("value", [
    [(0, 100000, 65536)],
    [{"container_id": 0, "host_id": 100000, "size": 65536}],
    [{"start": 100000, "count": 65536}],
    [(100000, 65536)],
])
def test_normalize_map(value):
    assert idmap.normalize_map(value) == [(0, 100000, 65536)]


def test_root_from_docker_root_dir():
    assert idmap.root_from_docker_root_dir("/var/lib/docker/100000.100000") == (100000, 100000)
    assert idmap.root_from_docker_root_dir("/var/lib/docker") is None


def test_userns_enabled():
    assert idmap.userns_enabled(["name=seccomp,profile=default", "name=userns"])
    assert not idmap.userns_enabled(["name=seccomp,profile=default"])
    assert not idmap.userns_enabled(None)


def test_engine_maps_from_files():
    uid_map, gid_map, note = idmap.engine_maps(["name=userns"], "/d/100000.100000", SUBUID, SUBUID)
    assert uid_map == gid_map == [(0, 100000, 65536), (65536, 165536, 65536)]
    assert "read from" in note


def test_engine_maps_without_files_assumes_one_range():
    uid_map, gid_map, note = idmap.engine_maps(["name=userns"], "/d/231072.231072", None, None)
    assert uid_map == [(0, 231072, 65536)]
    assert "assumed" in note


def test_engine_maps_no_userns():
    assert idmap.engine_maps(["name=seccomp"], "/var/lib/docker", SUBUID, SUBUID)[:2] == (None, None)


def test_engine_maps_bad_root_dir():
    with pytest.raises(idmap.IdMapError, match="DockerRootDir"):
        idmap.engine_maps(["name=userns"], "/var/lib/docker", SUBUID, SUBUID)


def test_find_remap_user_prefers_dockremap():
    assert idmap.find_remap_user(SUBUID + "zed:100000:65536\n", 100000) == "dockremap"
    assert idmap.find_remap_user(SUBUID, 200000) == "alice"
    assert idmap.find_remap_user(SUBUID, 5) is None
