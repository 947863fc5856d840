"""jobstate.py: a job's state after each run, its node_exporter textfile, the webhook's body, the age and
staleness read back."""

import json
import re

import pytest

from ansible_collections.persist.docker.plugins.module_utils import jobstate
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


def run(**changes):
    values = dict(job="pg-nightly", kind="backup", volume="pgdata", host="db1", started=1000.0, ended=1042.5,
                  result="ok", message=None, bytes_added=123, digest="sha256:" + "a" * 64, snapshot_id="abc")
    values.update(changes)
    return values


# -- names -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a", "pg-nightly", "0.db_1-x", "a" * 100])
def test_usable_job_names(name):
    assert jobstate.check_job(name) == name
    assert jobstate.state_name(name) == name + ".json"
    assert jobstate.textfile_name(name) == "persist_docker_%s.prom" % name


@pytest.mark.parametrize("name", ["", ".", "..", "-a", "_a", "A", "a/b", "../x", "a b", "a\n", "a" * 101, None, 7])
def test_unusable_job_names(name):
    with pytest.raises(DockerError, match="is not usable"):
        jobstate.check_job(name)


# -- the state -------------------------------------------------------------------------------------

def test_first_success():
    state = jobstate.merge(None, run())
    assert state == dict(
        job="pg-nightly", kind="backup", volume="pgdata", host="db1",
        last_run=dict(started=1000.0, ended=1042.5, result="ok", message="", duration_seconds=42.5),
        last_success=dict(time=1042.5, duration_seconds=42.5, bytes_added=123, digest="sha256:" + "a" * 64,
                          snapshot_id="abc"),
        runs=1, failures_in_a_row=0)


def test_a_failure_keeps_the_last_success_and_counts():
    first = jobstate.merge(None, run())
    second = jobstate.merge(first, run(started=2000, ended=2010, result="failed", message="boom", bytes_added=None))
    third = jobstate.merge(second, run(started=3000, ended=3001, result="failed", message="again"))
    assert third["last_success"] == first["last_success"]
    assert third["last_run"] == dict(started=3000.0, ended=3001.0, result="failed", message="again",
                                     duration_seconds=1.0)
    assert (third["runs"], third["failures_in_a_row"]) == (3, 2)
    fourth = jobstate.merge(third, run(started=4000, ended=4100, bytes_added=7))
    assert fourth["last_success"]["time"] == 4100.0 and fourth["last_success"]["bytes_added"] == 7
    assert (fourth["runs"], fourth["failures_in_a_row"]) == (4, 0)


def test_a_job_that_never_succeeded_has_no_last_success():
    state = jobstate.merge(None, run(result="failed"))
    assert state["last_success"] is None and state["failures_in_a_row"] == 1


def test_a_clock_set_back_gives_no_negative_duration():
    assert jobstate.merge(None, run(started=2000, ended=1990))["last_run"]["duration_seconds"] == 0.0


def test_a_long_message_is_cut():
    state = jobstate.merge(None, run(message="x" * 10000, result="failed"))
    assert len(state["last_run"]["message"]) == jobstate.MESSAGE_LIMIT
    assert state["last_run"]["message"].endswith("...")


@pytest.mark.parametrize("started", [0, -1, float("nan"), float("inf")])
def test_a_start_that_is_no_unix_time_is_refused(started):
    with pytest.raises(DockerError, match="started must be the unix time"):
        jobstate.merge(None, run(started=started))


def test_an_unknown_result_is_refused():
    with pytest.raises(DockerError, match="result must be one of ok, failed"):
        jobstate.merge(None, run(result="maybe"))


def test_a_state_file_read_back():
    state = jobstate.merge(None, run())
    assert jobstate.read_state(jobstate.dumps(state), "pg-nightly", "/x/pg-nightly.json") == state


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '{"job": "other", "last_run": {}}', '{"job": "pg-nightly"}',
                                  '{"job": "pg-nightly", "last_run": {}, "last_success": 3}'])
