"""restic.py: argv and environment without secrets, redaction, the tag convention, parsers of real restic 0.14
output (fixtures/restic, captured from restic 0.14.0 against a local repository and the test bed's S3 server),
error classification, and one real run of a stand-in binary for the timeout and the scrubbing."""

import os
import pathlib
import stat

import pytest

from ansible_collections.persist.docker.plugins.module_utils import restic
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "restic"
DIGEST = "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
SUBJECT = "restic repository 'x'"


def fixture(name):
    return (FIXTURES / name).read_text()


# -- argv and environment --------------------------------------------------------------------------

def test_argv_holds_no_repository_nor_secret():
    repository = "rest:https://alice:s3cr3t@backup.example.com/"
    cmd = restic.argv("/usr/bin/restic", "snapshots", "--json", "--tag", restic.volume_tag("web"))
    assert cmd == ["/usr/bin/restic", "snapshots", "--json", "--tag", "persist.docker.volume=web"]
    assert not any("s3cr3t" in a or repository in a for a in cmd)


def test_environment_with_password():
    env = restic.environment("s3:http://h/b/p", password="pw", repository_env={"AWS_SECRET_ACCESS_KEY": "sk"},
                             base={"PATH": "/bin", "RESTIC_PASSWORD_FILE": "/old", "RESTIC_REPOSITORY": "old"})
    assert env == {"PATH": "/bin", "RESTIC_REPOSITORY": "s3:http://h/b/p", "RESTIC_PASSWORD": "pw",
                   "AWS_SECRET_ACCESS_KEY": "sk"}


def test_environment_with_password_file_drops_inherited_password():
    env = restic.environment("/srv/repo", password_file="/etc/pw",
                             base={"RESTIC_PASSWORD": "inherited", "RESTIC_PASSWORD_COMMAND": "cat x", "HOME": "/r"})
    assert env == {"HOME": "/r", "RESTIC_REPOSITORY": "/srv/repo", "RESTIC_PASSWORD_FILE": "/etc/pw"}


@pytest.mark.parametrize("kwargs, match", [
    (dict(), "exactly one"),
    (dict(password="a", password_file="/b"), "exactly one"),
    (dict(password="a", repository_env={"RESTIC_PASSWORD": "b"}), "remove it from repository_env"),
    (dict(password="a", repository_env={"RESTIC_REPOSITORY": "b"}), "remove it from repository_env"),
    (dict(password="a", repository_env={"BAD NAME": "b"}), "not a name"),
])
def test_environment_refuses(kwargs, match):
    with pytest.raises(DockerError, match=match):
        restic.environment("/srv/repo", base={}, **kwargs)


def test_environment_values_are_strings():
    env = restic.environment("/r", password="p", repository_env={"AWS_DEFAULT_REGION": 1, "X": None}, base={})
    assert env["AWS_DEFAULT_REGION"] == "1" and env["X"] == ""


# -- redaction -------------------------------------------------------------------------------------

@pytest.mark.parametrize("repository, shown", [
    ("s3:http://127.0.0.1:5380/pd-backup/prefix", "s3:http://127.0.0.1:5380/pd-backup/prefix"),
    ("/srv/restic", "/srv/restic"),
    ("sftp:backup@host:/srv/restic", "sftp:backup@host:/srv/restic"),
    ("rest:https://user:pass@host/", "rest:https://user:***@host/"),
    ("rest:http://user:p%40ss:w@host:8000/repo", "rest:http://user:***@host:8000/repo"),
    ("rest:https://user@host/", "rest:https://user@host/"),
    ("s3:https://key:secret@s3.example.com/bucket", "s3:https://key:***@s3.example.com/bucket"),
])
def test_redact(repository, shown):
    assert restic.redact(repository) == shown


def test_redact_matches_restic_own():
    """restic prints a rest: URL with its password as *** too: our subject and its output agree."""
    assert "rest:https://alice:***@127.0.0.1:1/" in fixture("err_rest_unreachable.txt")
    assert restic.redact("rest:https://alice:s3cr3t@127.0.0.1:1/") == "rest:https://alice:***@127.0.0.1:1/"


