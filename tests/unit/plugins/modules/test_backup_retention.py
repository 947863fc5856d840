"""backup_retention as a whole, without the Docker SDK, with a stand-in restic that prints restic 0.14's captured
output (the repository of fixtures/restic/snapshots_convention.json, keep_daily 2) and records its argv and
environment (the real restic runs in the integration target); and on a directory of archives, made here in a
temporary directory (real archives of volume_backup in the integration target backup_retention_archives)."""

import hashlib
import json
import os
import pathlib
import stat
import time

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.persist.docker.plugins.module_utils import manifest

FIXTURES = pathlib.Path(__file__).parents[1] / "module_utils" / "fixtures" / "restic"
DRY_RUN = "forget --no-lock --dry-run --json --keep-daily 2 --tag persist.docker.volume=web_data --group-by host"
DATA = ["7e2d8d2319b7cbbcd62e2864811191d1d64261d07e4b20621557e8f65277d278",
        "6446a46df6efe88a879dcd9d48ed9e101962c8776e5a09f67179f0b61abf31c8"]
MANIFESTS = ["abad16aa03015c4840d9142567639a7aa161d3b591bf5337ad98a5b2c388d657",
             "6f3bdd50df5591fb120f4711505ebef2f93431b2ac03029b65c92c90203145fc",
             "3a1c39addcd9e78e9a36ce79b81216c9137b585ec0c3241d2b34e744e49bb383"]


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A restic first on PATH that answers version, snapshots and forget, and records how it was called;
    'prune' fails when the file prune-fails exists."""
    binary = tmp_path / "bin" / "restic"
    binary.parent.mkdir()
    binary.write_text(
        "#!/bin/sh\n"
        'echo "$*" >> %(calls)s\n'
        'env >> %(env)s\n'
        'case "$1 $3" in\n'
        '  version*) cat %(version)s ;;\n'
        '  snapshots*) cat %(snapshots)s ;;\n'
        '  "forget --dry-run") cat %(forget)s ;;\n'
        '  prune*) if [ -e %(fails)s ]; then echo "Fatal: unable to create lock in backend: repository is already '
        'locked exclusively by PID 7 on other by root (UID 0, GID 0)" >&2; exit 1; fi ;;\n'
        "esac\n" % dict(calls=tmp_path / "calls", env=tmp_path / "env", version=FIXTURES / "version.txt",
                        snapshots=FIXTURES / "snapshots_convention.json", forget=FIXTURES / "forget_keep_daily_2.json",
                        fails=tmp_path / "prune-fails"))
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", "%s:/usr/bin:/bin" % binary.parent)
    return tmp_path


def run(capsys, module, **args):
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def answer_with(stand_in, fixture, other):
    """Make the stand-in print the file other where it printed fixture."""
    binary = stand_in / "bin" / "restic"
    binary.write_text(binary.read_text().replace(str(fixture), str(other)))


def calls(stand_in):
    path = stand_in / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_check_mode_lists_and_changes_nothing(capsys, without_sdk, stand_in):
    module = without_sdk("modules.backup_retention")
    result = run(capsys, module, repository="/srv/r", repository_password="pw-secret", keep_daily=2,
                 _ansible_check_mode=True, _ansible_diff=True)
    assert "failed" not in result, result
    assert result["changed"] is True and result["pruned"] is True
    assert [r["id"] for r in result["removed"]] == DATA + MANIFESTS
    assert [r["kind"] for r in result["removed"]] == ["data"] * 2 + ["manifest"] * 3
    assert [k["run"] for k in result["kept"]] == ["run-b1", "run-a2", "run-a4", "run-b2"]
    assert result["volumes"] == ["web_data"]
    assert result["actions"] == ["removed 2 data and 3 manifest snapshots of volume 'web_data'",
                                 "pruned the repository"]
    assert calls(stand_in) == ["version", "snapshots --no-lock --json", DRY_RUN]
    before, after = result["diff"]["before"]["web_data"], result["diff"]["after"]["web_data"]
    assert len(before) == 14 and sorted(set(before) - set(after)) == sorted(i[:8] for i in DATA + MANIFESTS)


def test_real_run_forgets_data_then_manifests_then_prunes(capsys, without_sdk, stand_in):
    module = without_sdk("modules.backup_retention")
    result = run(capsys, module, repository="rest:https://alice:url-secret@h/", repository_password="pw-secret",
                 repository_env={"AWS_SECRET_ACCESS_KEY": "env-secret"}, volume="web_data", keep_daily=2)
    assert "failed" not in result, result
    assert result["changed"] is True and result["pruned"] is True
    assert result["repository"] == "rest:https://alice:***@h/"
    assert "diff" not in result
    assert calls(stand_in) == ["version", "snapshots --no-lock --json", DRY_RUN, "forget " + " ".join(DATA),
                               "forget " + " ".join(MANIFESTS), "prune"]
    env = (stand_in / "env").read_text()
    assert "RESTIC_PASSWORD=pw-secret" in env and "AWS_SECRET_ACCESS_KEY=env-secret" in env
    for secret in ("url-secret", "pw-secret", "env-secret"):
        assert secret not in "\n".join(calls(stand_in))
        assert secret not in json.dumps(result)


def test_without_prune(capsys, without_sdk, stand_in):
    module = without_sdk("modules.backup_retention")
    result = run(capsys, module, repository="/srv/r", repository_password_file="/etc/pw", keep_daily=2, prune=False)
    assert result["changed"] is True and result["pruned"] is False
    assert "prune" not in calls(stand_in)
    assert calls(stand_in)[-1] == "forget " + " ".join(MANIFESTS)


def test_a_volume_without_snapshots_changes_nothing(capsys, without_sdk, stand_in):
    (stand_in / "empty.json").write_text("")
    module = without_sdk("modules.backup_retention")
    answer_with(stand_in, FIXTURES / "forget_keep_daily_2.json", stand_in / "empty.json")
    result = run(capsys, module, repository="/srv/r", repository_password="pw", volume="other", keep_last=1)
    assert "failed" not in result, result
    assert result["changed"] is False and result["pruned"] is False
    assert result["removed"] == [] and result["kept"] == [] and result["volumes"] == ["other"]
    assert [c.split()[0] for c in calls(stand_in)] == ["version", "snapshots", "forget"]


def test_prune_failure_says_what_was_done(capsys, without_sdk, stand_in):
    (stand_in / "prune-fails").touch()
    module = without_sdk("modules.backup_retention")
    result = run(capsys, module, repository="/srv/r", repository_password="pw-secret", keep_daily=2)
    assert result["failed"] is True
    assert result["msg"].startswith("restic repository '/srv/r': the repository is locked by another restic process")
    assert result["msg"].endswith("; the 5 snapshots were removed but the data they held is still stored: run "
                                  "'restic prune' on the repository")
    assert "exception" not in result


@pytest.mark.parametrize("args, msg", [
    (dict(), "the retention policy keeps no snapshot, so it would remove every backup of the volume"),
    (dict(keep_last=0), "give at least one of keep_last"),
    (dict(keep_daily=-1), "keep_daily must be 0 or more, got -1"),
    (dict(keep_within="1w"), "keep_within '1w' is not a duration as restic reads it"),
    (dict(keep_within="-1d"), "keep_within '-1d' is not a duration"),
    (dict(keep_within="0d"), "keep_within '0d' is zero and keeps no snapshot"),
    (dict(keep_last=1, volume="web,db"), "is not usable"),
    (dict(keep_last=1, restic_timeout=0), "restic_timeout must be at least 1 second"),
    (dict(keep_last=1, repository_env={"RESTIC_PASSWORD_FILE": "/x"}), "remove it from repository_env"),
])
def test_refused_before_restic_runs(capsys, without_sdk, stand_in, args, msg):
    module = without_sdk("modules.backup_retention")
    result = run(capsys, module, repository="/srv/r", repository_password="pw-secret", **args)
    assert result["failed"] is True and msg in result["msg"], result["msg"]
    assert calls(stand_in) == []


def test_restic_older_than_0_14(capsys, without_sdk, stand_in):
    (stand_in / "old").write_text("restic 0.12.1 compiled with go1.16.7 on linux/amd64\n")
    answer_with(stand_in, FIXTURES / "version.txt", stand_in / "old")
    module = without_sdk("modules.backup_retention")
    result = run(capsys, module, repository="/srv/r", repository_password="pw", keep_last=1)
    assert result["failed"] is True
    assert result["msg"] == ("restic 0.12.1 is older than 0.14, which backup_retention needs (forget --dry-run "
                             "--no-lock); install restic 0.14 or newer")
    assert calls(stand_in) == ["version"]


# -- a directory of archives (no restic) -----------------------------------------------------------

def archive_set(directory, name, volume, when, checksum=True):
    """An archive set as volume_backup writes it, the archive's mtime set to when (unix time)."""
    data = ("%s %s" % (volume, when)).encode()
    (directory / name).write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    entries = [manifest.make_entry(".", "dir", 0o755, 0, 0, mtime=0)]
    (directory / (name + ".manifest.json")).write_text(manifest.dump(entries, volume=volume, archive_sha256=sha))
    if checksum:
        (directory / (name + ".sha256")).write_text("%s  %s\n" % (sha, name))
    os.utime(directory / name, (when, when))


