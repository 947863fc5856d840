"""The pure decisions of engine_config: daemon.json, log options, subordinate ids, data-root moves."""

import pytest

from ansible_collections.persist.docker.plugins.module_utils.engine import (
    MOVE_MARKER,
    changed_config_keys,
    check_log_config,
    effective_data_root,
    merge_config,
    parse_config,
    parse_userns_remap,
    plan_data_root,
    plan_subids,
    render_config,
    validate_log_opts,
    validate_settings,
)
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


@pytest.mark.parametrize("text", ["", "  \n"])
def test_empty_file_is_an_empty_config(text):
    assert parse_config(text, "/etc/docker/daemon.json") == {}


@pytest.mark.parametrize(("text", "fragment"), [
    ("{", "is not valid JSON"),
    ("[1, 2]", "holds a JSON list, not an object"),
])
def test_bad_file_is_named(text, fragment):
    with pytest.raises(DockerError, match=fragment) as err:
        parse_config(text, "/etc/docker/daemon.json")
    assert "/etc/docker/daemon.json" in str(err.value)


def test_merge_keeps_unmanaged_keys_in_place_and_appends_new_ones():
    current = {"debug": True, "live-restore": False, "max-concurrent-downloads": 4}
    merged, changed = merge_config(current, {"live-restore": True, "data-root": "/srv/docker"}, ["debug"])
    assert list(merged) == ["live-restore", "max-concurrent-downloads", "data-root"]
    assert merged["max-concurrent-downloads"] == 4
    assert changed == ["data-root", "debug", "live-restore"]


def test_merge_of_the_same_values_changes_nothing():
    current = {"live-restore": True, "log-opts": {"max-size": "10m"}}
    merged, changed = merge_config(current, {"live-restore": True, "log-opts": {"max-size": "10m"}}, ["absent-key"])
    assert merged == current
    assert changed == []


def test_a_key_both_set_and_removed_is_refused():
    with pytest.raises(DockerError, match="both in settings and in remove"):
        merge_config({}, {"debug": True}, ["debug"])