def test_secrets_and_scrub():
    env = {"AWS_SECRET_ACCESS_KEY": "envsecret", "AWS_DEFAULT_REGION": "us"}
    secrets = restic.secrets_of("rest:https://u:urlpass@h/", "thepassword", env)
    assert sorted(secrets) == ["envsecret", "thepassword", "urlpass"]  # values under 3 characters are not scrubbed
    text = "Fatal: thepassword envsecret urlpass us"
    assert restic.scrub(text, secrets) == "Fatal: *** *** *** us"


# -- tags ------------------------------------------------------------------------------------------

def test_tags_of_the_convention():
    assert restic.volume_tag("web_data") == "persist.docker.volume=web_data"
    assert restic.digest_tag(DIGEST) == "persist.docker.digest=" + DIGEST


@pytest.mark.parametrize("tag", ["", " a", "a ", "a,b", "a\nb", "a\tb"])
def test_tags_restic_would_change_are_refused(tag):
    with pytest.raises(DockerError, match="not usable"):
        restic.check_tag(tag)


@pytest.mark.parametrize("digest", ["", "sha256:abc", "md5:" + "0" * 64, DIGEST.upper()])
def test_bad_digest(digest):
    with pytest.raises(DockerError, match="sha256:<64 hex digits>"):
        restic.digest_tag(digest)


@pytest.mark.parametrize("tags, fields", [
    (None, dict(volume=None, digest=None)),
    (["other", "persist.docker.volume"], dict(volume=None, digest=None)),
    (["persist.docker.volume=a", "persist.docker.digest=" + DIGEST], dict(volume="a", digest=DIGEST)),
    (["persist.docker.volumes=a"], dict(volume=None, digest=None)),
])
def test_tag_fields(tags, fields):
    found = restic.tag_fields(tags)
    assert {k: found[k] for k in fields} == fields
    assert all(found[k] is None for k in found if k not in fields)


def test_tags_of_a_run_and_completeness():
    tags = restic.data_tags("web", DIGEST, "r1", 10, 3, "tree", ["daily"])
    assert tags == ["persist.docker.volume=web", "persist.docker.digest=" + DIGEST, "persist.docker.run=r1",
                    "persist.docker.bytes=10", "persist.docker.files=3", "persist.docker.format=tree", "daily"]
    fields = restic.tag_fields(tags)
    assert (fields["bytes"], fields["files"], fields["format"], fields["run"]) == (10, 3, "tree", "r1")
    assert restic.tag_fields(["persist.docker.bytes=x"])["bytes"] is None
    with pytest.raises(DockerError, match="sets itself"):
        restic.data_tags("web", DIGEST, "r1", 10, 3, "tree", ["persist.docker.volume=other"])
    with pytest.raises(DockerError, match="format"):
        restic.data_tags("web", DIGEST, "r1", 10, 3, "zip")
    snaps = [dict(id="d1", **restic.tag_fields(tags)),
             dict(id="m1", **restic.tag_fields(restic.manifest_tags("web", "r1"))),
             dict(id="d2", **restic.tag_fields(restic.data_tags("web", DIGEST, "r2", 1, 1, "tar")))]
    assert [(s["id"], s["manifest_id"]) for s in restic.complete(snaps)] == [("d1", "m1")]


def test_a_data_snapshot_without_its_digest_takes_it_from_its_manifest_snapshot():
    first = ["persist.docker.volume=web", "persist.docker.run=r1", "persist.docker.format=tar"]
    assert restic.manifest_tags("web", "r1", DIGEST, 10, 3) == [
        "persist.docker.manifest=web", "persist.docker.run=r1", "persist.docker.digest=" + DIGEST,
        "persist.docker.bytes=10", "persist.docker.files=3"]
    snaps = [dict(id="d1", **restic.tag_fields(first)),
             dict(id="m1", **restic.tag_fields(restic.manifest_tags("web", "r1", DIGEST, 10, 3))),
             dict(id="d2", **restic.tag_fields(["persist.docker.volume=web", "persist.docker.run=r2"])),
             dict(id="m2", **restic.tag_fields(restic.manifest_tags("web", "r2")))]
    found = restic.complete(snaps)
    assert [(s["id"], s["manifest_id"], s["digest"], s["bytes"], s["files"], s["format"]) for s in found] == [
        ("d1", "m1", DIGEST, 10, 3, "tar")]  # d2: no digest anywhere, not complete
    own = dict(snaps[0], digest="sha256:" + "1" * 64, bytes=1, files=1)
    assert restic.complete([own, snaps[1]])[0]["digest"] == "sha256:" + "1" * 64  # its own tags win


