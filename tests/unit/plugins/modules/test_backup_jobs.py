"""backup_job_report and backup_job_info as whole modules, without the Docker SDK, on a temporary directory, with a
webhook receiver on the loopback (a real HTTP server on a free port, in a thread)."""

import json
import os
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

TOKEN = "s3cr3t-t0ken"


class Receiver(BaseHTTPRequestHandler):
    status = 204

    def do_POST(self):  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.calls.append(dict(path=self.path, body=json.loads(body), type=self.headers.get("Content-Type")))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.calls = []
    server.status = 204
    thread = threading.Thread(target=server.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True)
    thread.start()
    server.url = "http://127.0.0.1:%d/hooks/%s" % (server.server_address[1], TOKEN)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def dirs(tmp_path):
    return dict(state_dir=str(tmp_path / "state" / "jobs"), textfile_dir=str(tmp_path / "textfiles"))


def run(capsys, module, **args):
    before = len(WARNED)
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    result = json.loads(capsys.readouterr().out)
    result["_warned"] = WARNED[before:]
    return result


def report(capsys, without_sdk, dirs, **args):
    values = dict(job="pg-nightly", kind="backup", volume="pgdata", result="ok", started=time.time() - 5, **dirs)
    values.update(args)
    return run(capsys, without_sdk("modules.backup_job_report"), **values)


def info(capsys, without_sdk, **args):
    return run(capsys, without_sdk("modules.backup_job_info"), **args)


# The warnings the modules give, in order: where they go from AnsibleModule.warn depends on what else the process
# imported (with ansible's controller code loaded, they are displayed, not returned), so they are taken there.
WARNED = []


@pytest.fixture(autouse=True)
def warned(monkeypatch):
    real_warn = AnsibleModule.warn

    def warn(self, warning, *args, **kwargs):
        WARNED.append(warning)
        return real_warn(self, warning, *args, **kwargs)
    monkeypatch.setattr(AnsibleModule, "warn", warn)
    WARNED.clear()


def warnings(result):
    """The warnings of the module run that gave result."""
    return result["_warned"]


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def listing(tmp_path):
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))


# -- backup_job_report -----------------------------------------------------------------------------

def test_check_mode_writes_nothing_and_predicts_the_real_run(capsys, without_sdk, dirs, tmp_path, receiver):
    args = dict(result="failed", msg="repository unreachable", webhook_url=receiver.url)
    checked = report(capsys, without_sdk, dirs, _ansible_check_mode=True, _ansible_diff=True, **args)
    assert "failed" not in checked, checked
    assert listing(tmp_path) == [] and receiver.calls == []
    real = report(capsys, without_sdk, dirs, _ansible_diff=True, **args)
    assert checked["changed"] is real["changed"] is True
    assert checked["actions"] == real["actions"] == [
        "created directory %s" % dirs["state_dir"], "wrote %s/pg-nightly.json" % dirs["state_dir"],
        "created directory %s" % dirs["textfile_dir"], "wrote %s/persist_docker_pg-nightly.prom" % dirs["textfile_dir"],
        "called the webhook at http://127.0.0.1:%d" % receiver.server_address[1]]
    assert checked["webhook"] == dict(notify=True, status=None, error=None)
    assert real["webhook"] == dict(notify=True, status=204, error=None)
    assert {k: v for k, v in checked["state"].items() if k != "last_run"} == \
        {k: v for k, v in real["state"].items() if k != "last_run"}
    assert [d["before"] for d in checked["diff"]] == ["", ""]
    assert checked["diff"][1]["after_header"] == real["textfile_path"]


