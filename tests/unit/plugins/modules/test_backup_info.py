"""backup_info as a whole, without the Docker SDK, with a stand-in restic that prints restic 0.14's captured output
and records its argv and environment (the real restic runs in the integration target)."""

import json
import pathlib
import stat

import pytest
from ansible.module_utils.testing import patch_module_args

FIXTURES = pathlib.Path(__file__).parents[1] / "module_utils" / "fixtures" / "restic"


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A restic first on PATH that answers version and snapshots, and records how it was called."""
    binary = tmp_path / "bin" / "restic"
    binary.parent.mkdir()
    binary.write_text(
        "#!/bin/sh\n"
        'echo "$*" >> %(calls)s\n'
        'env >> %(env)s\n'
        'case "$1" in\n'
        '  version) cat %(version)s ;;\n'
        '  snapshots) cat %(snapshots)s ;;\n'
        '  check) cat %(check)s ;;\n'
        "esac\n" % dict(calls=tmp_path / "calls", env=tmp_path / "env", version=FIXTURES / "version.txt",
                        snapshots=FIXTURES / "snapshots.json", check=FIXTURES / "check_subset.txt"))
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", "%s:/usr/bin:/bin" % binary.parent)
    return tmp_path


def run(capsys, module, **args):
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def test_lists_and_checks_without_the_sdk_and_without_secrets_in_argv(capsys, without_sdk, stand_in):
    backup_info = without_sdk("modules.backup_info")
    result = run(capsys, backup_info, repository="rest:https://alice:url-secret@h/", repository_password="pw-secret",
                 repository_env={"AWS_SECRET_ACCESS_KEY": "env-secret"}, check=True, read_data_subset="1/5")
    assert "failed" not in result, result
    assert result["changed"] is False
    assert result["repository"] == "rest:https://alice:***@h/"
    assert result["restic_version"] == "0.14.0"
    assert [(s["short_id"], s["volume"]) for s in result["snapshots"]] == [
        ("d9d6130f", "web_data"), ("542b73fe", "db_data"), ("1b4d4295", None)]
    assert result["check"]["ok"] is True
    assert result["check"]["output"][-2:] == ["[0:00] 100.00%  2 / 2 packs", "no errors were found"]
    calls = (stand_in / "calls").read_text()
    assert calls.splitlines() == ["version", "snapshots --json", "check --read-data-subset 1/5"]
    env = (stand_in / "env").read_text()
    assert "RESTIC_PASSWORD=pw-secret" in env and "AWS_SECRET_ACCESS_KEY=env-secret" in env
    assert "RESTIC_REPOSITORY=rest:https://alice:url-secret@h/" in env
    for secret in ("url-secret", "pw-secret", "env-secret"):
        assert secret not in calls
        assert secret not in json.dumps(result)


def test_volume_filter_is_a_tag(capsys, without_sdk, stand_in):
    backup_info = without_sdk("modules.backup_info")
    run(capsys, backup_info, repository="/srv/r", repository_password_file="/etc/pw", volume="web_data")
    last = (stand_in / "calls").read_text().splitlines()[-1]
    assert last == "snapshots --json --tag persist.docker.volume=web_data --tag persist.docker.manifest=web_data"
    assert "RESTIC_PASSWORD_FILE=/etc/pw" in (stand_in / "env").read_text()


@pytest.mark.parametrize("args, msg", [
    (dict(read_data_subset="1/5"), "read_data_subset is only used with check: true"),
    (dict(check=True, read_data_subset="0/5"), "read_data_subset '0/5' is not n/t"),
    (dict(volume="web,db"), "is not usable"),
    (dict(restic_timeout=0), "restic_timeout must be at least 1 second"),
    (dict(repository_env={"RESTIC_PASSWORD_FILE": "/x"}), "remove it from repository_env"),
])
def test_refused_before_restic_runs(capsys, without_sdk, stand_in, args, msg):
    backup_info = without_sdk("modules.backup_info")
    result = run(capsys, backup_info, repository="/srv/r", repository_password="pw-secret", **args)
    assert result["failed"] is True and msg in result["msg"]
    assert not (stand_in / "calls").exists()


def test_restic_missing(capsys, without_sdk, tmp_path, monkeypatch):
    backup_info = without_sdk("modules.backup_info")
    restic = without_sdk("module_utils.restic")
    real = restic.find_binary
    monkeypatch.setattr(restic, "find_binary", lambda path=None: real(path=str(tmp_path)))
    result = run(capsys, backup_info, repository="/srv/r", repository_password="pw-secret")
    assert result["failed"] is True
    assert result["msg"] == "restic is not installed on the managed host; install the restic package"
    assert "exception" not in result
