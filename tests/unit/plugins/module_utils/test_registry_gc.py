# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

import re

import pytest

from ansible_collections.persist.docker.plugins.module_utils import registry_gc as gc
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

TAGS = [
    dict(tag="1", digest="d1", created="2024-01-01T00:00:01.5Z"),
    dict(tag="2", digest="d2", created="2024-01-01T00:00:01.45Z"),
    dict(tag="3", digest="d3", created="2024-01-01T00:00:02Z"),
    dict(tag="latest", digest="d3", created="2024-01-01T00:00:02Z"),
    dict(tag="old", digest="d0", created=None),
]


def test_created_key_orders_nanoseconds():
    assert gc.created_key("2024-01-01T00:00:01.5Z") > gc.created_key("2024-01-01T00:00:01.45Z")
    assert gc.created_key("2024-01-01T00:00:02Z") > gc.created_key("2024-01-01T00:00:01.999999999Z")
    assert gc.created_key(None) == ""


def test_no_rule_keeps_everything():
    plan = gc.plan_retention(TAGS, None, None)
    assert plan["delete"] == [] and plan["digests"] == []


def test_keep_newest_of_matching():
    plan = gc.plan_retention(TAGS, 1, re.compile(r"^\d+$"))
    assert plan["delete"] == ["1", "2"]
    assert plan["digests"] == ["d1", "d2"]
    assert plan["keep"] == ["3", "latest", "old"]


def test_shared_manifest_is_kept():
    plan = gc.plan_retention(TAGS, 0, re.compile(r"^3$"))
    assert plan["delete"] == [] and plan["shared"] == ["3"] and plan["digests"] == []


def test_keep_without_pattern_and_undated_is_oldest_when_asked():
    plan = gc.plan_retention(TAGS, 3, None, unknown_age="delete")
    assert plan["delete"] == ["2", "old"]
    assert plan["digests"] == ["d2", "d0"]


def test_pattern_without_keep_deletes_all_matching():
    plan = gc.plan_retention(TAGS, None, re.compile("^old$"), unknown_age="delete")
    assert plan["delete"] == ["old"] and plan["digests"] == ["d0"]


def test_unknown_age_is_kept_by_default():
    plan = gc.plan_retention(TAGS, None, re.compile("^old$"))
    assert plan["delete"] == [] and plan["digests"] == [] and plan["unknown"] == ["old"]
    plan = gc.plan_retention(TAGS, 1, None)
    assert plan["delete"] == ["1", "2"] and "old" in plan["keep"] and plan["unknown"] == ["old"]


# The regression of wave 1: an image index (multi-arch, or with attestations) has no config and so no
# date; it counted as the oldest, and among undated tags "v9" ranked above "v10" as text.
INDEXED = [
    dict(tag="v8", digest="d8", created="2024-01-08T00:00:00Z"),
    dict(tag="v9", digest="d9", created=None),
    dict(tag="v10", digest="d10", created=None),
]


def test_newest_index_tags_are_not_deleted_by_default():
    plan = gc.plan_retention(INDEXED, 1, re.compile("^v"))
    assert plan["delete"] == [] and plan["unknown"] == ["v10", "v9"]
    assert plan["keep"] == ["v10", "v8", "v9"]


def test_undated_tags_go_by_version_order_when_asked():
    plan = gc.plan_retention(INDEXED, 2, re.compile("^v"), unknown_age="delete")
    assert plan["delete"] == ["v9"] and plan["digests"] == ["d9"]


def test_index_is_dated_by_its_newest_child():
    dated = [dict(INDEXED[0]), dict(INDEXED[1], created=gc.newest_created(["2024-01-09T00:00:00Z", None])),
             dict(INDEXED[2], created=gc.newest_created(["2024-01-03T00:00:00Z", "2024-01-10T00:00:00.5Z"]))]
    plan = gc.plan_retention(dated, 2, re.compile("^v"))
    assert plan["delete"] == ["v8"] and plan["keep"] == ["v10", "v9"]
    assert gc.newest_created([None, None]) is None


@pytest.mark.parametrize("names,expected", [
    (["v10", "v9", "v1.10", "v1.9"], ["v1.9", "v1.10", "v9", "v10"]),
    (["10", "9", "latest"], ["9", "10", "latest"]),
])
def test_natural_key(names, expected):
    assert sorted(names, key=gc.natural_key) == expected


def test_still_deletable():
    assert gc.still_deletable("d1", {"1"}, {"1": "d1", "2": "d2"})
    assert not gc.still_deletable("d1", {"1"}, {"1": "d1", "latest": "d1"})
    assert gc.still_deletable("d1", {"1"}, {"2": "d2"})


def test_bad_pattern():
    with pytest.raises(DockerError, match="not a valid regular expression"):
        gc.compile_pattern("([")


def test_predict_freed_blobs():
    deleted = [dict(digest="m1", config_digest="c1",
                    layers=[{"digest": "l1", "size": 1}, {"digest": "shared", "size": 2}])]
    remaining = [dict(digest="m2", config_digest="c2", layers=[{"digest": "shared", "size": 2}])]
    assert gc.predict_freed_blobs(deleted, remaining, ["old"]) == ["c1", "l1", "m1", "old"]


def test_blob_sizes():
    manifests = [dict(config_digest="c", config_size=10, layers=[{"digest": "l", "size": 5}])]
    assert gc.blob_sizes(manifests) == {"c": 10, "l": 5}


def test_parse_gc_output():
    text = ("repo\nrepo: marking manifest sha256:" + "a" * 64 + "\n"
            "blob eligible for deletion: sha256:" + "b" * 64 + "\n"
            "time=... msg=\"Deleting blob: /docker/registry/v2/blobs/sha256/bb/...\"\n"
            "manifest eligible for deletion: sha256:" + "c" * 64 + "\n")
    assert gc.parse_gc_output(text) == (["sha256:" + "b" * 64], ["sha256:" + "c" * 64])


def test_readonly_config_copies():
    config = {"storage": {"filesystem": {}, "maintenance": {"readonly": {"enabled": False}}}}
    ro = gc.readonly_config(config)
    assert ro["storage"]["maintenance"] == {"readonly": {"enabled": True}, "uploadpurging": {"enabled": False}}
    assert config["storage"]["maintenance"]["readonly"]["enabled"] is False


@pytest.mark.parametrize("output, empty", [
    ("failed to garbage collect: failed to mark: filesystem: Path not found: /docker/registry/v2/repositories\n",
     True),
    ("failed to garbage collect: failed to mark: s3aws: Path not found: /docker/registry/v2/repositories", True),
    ("failed to garbage collect: failed to mark: filesystem: Path not found: /data/docker/registry/v2/repositories",
     True),
    ("failed to garbage collect: failed to mark: filesystem: "
     "Path not found: /docker/registry/v2/repositories/a/_layers", False),
    ("failed to garbage collect: failed to mark: filesystem: Path not found: /docker/registry/v2/blobs", False),
    ("configuration error: open /etc/docker/registry/config.yml: no such file or directory", False),
    ("", False),
    (None, False),
])
def test_empty_store(output, empty):
    assert gc.empty_store(output) is empty