def test_a_real_run_writes_the_state_and_the_textfile(capsys, without_sdk, dirs):
    result = report(capsys, without_sdk, dirs, bytes_added=4096, snapshot_id="d9d6130f", started=1767225600.0)
    assert "failed" not in result, result
    state_path, textfile_path = result["state_path"], result["textfile_path"]
    assert state_path == os.path.join(dirs["state_dir"], "pg-nightly.json")
    assert textfile_path == os.path.join(dirs["textfile_dir"], "persist_docker_pg-nightly.prom")
    assert (mode(state_path), mode(textfile_path)) == (0o600, 0o644)
    assert (mode(dirs["state_dir"]), mode(dirs["textfile_dir"])) == (0o700, 0o755)
    with open(state_path) as f:
        state = json.load(f)
    assert state == result["state"]
    assert state["last_success"]["bytes_added"] == 4096 and state["last_success"]["snapshot_id"] == "d9d6130f"
    assert state["last_run"]["started"] == 1767225600.0 and state["runs"] == 1
    with open(textfile_path) as f:
        text = f.read()
    assert text == result["metrics"]
    assert 'persist_docker_backup_bytes_added{job="pg-nightly",kind="backup",volume="pgdata"} 4096\n' in text
    assert result["webhook"] == dict(notify=False, status=None, error=None)
    assert not [n for d in dirs.values() for n in os.listdir(d) if n.endswith(".tmp")]


def test_runs_add_up_and_a_failure_keeps_the_success(capsys, without_sdk, dirs, receiver):
    first = report(capsys, without_sdk, dirs, bytes_added=10, webhook_url=receiver.url)
    second = report(capsys, without_sdk, dirs, result="failed", msg="boom", webhook_url=receiver.url,
                    _ansible_diff=True)
    assert second["state"]["last_success"] == first["state"]["last_success"]
    assert (second["state"]["runs"], second["state"]["failures_in_a_row"]) == (2, 1)
    assert json.loads(second["diff"][0]["before"]) == first["state"]
    assert second["diff"][1]["before"] == first["metrics"]
    assert "persist_docker_backup_last_run_success{" in second["metrics"]
    assert second["metrics"].splitlines()[-1].endswith(" 0")
    assert [c["body"] for c in receiver.calls] == [dict(job="pg-nightly", kind="backup", volume="pgdata",
                                                        host=second["state"]["host"], result="failed", message="boom")]
    assert receiver.calls[0]["type"] == "application/json" and receiver.calls[0]["path"] == "/hooks/" + TOKEN


def test_notify_success(capsys, without_sdk, dirs, receiver):
    result = report(capsys, without_sdk, dirs, kind="drill", webhook_url=receiver.url, notify_success=True)
    assert result["webhook"]["status"] == 204
    assert [c["body"]["result"] for c in receiver.calls] == ["ok"]
    assert [c["body"]["kind"] for c in receiver.calls] == ["drill"]


@pytest.mark.parametrize("status", [500, 404, 302])
def test_a_webhook_that_answers_an_error_warns(capsys, without_sdk, dirs, receiver, status):
    receiver.status = status
    result = report(capsys, without_sdk, dirs, result="failed", msg="m", webhook_url=receiver.url)
    assert "failed" not in result, result
    assert result["webhook"]["status"] == status and "HTTP Error %d" % status in result["webhook"]["error"]
    [warning] = warnings(result)
    assert warning.startswith("the webhook at http://127.0.0.1:%d failed: " % receiver.server_address[1])
    assert os.path.exists(result["state_path"]) and len(receiver.calls) == 1
    assert TOKEN not in json.dumps(result)


def test_a_webhook_that_cannot_be_reached_warns_without_its_token(capsys, without_sdk, dirs, receiver):
    port = receiver.server_address[1]
    receiver.shutdown()
    receiver.server_close()
    result = report(capsys, without_sdk, dirs, result="failed", webhook_url=receiver.url, webhook_timeout=2)
    assert "failed" not in result, result
    assert result["webhook"]["status"] is None and "failed" in result["webhook"]["error"]
    assert warnings(result)[0].startswith("the webhook at http://127.0.0.1:%d failed" % port)
    assert TOKEN not in json.dumps(result)
    assert result["state"]["failures_in_a_row"] == 1