def test_changed_config_keys():
    assert changed_config_keys({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == ["b", "c"]
    assert changed_config_keys({"a": 1}, {}) == ["a"]


def test_render_is_stable_json_with_a_final_newline():
    text = render_config({"b": 1, "a": [1]})
    assert text == '{\n  "b": 1,\n  "a": [\n    1\n  ]\n}\n'
    assert parse_config(text, "x") == {"b": 1, "a": [1]}


@pytest.mark.parametrize(("settings", "fragment"), [
    ({"live-restore": "yes"}, "'live-restore' must be a boolean"),
    ({"max-concurrent-downloads": True}, "must be an integer"),
    ({"data-root": "relative/docker"}, "must be an absolute path"),
    ({"insecure-registries": "registry:5000"}, "must be a list"),
    ({"insecure-registries": [""]}, "list of non-empty strings"),
    ({"registry-mirrors": ["registry:5000"]}, "is not a URL"),
    ({"userns-remap": "Bad User"}, "is not a user name"),
    ({"log-opts": ["max-size=10m"]}, "must be a dictionary"),
])
def test_bad_settings_are_named(settings, fragment):
    with pytest.raises(DockerError, match=fragment):
        validate_settings(settings)


def test_settings_are_normalized_and_unknown_keys_warned():
    result, warnings = validate_settings({"data-root": "/srv/docker/", "my-new-key": 1, "debug": False})
    assert result == {"data-root": "/srv/docker", "my-new-key": 1, "debug": False}
    assert len(warnings) == 1 and "'my-new-key'" in warnings[0]


def test_log_opts_become_strings():
    assert validate_log_opts("json-file", {"max-size": "10m", "max-file": 3, "compress": True}) == {
        "max-size": "10m", "max-file": "3", "compress": "true"}


@pytest.mark.parametrize(("driver", "opts", "fragment"), [
    ("json-file", {"max-fiel": "3"}, "log-opts 'max-fiel' not supported by log driver 'json-file'"),
    ("local", {"labels": "a"}, "'labels' not supported by log driver 'local'"),
    ("none", {"max-size": "1m"}, "it accepts mode, max-buffer-size"),
    ("json-file", {"max-size": "ten"}, "max-size 'ten' is not a size"),
    ("json-file", {"max-size": "10m", "max-file": "0"}, "at least 1"),
    ("json-file", {"max-file": "3"}, "max-file needs max-size"),
    ("json-file", {"compress": "maybe"}, "must be true or false"),
    ("syslog", {"mode": "fast"}, "blocking or non-blocking"),
    ("json-file", {"max-size": ["10m"]}, "must be a string or a number"),
])
def test_bad_log_opts_are_named(driver, opts, fragment):
    with pytest.raises(DockerError, match=fragment):
        validate_log_opts(driver, opts)


@pytest.mark.parametrize(("driver", "opts"), [
    ("json-file", {"max-size": "10m", "max-file": "3", "mode": "non-blocking", "max-buffer-size": "4m"}),
    ("local", {"max-size": "-1"}),
    ("syslog", {"syslog-address": "udp://1.2.3.4:514", "tag": "{{.Name}}"}),
    ("grafana/loki-docker-driver:latest", {"loki-url": "http://loki:3100"}),
])
def test_good_log_opts_pass(driver, opts):
    assert validate_log_opts(driver, opts) == opts


def test_log_opts_are_checked_against_the_merged_driver():
    config = {"log-driver": "local", "log-opts": {"max-size": "10m"}}
    assert check_log_config(config) == config
    with pytest.raises(DockerError, match="'tag' not supported by log driver 'local'"):
        check_log_config({"log-driver": "local", "log-opts": {"tag": "x"}})
    assert check_log_config({"log-opts": {"tag": "x"}}) == {"log-opts": {"tag": "x"}}
    assert check_log_config({"debug": True}) == {"debug": True}


@pytest.mark.parametrize(("value", "expected"), [
    ("default", ("dockremap", "dockremap")),
    ("remap", ("remap", "remap")),
    ("remap:remapgroup", ("remap", "remapgroup")),
])
def test_userns_remap_names(value, expected):
    assert parse_userns_remap(value) == expected


def test_a_new_subid_range_is_appended():
    assert plan_subids("dockremap:100000:65536", "app", 200000, 65536, "/etc/subuid") == (
        "dockremap:100000:65536\napp:200000:65536\n")
    assert plan_subids("", "app", 200000, 10, "/etc/subuid") == "app:200000:10\n"


def test_an_existing_range_is_kept():
    assert plan_subids("# c\napp:300000:1000\n", "app", 200000, 65536, "/etc/subuid") is None


@pytest.mark.parametrize(("text", "start", "fragment"), [
    ("dockremap:100000:65536\n", 150000, "overlaps dockremap's range 100000-165535"),
    ("dockremap:100000:65536\n", 60000, "overlaps dockremap's range"),
    ("broken line\n", 200000, "line 1 'broken line' is not name:start:count"),
    ("", 0, "starts at 0"),
])
def test_bad_subid_ranges_are_refused(text, start, fragment):
    with pytest.raises(DockerError, match=fragment):
        plan_subids(text, "app", start, 65536, "/etc/subuid")


@pytest.mark.parametrize(("info", "expected"), [
    ({"DockerRootDir": "/var/lib/docker"}, "/var/lib/docker"),
    ({"DockerRootDir": "/srv/docker/100000.100000", "SecurityOptions": ["name=seccomp", "name=userns"]},
     "/srv/docker"),
    ({"DockerRootDir": "/srv/100000.100000", "SecurityOptions": []}, "/srv/100000.100000"),
    ({}, "/var/lib/docker"),
])
def test_effective_data_root(info, expected):
    assert effective_data_root(info) == expected


def test_data_root_plans():
    assert plan_data_root("/var/lib/docker", None, "missing", [])["move"] is False
    assert plan_data_root("/srv/docker", "/srv/docker", "dir", ["image"])["move"] is False
    assert plan_data_root("/var/lib/docker", "/srv/docker", "missing", [])["move"] is True
    assert plan_data_root("/var/lib/docker", "/srv/docker", "dir", [])["move"] is True
    assert plan_data_root("/var/lib/docker", "/srv/docker", "dir", [MOVE_MARKER, "image"])["move"] is True


def test_without_a_source_there_is_nothing_to_move_and_a_filled_target_is_used():
    plan = plan_data_root("/var/lib/docker", "/srv/docker", "dir", ["image", "volumes"], source_exists=False)
    assert plan == dict(current="/var/lib/docker", wanted="/srv/docker", move=False)
    with pytest.raises(DockerError, match="exists and is not a directory"):
        plan_data_root("/var/lib/docker", "/srv/docker", "other", [], source_exists=False)


@pytest.mark.parametrize(("current", "wanted", "kind", "entries", "fragment"), [
    ("/var/lib/docker", "/srv/file", "other", [], "exists and is not a directory"),
    ("/var/lib/docker", "/srv/docker", "dir", ["precious"], "is not empty \\(precious\\); refusing"),
    ("/var/lib/docker", "/var/lib/docker/new", "missing", [], "inside one another"),
    ("/srv/docker/old", "/srv/docker", "dir", [], "inside one another"),
])
def test_unsafe_data_root_targets_are_refused(current, wanted, kind, entries, fragment):
    with pytest.raises(DockerError, match=fragment):
        plan_data_root(current, wanted, kind, entries)


def test_a_data_root_below_a_file_is_refused():
    with pytest.raises(DockerError, match="data-root /srv/f/docker cannot be created: /srv/f is not a directory"):
        plan_data_root("/var/lib/docker", "/srv/f/docker", "missing", [], "/srv/f")