# -- parsers on restic 0.14's own output -----------------------------------------------------------

def test_parse_version():
    assert restic.parse_version(fixture("version.txt")) == "0.14.0"
    assert restic.parse_version("rustic 1.0") is None


def test_parse_snapshots():
    snapshots = restic.parse_snapshots(fixture("snapshots.json"), SUBJECT)
    assert [s["short_id"] for s in snapshots] == ["d9d6130f", "542b73fe", "1b4d4295"]
    first, second, untagged = snapshots
    assert first == dict(
        id="d9d6130f5c76f6f67a31f6f8a27089274a98b266c92c4282356c90f2a4670491", short_id="d9d6130f",
        time="2026-12-03T03:34:23.575896882Z", hostname="fixhost", paths=["/tmp/rst.EW23/data"],
        tags=["persist.docker.volume=web_data", "persist.docker.digest=" + DIGEST], volume="web_data", digest=DIGEST,
        run=None, bytes=None, files=None, format=None, manifest_of=None)
    assert (second["volume"], second["digest"]) == ("db_data", None)
    assert untagged["tags"] == [] and untagged["volume"] is None  # restic leaves out "tags" when there are none


def test_parse_snapshots_empty():
    assert restic.parse_snapshots(fixture("snapshots_empty.json"), SUBJECT) == []
    assert restic.parse_snapshots("null\n", SUBJECT) == []


@pytest.mark.parametrize("text", ["", "{}", "[1]", "Fatal: no", '{"message_type":"summary"}'])
def test_parse_snapshots_refuses_other_output(text):
    with pytest.raises(DockerError, match="no snapshot list"):
        restic.parse_snapshots(text, SUBJECT)


def test_parse_backup_summary():
    summary = restic.parse_backup_summary(fixture("backup.jsonl"), SUBJECT)
    assert summary["snapshot_id"] == "d9d6130f"  # restic 0.14 gives the short id here
    assert summary["data_added"] == 4591 and summary["files_new"] == 2


def test_parse_backup_without_summary():
    status = fixture("backup.jsonl").splitlines()[0]
    with pytest.raises(DockerError, match="no summary"):
        restic.parse_backup_summary(status + "\nnot json\n", SUBJECT)


# -- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("err_wrong_password.txt", "wrong password or no key found"),
    ("err_no_repository_local.txt", "there is no restic repository there (unable to open config file: stat "),
    ("err_no_repository_s3.txt", "there is no restic repository there (unable to open config file: Stat: The "
                                 "specified key does not exist.)"),
    ("err_s3_signature.txt", "the S3 server refused the secret key (SignatureDoesNotMatch)"),
    ("err_s3_unknown_access_key.txt", "the S3 server denied access; check AWS_ACCESS_KEY_ID"),
    ("err_s3_no_bucket.txt", "the S3 bucket does not exist"),
    ("err_password_file_missing.txt", "the password could not be read (Resolving password failed: Fatal: "),
    ("err_rest_unreachable.txt", "there is no restic repository there (unable to open config file: client.Head"),
])
def test_classify(name, expected):
    message = restic.classify(fixture(name), SUBJECT)
    assert message.startswith(SUBJECT + ": " + expected)
    assert "\n" not in message


def test_classify_unknown_gives_restic_last_line():
    assert restic.classify(fixture("check_damaged.stderr"), SUBJECT) == SUBJECT + ": restic failed: Fatal: " \
        "repository contains errors"
    assert restic.classify("", SUBJECT) == SUBJECT + ": restic failed: no message"
    assert restic.known_cause(fixture("check_damaged.stderr")) is None


def test_last_lines():
    assert restic.last_lines(fixture("check_subset.txt"), 2) == ["[0:00] 100.00%  2 / 2 packs",
                                                                 "no errors were found"]


@pytest.mark.parametrize("value", ["1/5", "5/5", "10%", "2.5%", "100%", "500M", "1g", "123"])
def test_read_data_subset_accepted(value):
    assert restic.check_read_data_subset(value) == value


@pytest.mark.parametrize("value", ["", "0/5", "6/5", "1/0", "0%", "101%", "10 %", "1/5,2/5", "half"])
def test_read_data_subset_refused(value):
    with pytest.raises(DockerError, match="read_data_subset"):
        restic.check_read_data_subset(value)


# -- running: a stand-in binary (the real one is run by the integration target) ----------------------