@pytest.fixture
def archives(tmp_path):
    """Archives of web (5, a day apart, the newest a day old) and db (2) in tmp_path/backups, a leftover of web and
    a web archive without its checksum file."""
    directory = tmp_path / "backups"
    directory.mkdir()
    day = 86400
    now = int(time.time())  # whole seconds: the boundary of keep_within is exact
    for n in range(5):
        archive_set(directory, "web-%d.tar.zst" % n, "web", now - (5 - n) * day)
    archive_set(directory, "db-0.tar.gz", "db", now - 10 * day)
    archive_set(directory, "db-1.tar.gz", "db", now - 9 * day)
    archive_set(directory, "web-left.tar", "web", now)
    (directory / "web-left.tar").unlink()
    archive_set(directory, "web-writing.tar", "web", now, checksum=False)
    return directory


def names(directory):
    return sorted(p.name for p in directory.iterdir())


def test_archives_check_mode_predicts_the_real_run(capsys, without_sdk, stand_in, archives):
    module = without_sdk("modules.backup_retention")
    listed = names(archives)
    checked = run(capsys, module, path=str(archives), keep_last=2, _ansible_check_mode=True, _ansible_diff=True)
    assert "failed" not in checked, checked
    assert names(archives) == listed
    real = run(capsys, module, path=str(archives), keep_last=2, _ansible_diff=True)
    for key in ("changed", "actions", "removed", "kept", "ignored", "volumes", "diff", "pruned"):
        assert checked[key] == real[key], key
    assert real["changed"] is True and real["pruned"] is False and real["volumes"] == ["db", "web"]
    assert real["actions"] == [
        "removed 3 archives of volume 'web' from %s" % archives,
        "removed the leftover files of 1 archives of volume 'web' from %s (their archives were already gone)"
        % archives]
    assert [(r["name"], r["kind"]) for r in real["removed"]] == [
        ("web-0.tar.zst", "archive"), ("web-1.tar.zst", "archive"), ("web-2.tar.zst", "archive"),
        ("web-left.tar", "leftover")]
    assert [k["name"] for k in real["kept"]] == ["db-0.tar.gz", "db-1.tar.gz", "web-3.tar.zst", "web-4.tar.zst"]
    assert real["ignored"] == [dict(path=str(archives / "web-writing.tar"), volume="web",
                                    reason="it has no checksum file (a backup may still be writing it)")]
    assert real["diff"]["before"]["web"] == ["web-%d.tar.zst" % n for n in range(5)] + ["web-left.tar"]
    assert real["diff"]["after"] == dict(db=["db-0.tar.gz", "db-1.tar.gz"], web=["web-3.tar.zst", "web-4.tar.zst"])
    assert names(archives) == sorted(
        [n + s for n in ("db-0.tar.gz", "db-1.tar.gz", "web-3.tar.zst", "web-4.tar.zst")
         for s in ("", ".manifest.json", ".sha256")] + ["web-writing.tar", "web-writing.tar.manifest.json"])
    again = run(capsys, module, path=str(archives), keep_last=2)
    assert again["changed"] is False and again["removed"] == [] and again["actions"] == []
    assert calls(stand_in) == []  # restic never ran