def test_a_webhook_that_does_not_answer_in_time_warns(capsys, without_sdk, dirs, receiver):
    def slow(handler):
        time.sleep(3)
    Receiver.do_POST, original = slow, Receiver.do_POST
    try:
        began = time.monotonic()
        result = report(capsys, without_sdk, dirs, result="failed", webhook_url=receiver.url, webhook_timeout=1)
        assert time.monotonic() - began < 3
    finally:
        Receiver.do_POST = original
    assert "failed" not in result, result
    assert "timed out" in result["webhook"]["error"]


def test_a_state_file_replaced_by_a_symlink_is_written_again_not_followed(capsys, without_sdk, dirs, tmp_path):
    report(capsys, without_sdk, dirs)
    target = tmp_path / "precious"
    target.write_text("keep me")
    state_path = os.path.join(dirs["state_dir"], "pg-nightly.json")
    os.unlink(state_path)
    os.symlink(target, state_path)
    textfile = os.path.join(dirs["textfile_dir"], "persist_docker_pg-nightly.prom")
    os.unlink(textfile)
    os.symlink(target, textfile)
    result = report(capsys, without_sdk, dirs)
    assert "failed" not in result, result
    assert "is a symbolic link or not a regular file" in warnings(result)[0]
    assert target.read_text() == "keep me"
    assert not os.path.islink(state_path) and not os.path.islink(textfile)
    assert result["state"]["runs"] == 1


def test_a_damaged_state_file_warns_and_starts_again(capsys, without_sdk, dirs):
    report(capsys, without_sdk, dirs)
    with open(os.path.join(dirs["state_dir"], "pg-nightly.json"), "w") as f:
        f.write("{damaged")
    result = report(capsys, without_sdk, dirs)
    assert "is not the state of job 'pg-nightly'" in warnings(result)[0]
    assert result["state"]["runs"] == 1


def test_a_planted_temporary_symlink_is_refused(capsys, without_sdk, dirs, tmp_path):
    os.makedirs(dirs["state_dir"])
    target = tmp_path / "precious"
    target.write_text("keep me")
    os.symlink(target, os.path.join(dirs["state_dir"], "pg-nightly.json.tmp"))
    result = report(capsys, without_sdk, dirs)
    assert result["failed"] is True and "is a symbolic link; refusing to write through it" in result["msg"]
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("which", ["state_dir", "textfile_dir"])
def test_directories_that_are_symlinks_or_files_are_refused(capsys, without_sdk, dirs, tmp_path, which):
    real = tmp_path / "real"
    real.mkdir()
    os.makedirs(os.path.dirname(dirs[which]), exist_ok=True)
    os.symlink(real, dirs[which])
    result = report(capsys, without_sdk, dirs)
    assert result["failed"] is True
    assert result["msg"] == "%s %s is a symbolic link; refusing to follow it, give the real directory" % (
        which, dirs[which])
    assert list(real.iterdir()) == []
    os.unlink(dirs[which])
    with open(dirs[which], "w") as f:
        f.write("")
    result = report(capsys, without_sdk, dirs)
    assert result["msg"] == "%s %s is not a directory; give a directory" % (which, dirs[which])


@pytest.mark.parametrize("args, msg", [
    (dict(job="../etc/passwd"), "job name '../etc/passwd' is not usable"),
    (dict(job="Upper"), "is not usable"),
    (dict(webhook_url="ftp://h/" + TOKEN), "webhook_url is not an http:// or https:// URL"),
    (dict(webhook_url="http://127.0.0.1:1/", webhook_timeout=0), "webhook_timeout must be at least 1 second"),
    (dict(bytes_added=-1), "bytes_added must be 0 or more, got -1"),
    (dict(started=0), "started must be the unix time the job started"),
    (dict(kind="nightly"), "value of kind must be one of: backup, drill, retention, gc"),
    (dict(result="maybe"), "value of result must be one of: ok, failed"),
])
def test_refused_options_write_nothing(capsys, without_sdk, dirs, tmp_path, args, msg):
    result = report(capsys, without_sdk, dirs, **args)
    assert result["failed"] is True and msg in result["msg"], result["msg"]
    assert TOKEN not in json.dumps(result)
    assert listing(tmp_path) == []


# -- backup_job_info -------------------------------------------------------------------------------

