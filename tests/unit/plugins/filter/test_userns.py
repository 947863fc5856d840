"""The userns filters (pure)."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.persist.docker.plugins.filter import userns

SUBUID = "dockremap:165536:65536\ndockremap:100000:65536\nother:300000:100\n"


def test_filters_are_registered():
    assert set(userns.FilterModule().filters()) == {"userns_host_id", "userns_container_id", "subid_ranges"}


@pytest.mark.parametrize("value,subid,user,expected", [
    (1000, SUBUID, "dockremap", 101000),
    ("0", SUBUID, "dockremap", 100000),
    (70000, SUBUID, "dockremap", 165536 + 70000 - 65536),
    (5, SUBUID, "other", 300005),
    (33, [{"start": 100000, "count": 65536}], "dockremap", 100033),
    (33, [[0, 200000, 65536]], "dockremap", 200033),
    (33, None, "dockremap", 33),
])
def test_host_id(value, subid, user, expected):
    assert userns.userns_host_id(value, subid, user) == expected


def test_round_trip():
    for cid in (0, 1, 1000, 65535, 65536, 131071):
        assert userns.userns_container_id(userns.userns_host_id(cid, SUBUID), SUBUID) == cid


@pytest.mark.parametrize("args,match", [
    ((131072, SUBUID), "outside"),
    ((1000, SUBUID, "nobody"), "has no range"),
    (("abc", SUBUID), "not a numeric id"),
    ((1, "dockremap:y:z"), "non-numeric"),
    ((1, [{"bad": 1}]), "cannot read"),
])
def test_errors(args, match):
    with pytest.raises(AnsibleFilterError, match=match):
        userns.userns_host_id(*args)


def test_container_id_outside():
    with pytest.raises(AnsibleFilterError, match="nobody"):
        userns.userns_container_id(1000, SUBUID)


def test_subid_ranges():
    assert userns.subid_ranges(SUBUID) == [{"start": 100000, "count": 65536}, {"start": 165536, "count": 65536}]
    assert userns.subid_ranges(SUBUID, "other") == [{"start": 300000, "count": 100}]