def test_a_state_file_that_is_not_the_jobs(text):
    with pytest.raises(DockerError, match=r"^/x/pg-nightly.json is not the state of job 'pg-nightly'"):
        jobstate.read_state(text, "pg-nightly", "/x/pg-nightly.json")


# -- the textfile ----------------------------------------------------------------------------------

SAMPLE = re.compile(r'^([a-z_]+)\{((?:[a-z]+="(?:[^"\\\n]|\\\\|\\"|\\n)*",?)*)\} (\S+)$')


def parsed(text):
    """{metric: (labels dict, value)} of a textfile, checking the exposition format's lines on the way: each sample
    preceded by its HELP and TYPE, label values unescaped."""
    assert text.endswith("\n") and "\n\n" not in text
    lines = text.splitlines()
    samples = {}
    for i in range(0, len(lines), 3):
        help_line, type_line, sample = lines[i:i + 3]
        match = SAMPLE.match(sample)
        assert match, sample
        name = match.group(1)
        assert help_line.startswith("# HELP %s " % name) and type_line == "# TYPE %s gauge" % name
        pairs = re.findall(r'([a-z]+)="((?:[^"\\]|\\.)*)"', match.group(2))
        unescaped = {k: re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v) for k, v in pairs}
        samples[name] = (unescaped, float(match.group(3)))
    return samples


def test_the_metrics_of_a_backup():
    state = jobstate.merge(None, run())
    samples = parsed(jobstate.metrics(state))
    labels = dict(job="pg-nightly", kind="backup", volume="pgdata")
    assert samples == {
        "persist_docker_backup_last_success_timestamp_seconds": (labels, 1042.5),
        "persist_docker_backup_duration_seconds": (labels, 42.5),
        "persist_docker_backup_bytes_added": (labels, 123.0),
        "persist_docker_backup_last_run_timestamp_seconds": (labels, 1042.5),
        "persist_docker_backup_last_run_success": (labels, 1.0),
    }


def test_the_metrics_after_a_failure_keep_the_success():
    state = jobstate.merge(jobstate.merge(None, run()), run(started=5000, ended=5003, result="failed"))
    samples = parsed(jobstate.metrics(state))
    assert samples["persist_docker_backup_last_success_timestamp_seconds"][1] == 1042.5
    assert samples["persist_docker_backup_last_run_timestamp_seconds"][1] == 5003.0
    assert samples["persist_docker_backup_last_run_success"][1] == 0.0


def test_a_backup_that_never_succeeded_has_age_zero_and_no_duration():
    samples = parsed(jobstate.metrics(jobstate.merge(None, run(result="failed"))))
    assert sorted(samples) == ["persist_docker_backup_last_run_success",
                               "persist_docker_backup_last_run_timestamp_seconds",
                               "persist_docker_backup_last_success_timestamp_seconds"]
    assert samples["persist_docker_backup_last_success_timestamp_seconds"][1] == 0.0


def test_bytes_not_given_are_left_out():
    samples = parsed(jobstate.metrics(jobstate.merge(None, run(bytes_added=None))))
    assert "persist_docker_backup_bytes_added" not in samples
    assert "persist_docker_backup_duration_seconds" in samples


@pytest.mark.parametrize("kind", ["drill", "retention", "gc"])
def test_the_metrics_of_the_other_kinds(kind):
    samples = parsed(jobstate.metrics(jobstate.merge(None, run(kind=kind))))
    assert sorted(samples) == ["persist_docker_%s_%s" % (kind, name) for name in
                               ("last_run_success", "last_run_timestamp_seconds", "last_success_timestamp_seconds")]


def test_a_job_without_volume_has_no_volume_label():
    samples = parsed(jobstate.metrics(jobstate.merge(None, run(kind="gc", volume=None))))
    assert samples["persist_docker_gc_last_run_success"][0] == dict(job="pg-nightly", kind="gc")


