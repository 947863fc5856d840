"""retention.py on directories of archives: restic's policy on the archives' times (checked against restic 0.14's
own plans, fixtures/restic/forget_policies.json, made by make_forget_policies.sh next to it), and the archive sets
read from and removed in a real temporary directory."""

import calendar
import datetime
import hashlib
import json
import os
import pathlib
import time

import pytest

from ansible_collections.persist.docker.plugins.module_utils import manifest, retention
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "restic"
UTC = datetime.timezone.utc


def unix(text):
    """Unix time of 'YYYY-MM-DD HH:MM:SS' (UTC) or of restic's RFC 3339 time."""
    if "T" in text:
        return retention.time_ns(text) / 1e9
    return calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S"))


def policy_of(options):
    """The module's policy dict of restic's command line options."""
    words = options.split()
    return {words[i][2:].replace("-", "_"): (words[i + 1] if words[i] == "--keep-within" else int(words[i + 1]))
            for i in range(0, len(words), 2)}


# -- the policy ------------------------------------------------------------------------------------

def restic_cases():
    data = json.loads((FIXTURES / "forget_policies.json").read_text())
    return [pytest.param(data["times"], case, id=case["options"]) for case in data["cases"]]


@pytest.mark.parametrize("times, case", restic_cases())
def test_the_policy_is_restics(times, case):
    archives = [dict(name="a%02d.tar" % i, time=unix(t)) for i, t in enumerate(times)]
    kept, removed = retention.keep_archives(archives, retention.check_archive_policy(policy_of(case["options"])),
                                            tz=UTC)
    plan = case["plan"]
    assert [a["time"] for a in kept] == [unix(t) for t in plan["keep"]]
    assert [a["reasons"] for a in kept] == [[r.replace(" snapshot", " archive") for r in m] for m in plan["reasons"]]
    assert [a["time"] for a in removed] == [unix(t) for t in plan["remove"]]


def test_the_fixture_tells_the_policies_apart():
    """Each case keeps another set of times, and removes some, so a policy applied wrongly fails a case."""
    plans = [p.values[1]["plan"] for p in restic_cases()]
    assert len({tuple(plan["keep"]) for plan in plans}) == len(plans) == 7
    assert all(plan["remove"] for plan in plans)


@pytest.mark.parametrize("newest, within, start", [
    ("2024-03-31 10:00:00", (0, 1, 0, 0), "2024-03-02 10:00:00"),  # Feb 31 rolls over to Mar 2, as in Go
    ("2024-03-31 10:00:00", (1, 2, 3, 4), "2023-01-28 06:00:00"),
    ("2024-01-01 00:30:00", (0, 0, 0, 1), "2023-12-31 23:30:00"),
    ("2024-02-29 12:00:00", (1, 0, 0, 0), "2023-03-01 12:00:00"),
    ("2024-01-15 00:00:00", (0, 13, 0, 0), "2022-12-15 00:00:00"),
])
def test_within_start(newest, within, start):
    assert retention.within_start(unix(newest), within, UTC) == unix(start)


@pytest.mark.parametrize("within", [(999999999, 0, 0, 0), (0, 0, 0, 999999999), (0, 0, 999999999, 0)])
def test_a_within_beyond_the_calendar_keeps_everything(within):
    assert retention.within_start(unix("2024-03-31 10:00:00"), within, UTC) is None
    kept, removed = retention.keep_archives([dict(name="a", time=0.0), dict(name="b", time=1e9)],
                                            dict({k: 0 for k in retention.COUNTS}, within=within), UTC)
    assert [a["name"] for a in kept] == ["b", "a"] and removed == []


def test_archives_of_the_same_time_go_by_name():
    archives = [dict(name=n, time=100.0) for n in ("b", "c", "a")]
    kept, removed = retention.keep_archives(archives, retention.check_archive_policy(dict(keep_last=1)), UTC)
    assert [a["name"] for a in kept] == ["c"] and [a["name"] for a in removed] == ["b", "a"]


def test_no_archives():
    assert retention.keep_archives([], retention.check_archive_policy(dict(keep_within="1d")), UTC) == ([], [])


@pytest.mark.parametrize("policy, match", [
    (dict(), "keeps no snapshot, so it would remove every backup"),
    (dict(keep_last=0), "keeps no snapshot"),
    (dict(keep_daily=-1), "keep_daily must be 0 or more"),
    (dict(keep_within="1w"), "is not a duration as restic reads it"),
    (dict(keep_within="0h"), "is zero"),
])
def test_the_archive_policy_is_checked_as_restics(policy, match):
    with pytest.raises(DockerError, match=match):
        retention.check_archive_policy(policy)


def test_the_archive_policy():
    assert retention.check_archive_policy(dict(keep_last=3, keep_daily=None, keep_within="1y2d")) == dict(
        keep_last=3, keep_hourly=0, keep_daily=0, keep_weekly=0, keep_monthly=0, keep_yearly=0, within=(1, 0, 2, 0))


# -- the directory ---------------------------------------------------------------------------------