def test_archives_of_one_volume_within_a_duration(capsys, without_sdk, stand_in, archives):
    module = without_sdk("modules.backup_retention")
    result = run(capsys, module, path=str(archives), volume="web", keep_within="2d")
    assert result["volumes"] == ["web"]
    # web-2 is exactly 2 days older than the newest, web-4: not after that start, as restic counts it
    assert [r["name"] for r in result["removed"]] == ["web-0.tar.zst", "web-1.tar.zst", "web-2.tar.zst",
                                                      "web-left.tar"]
    assert [(k["name"], k["reasons"]) for k in result["kept"]] == [
        ("web-3.tar.zst", ["within 2d"]), ("web-4.tar.zst", ["within 2d"])]
    assert "db-0.tar.gz" in names(archives)


@pytest.mark.parametrize("args, msg", [
    (dict(), "the retention policy keeps no snapshot, so it would remove every backup of the volume"),
    (dict(keep_last=0), "the retention policy keeps no snapshot"),
    (dict(keep_within="1w"), "keep_within '1w' is not a duration as restic reads it"),
    (dict(keep_last=1, repository="/srv/r"), "parameters are mutually exclusive: repository|path"),
    (dict(keep_last=1, repository_password="pw"), "parameters are mutually exclusive: path|repository_password"),
])
def test_archives_refused(capsys, without_sdk, stand_in, archives, args, msg):
    module = without_sdk("modules.backup_retention")
    listed = names(archives)
    result = run(capsys, module, path=str(archives), **args)
    assert result["failed"] is True and msg in result["msg"], result["msg"]
    assert names(archives) == listed


@pytest.mark.parametrize("kind", ["symlink", "file", "missing"])
def test_a_path_that_is_no_directory_is_refused(capsys, without_sdk, stand_in, archives, kind):
    path = archives.parent / "other"
    if kind == "symlink":
        path.symlink_to(archives)
    elif kind == "file":
        path.write_text("")
    result = run(capsys, without_sdk("modules.backup_retention"), path=str(path), keep_last=1)
    assert result["failed"] is True
    assert {"symlink": "is a symbolic link; refusing to follow it", "file": "is not a directory",
            "missing": "does not exist"}[kind] in result["msg"]
    assert len(names(archives)) == 25


def test_neither_repository_nor_path(capsys, without_sdk, stand_in):
    result = run(capsys, without_sdk("modules.backup_retention"), keep_last=1)
    assert result["failed"] is True and "one of the following is required: repository, path" in result["msg"]


def test_a_repository_needs_its_password(capsys, without_sdk, stand_in):
    result = run(capsys, without_sdk("modules.backup_retention"), repository="/srv/r", keep_last=1)
    assert result["failed"] is True
    assert result["msg"] == "with repository, give one of repository_password and repository_password_file"
    assert calls(stand_in) == []
