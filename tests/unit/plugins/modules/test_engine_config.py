"""engine_config on files in a temporary directory: merge, check mode, idempotence, bad input."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.persist.docker.plugins.modules import engine_config

NO_DAEMON = "unix:///nonexistent/docker.sock"


def read(path):
    with open(path) as handle:
        return handle.read()


def run_module(capsys, **args):
    args.setdefault("docker_host", NO_DAEMON)
    with patch_module_args(args), pytest.raises(SystemExit):
        engine_config.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def files(tmp_path):
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"debug": true, "data-root": "%s"}\n' % (tmp_path / "old"))
    return dict(path=str(daemon), subuid_path=str(tmp_path / "subuid"), subgid_path=str(tmp_path / "subgid"),
                tmp=tmp_path)


def args_for(files, **settings):
    return dict(path=files["path"], subuid_path=files["subuid_path"], subgid_path=files["subgid_path"],
                settings=settings)


def test_check_mode_predicts_the_run_and_the_second_run_changes_nothing(capsys, files):
    before = read(files["path"])
    args = args_for(files, **{"live-restore": True, "log-opts": {"max-size": "10m", "max-file": 3},
                              "userns-remap": "remapper"})
    checked = run_module(capsys, _ansible_check_mode=True, _ansible_diff=True, **args)
    assert read(files["path"]) == before
    assert not (files["tmp"] / "subuid").exists()
    real = run_module(capsys, **args)
    again = run_module(capsys, **args)
    assert checked["changed"] and real["changed"] and not again["changed"]
    assert checked["changed_keys"] == real["changed_keys"] == ["live-restore", "log-opts", "userns-remap"]
    assert checked["config"] == real["config"]
    assert checked["restart_needed"] and not again["restart_needed"]
    assert checked["diff"][0]["before"] == before
    written = json.loads(read(files["path"]))
    assert written["debug"] is True
    assert written["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert (files["tmp"] / "subuid").read_text() == "remapper:100000:65536\n"
    assert (files["tmp"] / "subgid").read_text() == "remapper:100000:65536\n"
    assert real["engine"] == {"reachable": False}


def test_data_root_move_is_reported_from_the_file_when_no_engine_answers(capsys, files):
    result = run_module(capsys, _ansible_check_mode=True, **args_for(files, **{"data-root": str(files["tmp"] / "new")}))
    assert result["data_root"] == {"current": str(files["tmp"] / "old"), "wanted": str(files["tmp"] / "new"),
                                   "move": False, "source_exists": False}
    (files["tmp"] / "old").mkdir()
    result = run_module(capsys, _ansible_check_mode=True, **args_for(files, **{"data-root": str(files["tmp"] / "new")}))
    assert result["data_root"]["move"] is True and result["data_root"]["source_exists"] is True


@pytest.mark.parametrize(("settings", "fragment"), [
    ({"log-opts": {"max-size": "10m", "max-fiel": "3"}}, "log-opts 'max-fiel' not supported by log driver 'json-file'"),
    ({"data-root": "FILE"}, "exists and is not a directory"),
    ({"live-restore": "on"}, "'live-restore' must be a boolean"),
    ({"data-root": "FILE/below"}, "cannot be created"),
])
def test_bad_input_fails_and_changes_nothing(capsys, files, settings, fragment):
    if settings.get("data-root", "").startswith("FILE"):
        settings = {"data-root": settings["data-root"].replace("FILE", files["path"])}
    before = read(files["path"])
    result = run_module(capsys, **args_for(files, **settings))
    assert result["failed"] is True
    assert fragment in result["msg"]
    assert "\n" not in result["msg"]
    assert read(files["path"]) == before


def test_invalid_json_is_named_and_left_alone(capsys, files):
    with open(files["path"], "w") as handle:
        handle.write("{broken")
    result = run_module(capsys, **args_for(files, debug=False))
    assert result["failed"] is True
    assert "%s is not valid JSON" % files["path"] in result["msg"]
    assert read(files["path"]) == "{broken"


def test_no_settings_changes_nothing_even_without_a_file(capsys, tmp_path):
    path = tmp_path / "missing" / "daemon.json"
    result = run_module(capsys, path=str(path))
    assert result["changed"] is False
    assert not path.exists()


def test_backup_keeps_the_previous_file(capsys, files):
    before = read(files["path"])
    result = run_module(capsys, backup=True, **args_for(files, debug=False))
    assert result["changed"] is True
    assert read(result["backup_file"]) == before
    assert json.loads(read(files["path"]))["debug"] is False