def stand_in(tmp_path, script):
    binary = tmp_path / "restic"
    binary.write_text("#!/bin/sh\n" + script)
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return str(binary)


def test_find_binary(tmp_path):
    with pytest.raises(DockerError, match="^restic is not installed on the managed host; install the restic package$"):
        restic.find_binary(path=str(tmp_path))
    binary = stand_in(tmp_path, "exit 0\n")
    assert restic.find_binary(path=str(tmp_path)) == binary


def test_run_scrubs_secrets_and_keeps_them_out_of_argv(tmp_path):
    script = 'echo "args: $*"; echo "Fatal: $RESTIC_PASSWORD $AWS_SECRET_ACCESS_KEY $RESTIC_REPOSITORY" >&2; exit 1\n'
    binary = stand_in(tmp_path, script)
    r = restic.Restic("rest:https://u:urlpass@h/", password="thepassword",
                      repository_env={"AWS_SECRET_ACCESS_KEY": "envsecret"}, binary=binary)
    rc, out, err = r.run("snapshots", "--json")
    assert (rc, out) == (1, "args: snapshots --json\n")
    assert err == "Fatal: *** *** rest:https://u:***@h/\n"
    with pytest.raises(DockerError) as failed:
        r.call("snapshots")
    assert str(failed.value) == "restic repository 'rest:https://u:***@h/': restic failed: Fatal: *** *** " \
        "rest:https://u:***@h/"


def test_run_is_bounded(tmp_path):
    r = restic.Restic("/srv/r", password="pw", binary=stand_in(tmp_path, "sleep 30\n"), timeout=1)
    with pytest.raises(DockerError, match="did not end within 1 seconds; raise restic_timeout"):
        r.run("check")


def test_version_of_something_else(tmp_path):
    r = restic.Restic("/srv/r", password="pw", binary=stand_in(tmp_path, "echo 'rustic 1.0'\n"))
    with pytest.raises(DockerError, match="install the restic package"):
        r.version()


def test_check_damaged_and_unopenable(tmp_path):
    out = FIXTURES / "check_damaged.stdout"
    err = FIXTURES / "check_damaged.stderr"
    r = restic.Restic("/srv/r", password="pw", binary=stand_in(tmp_path, 'cat %s; cat %s >&2; exit 1\n' % (out, err)))
    result = r.check()
    assert result["ok"] is False and result["output"][-1] == "Fatal: repository contains errors"
    wrong = FIXTURES / "err_wrong_password.txt"
    r = restic.Restic("/srv/r", password="pw", binary=stand_in(tmp_path, "cat %s >&2; exit 1\n" % wrong))
    with pytest.raises(DockerError, match="wrong password"):
        r.check()


def test_stream_gives_stdout_and_fails_after_the_last_chunk(tmp_path):
    r = restic.Restic("/srv/r", password="thepassword", binary=stand_in(tmp_path, 'head -c 3000000 /dev/zero\n'))
    assert sum(len(c) for c in r.stream("dump", "x", "/")) == 3000000
    r = restic.Restic("/srv/r", password="thepassword",
                      binary=stand_in(tmp_path, 'printf abc; echo "Fatal: $RESTIC_PASSWORD gone" >&2; exit 1\n'))
    chunks = r.stream("dump", "x", "/")
    assert next(chunks) == b"abc"
    with pytest.raises(DockerError, match=r"restic failed: Fatal: \*\*\* gone$"):
        next(chunks)


def test_stream_closed_early_kills_restic(tmp_path):
    pidfile = tmp_path / "pid"
    r = restic.Restic("/srv/r", password="pw",
                      binary=stand_in(tmp_path, 'echo $$ > %s; exec cat /dev/zero\n' % pidfile))
    chunks = r.stream("dump", "x", "/")
    next(chunks)
    chunks.close()
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_stream_is_bounded(tmp_path):
    r = restic.Restic("/srv/r", password="pw", binary=stand_in(tmp_path, "sleep 30\n"), timeout=1)
    with pytest.raises(DockerError, match="did not end within 1 seconds"):
        list(r.stream("dump", "x", "/"))