def test_info_of_the_jobs(capsys, without_sdk, dirs):
    report(capsys, without_sdk, dirs, job="a-backup", bytes_added=1)
    report(capsys, without_sdk, dirs, job="b-drill", kind="drill", result="failed", msg="health check failed")
    report(capsys, without_sdk, dirs, job="c-gc", kind="gc", volume=None, started=time.time() - 7200)
    with open(os.path.join(dirs["state_dir"], "c-gc.json")) as f:
        old = json.load(f)
    old["last_success"]["time"] -= 7200  # its last success two hours ago
    with open(os.path.join(dirs["state_dir"], "c-gc.json"), "w") as f:
        json.dump(old, f)
    for ignored in ("x.json.tmp", "Not-A-Job.json", "notes.txt"):
        with open(os.path.join(dirs["state_dir"], ignored), "w") as f:
            f.write("{")
    os.mkdir(os.path.join(dirs["state_dir"], "d.json"))
    result = info(capsys, without_sdk, state_dir=dirs["state_dir"], max_age=3600, _ansible_check_mode=True)
    assert "failed" not in result, result
    assert result["changed"] is False
    assert [j["job"] for j in result["jobs"]] == ["a-backup", "b-drill", "c-gc"]
    a, b, c = result["jobs"]
    assert a["stale"] is False and 0 <= a["age_seconds"] < 60 and a["last_success"]["bytes_added"] == 1
    assert b["stale"] is True and b["age_seconds"] is None and b["failures_in_a_row"] == 1
    assert b["last_run"]["message"] == "health check failed"
    assert c["stale"] is True and c["age_seconds"] >= 7200 and c["volume"] is None and c["kind"] == "gc"
    assert [j["job"] for j in result["jobs"] if j["stale"]] == ["b-drill", "c-gc"]
    without_max_age = info(capsys, without_sdk, state_dir=dirs["state_dir"])
    assert [j["stale"] for j in without_max_age["jobs"]] == [None, None, None]


def test_info_of_one_job_and_of_one_that_never_ran(capsys, without_sdk, dirs):
    report(capsys, without_sdk, dirs, job="a-backup")
    one = info(capsys, without_sdk, state_dir=dirs["state_dir"], job="a-backup", max_age=60)
    assert [j["job"] for j in one["jobs"]] == ["a-backup"] and one["jobs"][0]["stale"] is False
    never = info(capsys, without_sdk, state_dir=dirs["state_dir"], job="z-backup", max_age=60)
    assert never["jobs"] == [dict(job="z-backup", kind=None, volume=None, host=None, last_run=None,
                                  last_success=None, age_seconds=None, stale=True, runs=0, failures_in_a_row=0)]


def test_info_without_a_state_directory(capsys, without_sdk, tmp_path):
    result = info(capsys, without_sdk, state_dir=str(tmp_path / "missing"), max_age=60)
    assert result["jobs"] == [] and result["changed"] is False
    one = info(capsys, without_sdk, state_dir=str(tmp_path / "missing"), job="x", max_age=60)
    assert one["jobs"][0]["stale"] is True
    assert listing(tmp_path) == []


def test_info_fails_on_a_damaged_state_file_naming_it(capsys, without_sdk, dirs):
    report(capsys, without_sdk, dirs, job="a-backup")
    path = os.path.join(dirs["state_dir"], "a-backup.json")
    with open(path, "w") as f:
        f.write("[]")
    result = info(capsys, without_sdk, state_dir=dirs["state_dir"])
    assert result["failed"] is True
    assert result["msg"] == ("%s is not the state of job 'a-backup' (damaged, or written by something else); remove "
                             "it, the job's next run writes it again" % path)


@pytest.mark.parametrize("args, msg", [
    (dict(job="a/b"), "job name 'a/b' is not usable"),
    (dict(max_age=-1), "max_age must be 0 or more seconds, got -1"),
])
def test_info_refuses(capsys, without_sdk, dirs, args, msg):
    result = info(capsys, without_sdk, state_dir=dirs["state_dir"], **args)
    assert result["failed"] is True and msg in result["msg"]