def make_set(directory, name, volume, when=None, checksum=True, data=b"archive data"):
    """An archive set as volume_backup writes it: NAME, NAME.manifest.json, NAME.sha256; the archive's mtime when."""
    path = directory / name
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    entries = [manifest.make_entry(".", "dir", 0o755, 0, 0, mtime=0)]
    (directory / (name + ".manifest.json")).write_text(manifest.dump(entries, volume=volume, archive_sha256=sha,
                                                                     compression="none", exclude=[]))
    if checksum:
        (directory / (name + ".sha256")).write_text("%s  %s\n" % (sha, name))
    if when is not None:
        os.utime(path, (unix(when), unix(when)))
    return path


def found(directory):
    return retention.archive_sets(retention.open_archive_directory(str(directory)), str(directory))


def test_sets_found_by_their_manifests(tmp_path):
    make_set(tmp_path, "web-20240301T100000Z.tar.zst", "web", "2024-03-01 10:00:00")
    make_set(tmp_path, "web-20240302T100000Z.tar.gz", "web", "2024-03-02 10:00:00")
    make_set(tmp_path, "db.tar", "db", "2024-03-03 10:00:00")
    make_set(tmp_path, "some name", "web", "2024-03-04 10:00:00")
    (tmp_path / "web-20240305T100000Z.tar.zst.partial").write_bytes(b"being written")
    (tmp_path / "unrelated.txt").write_text("x")
    result = found(tmp_path)
    assert result["ignored"] == []
    assert [(s["name"], s["volume"], s["kind"], s["time"]) for s in result["sets"]] == [
        ("db.tar", "db", "archive", unix("2024-03-03 10:00:00")),
        ("some name", "web", "archive", unix("2024-03-04 10:00:00")),
        ("web-20240301T100000Z.tar.zst", "web", "archive", unix("2024-03-01 10:00:00")),
        ("web-20240302T100000Z.tar.gz", "web", "archive", unix("2024-03-02 10:00:00"))]
    assert result["sets"][0]["files"] == ["db.tar", "db.tar.sha256", "db.tar.manifest.json"]


def test_what_is_ignored_and_why(tmp_path):
    make_set(tmp_path, "no-checksum.tar", "web", checksum=False)
    make_set(tmp_path, "mismatch.tar", "web")
    (tmp_path / "mismatch.tar.sha256").write_text("%s  mismatch.tar\n" % ("0" * 64))
    outside = make_set(tmp_path / "..", "outside-%d.tar" % os.getpid(), "web")
    try:
        make_set(tmp_path, "linked.tar", "web")
        (tmp_path / "linked.tar").unlink()
        (tmp_path / "linked.tar").symlink_to(outside)
        make_set(tmp_path, "linked-checksum.tar", "web")
        (tmp_path / "linked-checksum.tar.sha256").unlink()
        (tmp_path / "linked-checksum.tar.sha256").symlink_to(str(outside) + ".sha256")
        make_set(tmp_path, "linked-manifest.tar", "web")
        (tmp_path / "linked-manifest.tar.manifest.json").unlink()
        (tmp_path / "linked-manifest.tar.manifest.json").symlink_to(str(outside) + ".manifest.json")
        result = found(tmp_path)
    finally:
        for f in (outside, pathlib.Path(str(outside) + ".sha256"), pathlib.Path(str(outside) + ".manifest.json")):
            f.unlink()
    make_set(tmp_path, "archive.manifest.json", "web")  # an archive whose name looks like a manifest
    (tmp_path / "garbage.tar.manifest.json").write_text('{"format": 1, "entries": [], "digest": "sha256:0"}')
    (tmp_path / "tar.tar.manifest.json").write_bytes(b"\x00" * 1000)
    make_set(tmp_path, "novolume.tar", "")
    later = found(tmp_path)
    reasons = {os.path.basename(s["path"]): (s["volume"], s["reason"]) for s in result["ignored"] + later["ignored"]}
    assert reasons == {
        "no-checksum.tar": ("web", "it has no checksum file (a backup may still be writing it)"),
        "mismatch.tar": ("web", "its checksum file does not record the sha256 its manifest does"),
        "linked.tar": ("web", "the archive is a symbolic link or not a regular file"),
        "linked-checksum.tar": ("web", "its checksum file is a symbolic link or not a regular file"),
        "linked-manifest.tar": (None, "its manifest is a symbolic link or not a regular file"),
        "archive": (None, "it is an archive that has a manifest of its own"),
        "garbage.tar": (None, "it is not a persist.docker manifest (its entries do not match its digest)"),
        "tar.tar": (None, "it is not a persist.docker manifest"),
        "novolume.tar": (None, "its manifest names no volume"),
    }
    assert [s["name"] for s in later["sets"]] == ["archive.manifest.json"]
    assert result["sets"] == []


def test_a_leftover(tmp_path):
    make_set(tmp_path, "gone.tar", "web")
    (tmp_path / "gone.tar").unlink()
    make_set(tmp_path, "half.tar", "web")
    (tmp_path / "half.tar").unlink()
    (tmp_path / "half.tar.sha256").unlink()
    sets = found(tmp_path)["sets"]
    assert [(s["name"], s["kind"], s["files"], s["time"]) for s in sets] == [
        ("gone.tar", "leftover", ["gone.tar.sha256", "gone.tar.manifest.json"], None),
        ("half.tar", "leftover", ["half.tar.manifest.json"], None)]