def test_feed_sends_the_chunks_on_stdin(tmp_path):
    r = restic.Restic("/srv/r", password="pw", binary=stand_in(tmp_path, 'wc -c\n'))
    assert r.feed("backup", iter([b"a" * 100000] * 30), "--stdin").strip() == "3000000"
    r = restic.Restic("/srv/r", password="pw", binary=stand_in(tmp_path, 'echo "Fatal: no room" >&2; exit 1\n'))
    with pytest.raises(DockerError, match="restic failed: Fatal: no room"):
        r.feed("backup", iter([b"a" * 100000] * 30), "--stdin")


def test_feed_source_error_kills_restic_and_is_raised(tmp_path):
    r = restic.Restic("/srv/r", password="pw", binary=stand_in(tmp_path, 'cat > /dev/null\n'))

    def chunks():
        yield b"x" * 1000
        raise DockerError("the helper is gone")
    with pytest.raises(DockerError, match="^the helper is gone$"):
        r.feed("backup", chunks(), "--stdin")


def test_no_repository_is_told_from_other_failures(tmp_path):
    missing = FIXTURES / "err_no_repository_local.txt"
    wrong = FIXTURES / "err_wrong_password.txt"
    r = restic.Restic("/srv/r", password="pw", binary=stand_in(tmp_path, "cat %s >&2; exit 1\n" % missing))
    with pytest.raises(restic.NoRepository, match="there is no restic repository there"):
        r.snapshots("v", lock=False)
    r = restic.Restic("/srv/r", password="pw", binary=stand_in(tmp_path, "cat %s >&2; exit 1\n" % wrong))
    with pytest.raises(DockerError, match="wrong password") as failed:
        r.snapshots("v")
    assert not isinstance(failed.value, restic.NoRepository)


def test_a_stale_lock_is_removed_and_the_command_run_once_more(tmp_path):
    log = tmp_path / "calls"
    script = ('echo "$1" >> %s\n'
              'if [ "$1" = unlock ]; then touch %s/unlocked; exit 0; fi\n'
              'if [ ! -e %s/unlocked ]; then echo "Fatal: unable to create lock in backend: repository is already '
              'locked by PID 42 on h by root (UID 0, GID 0)" >&2; exit 1; fi\n'
              'echo done\n') % (log, tmp_path, tmp_path)
    r = restic.Restic("/srv/r", password="pw", binary=stand_in(tmp_path, script))
    assert r.call("forget", "abc") == "done\n"
    assert log.read_text().split() == ["forget", "unlock", "forget"]


def test_a_live_lock_stays_and_is_named(tmp_path):
    script = ('[ "$1" = unlock ] && exit 0\n'
              'echo "Fatal: unable to create lock in backend: repository is already locked by PID 42" >&2; exit 1\n')
    r = restic.Restic("/srv/r", password="pw", binary=stand_in(tmp_path, script))
    with pytest.raises(DockerError, match="locked by another restic process"):
        r.call("prune")


# -- the full id of a new snapshot ------------------------------------------------------------------

@pytest.mark.parametrize("repository,expected", [
    ("/srv/backup", "/srv/backup"),
    ("local:/srv/backup", "/srv/backup"),
    ("relative/dir", None),
    ("s3:http://127.0.0.1:5380/bucket", None),
    ("sftp:backup@host:/srv/backup", None),
    ("rest:http://host:8000/", None),
    ("", None),
])
def test_local_directory(repository, expected):
    assert restic.local_directory(repository) == expected


def test_full_snapshot_id_from_a_local_repository(tmp_path):
    ids = ["0a1b2c3d" + "e" * 56, "0a1b2c3f" + "1" * 56, "0a1b2c3f" + "2" * 56]
    (tmp_path / "snapshots").mkdir()
    for name in ids + ["0a1b2c3dnot-an-id"]:
        (tmp_path / "snapshots" / name).write_text("")
    assert restic.full_snapshot_id(str(tmp_path), "0a1b2c3d") == ids[0]
    assert restic.full_snapshot_id("local:" + str(tmp_path), "0a1b2c3d") == ids[0]
    assert restic.full_snapshot_id(str(tmp_path), "0a1b2c3f") is None  # two match: looked up instead
    assert restic.full_snapshot_id(str(tmp_path), "ffffffff") is None
    assert restic.full_snapshot_id(str(tmp_path), "../x") is None
    assert restic.full_snapshot_id(str(tmp_path / "missing"), "0a1b2c3d") is None
    assert restic.full_snapshot_id("s3:http://127.0.0.1:5380/b", "0a1b2c3d") is None