@pytest.mark.parametrize("volume", ['a"b', "a\\b", "a\nb", 'x\\"}\n{y="1', "ünï"])
def test_label_values_are_escaped(volume):
    text = jobstate.metrics(jobstate.merge(None, run(volume=volume)))
    assert len(text.splitlines()) == 15
    assert all(labels["volume"] == volume for labels, _value in parsed(text).values())


@pytest.mark.parametrize("value, text", [(0, "0"), (123, "123"), (True, "1"), (1042.5, "1042.5"),
                                         (1767225642.123, "1767225642.123"), (1e20, "1e+20")])
def test_numbers(value, text):
    assert jobstate.number(value) == text


# -- the webhook -----------------------------------------------------------------------------------

@pytest.mark.parametrize("result, notify_success, expected", [("failed", False, True), ("failed", True, True),
                                                              ("ok", False, False), ("ok", True, True)])
def test_who_is_notified(result, notify_success, expected):
    assert jobstate.notifies(result, notify_success) is expected


def test_the_webhook_body():
    state = jobstate.merge(None, run(result="failed", message="repository unreachable"))
    assert json.loads(jobstate.webhook_body(state)) == dict(job="pg-nightly", kind="backup", volume="pgdata",
                                                            host="db1", result="failed",
                                                            message="repository unreachable")


@pytest.mark.parametrize("url, where", [
    ("https://hooks.example.com/services/T0/B0/secret-token", "https://hooks.example.com"),
    ("http://user:pass@127.0.0.1:8080/x?token=s", "http://127.0.0.1:8080"),
    ("HTTPS://Example.com", "https://Example.com"),
    ("not a url", "the webhook"),
])
def test_where_a_webhook_is_says_no_secret(url, where):
    assert jobstate.webhook_where(url) == where


@pytest.mark.parametrize("url", ["https://h.example.com/x", "http://127.0.0.1:1/", "HTTP://[::1]:8080/a"])
def test_webhook_urls_taken(url):
    assert jobstate.check_webhook(url) == url


@pytest.mark.parametrize("url", ["ftp://h/x", "https:///x", "hooks.example.com/secret", "", "file:///etc/passwd"])
def test_webhook_urls_refused_without_saying_them(url):
    with pytest.raises(DockerError, match="webhook_url is not an http") as exc:
        jobstate.check_webhook(url)
    assert not url or url not in str(exc.value)


# -- read back -------------------------------------------------------------------------------------

def test_age_and_staleness():
    state = jobstate.merge(None, run())
    fresh = jobstate.info(state, now=1042.5 + 100, max_age=3600)
    assert fresh["age_seconds"] == 100.0 and fresh["stale"] is False
    assert jobstate.info(state, now=1042.5 + 3600, max_age=3600)["stale"] is False
    assert jobstate.info(state, now=1042.5 + 3600.5, max_age=3600)["stale"] is True
    assert jobstate.info(state, now=1042.5 + 100)["stale"] is None
    assert jobstate.info(state, now=1000)["age_seconds"] == 0.0  # a clock set back


def test_a_job_that_never_succeeded_is_stale_with_max_age():
    state = jobstate.merge(None, run(result="failed"))
    info = jobstate.info(state, now=2000, max_age=10 ** 9)
    assert info["age_seconds"] is None and info["stale"] is True and info["failures_in_a_row"] == 1
    assert jobstate.info(state, now=2000)["stale"] is None


def test_info_carries_the_state():
    state = jobstate.merge(jobstate.merge(None, run()), run(result="failed", message="m"))
    info = jobstate.info(state, now=5000, max_age=60)
    assert {k: info[k] for k in ("job", "kind", "volume", "host", "last_run", "last_success", "runs",
                                 "failures_in_a_row")} == {k: state[k] for k in ("job", "kind", "volume", "host",
                                                                                 "last_run", "last_success", "runs",
                                                                                 "failures_in_a_row")}


def test_a_job_that_never_ran():
    assert jobstate.never_ran("x", now=5, max_age=60) == dict(
        job="x", kind=None, volume=None, host=None, last_run=None, last_success=None, age_seconds=None, stale=True,
        runs=0, failures_in_a_row=0)