@pytest.mark.parametrize("kind", ["missing", "symlink", "file"])
def test_a_path_that_is_no_directory(tmp_path, kind):
    path = tmp_path / "backups"
    if kind == "symlink":
        (tmp_path / "real").mkdir()
        path.symlink_to(tmp_path / "real")
    elif kind == "file":
        make_set(tmp_path, "backups", "web")
    with pytest.raises(DockerError) as exc:
        retention.open_archive_directory(str(path))
    assert str(exc.value) == {
        "missing": "the directory of archives %s does not exist; give the directory that volume_backup wrote the "
                   "archives to" % path,
        "symlink": "the directory of archives %s is a symbolic link; refusing to follow it, give the real directory"
                   % path,
        "file": "path %s is not a directory; give the directory that holds the archives (and their .manifest.json "
                "and .sha256 files), not an archive" % path}[kind]


# -- the plan and the removal ----------------------------------------------------------------------

def test_plan_and_removal(tmp_path, monkeypatch):
    for day in range(1, 6):
        make_set(tmp_path, "web-2024030%dT100000Z.tar.zst" % day, "web", "2024-03-0%d 10:00:00" % day)
    make_set(tmp_path, "db.tar", "db", "2024-01-01 00:00:00")
    make_set(tmp_path, "web-left.tar", "web")
    (tmp_path / "web-left.tar").unlink()
    sets = found(tmp_path)["sets"]
    planned = retention.archive_plan(str(tmp_path), "web", sets, retention.check_archive_policy(dict(keep_last=2)),
                                     UTC)
    assert [(r["name"], r["kind"], r["time"]) for r in planned["removed"]] == [
        ("web-20240301T100000Z.tar.zst", "archive", "2024-03-01T10:00:00Z"),
        ("web-20240302T100000Z.tar.zst", "archive", "2024-03-02T10:00:00Z"),
        ("web-20240303T100000Z.tar.zst", "archive", "2024-03-03T10:00:00Z"),
        ("web-left.tar", "leftover", None)]
    assert planned["removed"][0]["files"] == [str(tmp_path / n) for n in (
        "web-20240301T100000Z.tar.zst", "web-20240301T100000Z.tar.zst.sha256",
        "web-20240301T100000Z.tar.zst.manifest.json")]
    assert [(k["name"], k["reasons"]) for k in planned["kept"]] == [
        ("web-20240304T100000Z.tar.zst", ["last archive"]), ("web-20240305T100000Z.tar.zst", ["last archive"])]
    assert planned["considered"] == sorted(["web-2024030%dT100000Z.tar.zst" % d for d in range(1, 6)]
                                           + ["web-left.tar"])
    unlinked = []
    real_unlink = os.unlink

    def spy(name, *args, **kwargs):
        unlinked.append(name)
        return real_unlink(name, *args, **kwargs)
    monkeypatch.setattr(os, "unlink", spy)
    directory = retention.open_archive_directory(str(tmp_path))
    for item in planned["going"]:
        retention.remove_set(directory, str(tmp_path), item)
    monkeypatch.undo()
    assert unlinked[:3] == ["web-20240301T100000Z.tar.zst", "web-20240301T100000Z.tar.zst.sha256",
                            "web-20240301T100000Z.tar.zst.manifest.json"]
    assert unlinked[-2:] == ["web-left.tar.sha256", "web-left.tar.manifest.json"]
    assert sorted(os.listdir(tmp_path)) == sorted(
        n + suffix for n in ("db.tar", "web-20240304T100000Z.tar.zst", "web-20240305T100000Z.tar.zst")
        for suffix in ("", ".sha256", ".manifest.json"))
    again = found(tmp_path)["sets"]
    assert retention.archive_plan(str(tmp_path), "web", again, retention.check_archive_policy(dict(keep_last=2)),
                                  UTC)["removed"] == []


def test_an_archive_written_again_meanwhile_is_left(tmp_path):
    make_set(tmp_path, "a.tar", "web")
    [item] = found(tmp_path)["sets"]
    (tmp_path / "a.tar.partial").write_bytes(b"newer")  # as volume_backup writes it: a new file renamed over it
    os.rename(tmp_path / "a.tar.partial", tmp_path / "a.tar")
    with pytest.raises(DockerError, match="a.tar was written again while retention ran; it was left as it is"):
        retention.remove_set(retention.open_archive_directory(str(tmp_path)), str(tmp_path), item)
    assert sorted(os.listdir(tmp_path)) == ["a.tar", "a.tar.manifest.json", "a.tar.sha256"]


def test_files_gone_meanwhile_are_no_error(tmp_path):
    make_set(tmp_path, "a.tar", "web")
    [item] = found(tmp_path)["sets"]
    (tmp_path / "a.tar.sha256").unlink()
    retention.remove_set(retention.open_archive_directory(str(tmp_path)), str(tmp_path), item)
    assert os.listdir(tmp_path) == []
