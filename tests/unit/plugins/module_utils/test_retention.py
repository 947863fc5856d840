"""retention.py: the policy options, restic 0.14's dry-run plan read back, and the manifest snapshots that go with
it, on real output (fixtures/restic: a repository made with restic 0.14.0 by the snapshot convention, volume
web_data from the engines engine-a (UTC) and engine-b (Europe/Berlin), two orphan manifests, one untagged
snapshot; ``forget --no-lock --dry-run --json --tag persist.docker.volume=web_data --group-by host`` with
``--keep-daily 2`` and ``--keep-within 2d``)."""

import json
import pathlib

import pytest

from ansible_collections.persist.docker.plugins.module_utils import restic, retention
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "restic"
SUBJECT = "restic repository 'x'"


def fixture(name):
    return (FIXTURES / name).read_text()


def snapshots():
    return restic.parse_snapshots(fixture("snapshots_convention.json"), SUBJECT)


def by_run(snapshot_list):
    return {s["run"]: s for s in snapshot_list}


# -- the policy ------------------------------------------------------------------------------------

@pytest.mark.parametrize("policy, args", [
    (dict(keep_daily=7), ["--keep-daily", "7"]),
    (dict(keep_last=1, keep_hourly=2, keep_daily=3, keep_weekly=4, keep_monthly=5, keep_yearly=6, keep_within="1y"),
     ["--keep-last", "1", "--keep-hourly", "2", "--keep-daily", "3", "--keep-weekly", "4", "--keep-monthly", "5",
      "--keep-yearly", "6", "--keep-within", "1y"]),
    (dict(keep_last=0, keep_weekly=None, keep_monthly=2), ["--keep-monthly", "2"]),
    (dict(keep_within="1y2m3d4h"), ["--keep-within", "1y2m3d4h"]),
])
def test_policy_args(policy, args):
    assert retention.policy_args(policy) == args


@pytest.mark.parametrize("policy, match", [
    (dict(), "keeps no snapshot, so it would remove every backup"),
    (dict(keep_last=0, keep_daily=0), "give at least one of keep_last, keep_hourly"),
    (dict(keep_last=None), "keeps no snapshot"),
    (dict(keep_daily=-1), "keep_daily must be 0 or more, got -1"),
    (dict(keep_last=2, keep_yearly=-1), "keep_yearly must be 0 or more"),
    (dict(keep_last=2, keep_within="0d"), "is zero and keeps no snapshot"),
])
def test_policy_refused(policy, match):
    with pytest.raises(DockerError, match=match):
        retention.policy_args(policy)


@pytest.mark.parametrize("value", ["7d", "36h", "1y", "2m", "1y2m3d4h", "4h3d", "007d", "999999999y"])
def test_within_restic_reads(value):
    assert retention.check_within(value) == value


@pytest.mark.parametrize("value, match", [
    ("", "is not a duration as restic reads it"),
    ("7", "is not a duration"),
    ("1w", "no unit for weeks or minutes"),
    ("1D", "is not a duration"),
    ("-1d", "is not a duration"),  # restic 0.14 takes it, and keeps nothing
    (" 1d", "is not a duration"),
    ("1d ", "is not a duration"),
    ("1.5d", "is not a duration"),
    ("10000000000d", "is not a duration"),  # restic 0.14 panics on a number beyond 64 bits
    ("1d1d", "gives a unit twice"),
    ("0d", "is zero and keeps no snapshot"),
    ("0y0m0d0h", "is zero"),
])
def test_within_refused(value, match):
    with pytest.raises(DockerError, match=match):
        retention.check_within(value)


# -- times -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, ns", [
    ("1970-01-01T00:00:00Z", 0),
    ("2024-03-04T10:00:00+01:00", 1709542800 * 10**9),
    ("2024-03-04T09:00:00Z", 1709542800 * 10**9),
    ("2024-03-04T04:30:00-04:30", 1709542800 * 10**9),
    ("2026-12-03T03:34:23.575896882Z", 1796268863 * 10**9 + 575896882),
    ("2026-12-03T03:34:23.5Z", 1796268863 * 10**9 + 500000000),
])
def test_time_ns(text, ns):
    assert retention.time_ns(text) == ns


def test_time_ns_keeps_nanoseconds_apart():
    assert retention.time_ns("2024-01-01T00:00:00.000000001Z") < retention.time_ns("2024-01-01T00:00:00.000000002Z")


@pytest.mark.parametrize("text", [None, "", "2024-03-04", "2024-03-04T10:00:00", "yesterday"])
def test_time_ns_refuses(text):
    with pytest.raises(DockerError, match="is not an RFC 3339 time"):
        retention.time_ns(text)


# -- restic's plan ---------------------------------------------------------------------------------

def test_parse_forget_of_restic_0_14():
    groups = retention.parse_forget(fixture("forget_keep_daily_2.json"), SUBJECT)
    assert [g["host"] for g in groups] == ["engine-a", "engine-b"]
    a, b = groups
    assert [(s["short_id"], s["run"], s["reasons"]) for s in a["keep"]] == [
        ("5d4868c1", "run-a4", ["daily snapshot"]), ("28ddc8dd", "run-a2", ["daily snapshot"])]
    assert [(s["short_id"], s["run"]) for s in a["remove"]] == [("6446a46d", "run-a3"), ("7e2d8d23", "run-a1")]
    assert [s["run"] for s in b["keep"]] == ["run-b2", "run-b1"]
    assert b["remove"] == []  # restic prints "remove": null
    assert all(s["volume"] == "web_data" and len(s["id"]) == 64 for g in groups for s in g["keep"] + g["remove"])


@pytest.mark.parametrize("text", ["", "\n", "null\n"])
def test_parse_forget_nothing_matched(text):
    """restic 0.14 prints nothing when the tag selects no snapshot."""
    assert retention.parse_forget(text, SUBJECT) == []


@pytest.mark.parametrize("text", ["{}", "not json", '[{"keep": [{"time": "2024-01-01T00:00:00Z"}]}]', "[1]"])
def test_parse_forget_refuses_other_output(text):
    with pytest.raises(DockerError, match="restic repository 'x': restic's 'forget --dry-run --json' printed"):
        retention.parse_forget(text, SUBJECT)


def test_reasons_follow_their_snapshot():
    data = json.loads(fixture("forget_keep_daily_2.json"))
    data[0]["reasons"].reverse()
    groups = retention.parse_forget(json.dumps(data), SUBJECT)
    assert [s["reasons"] for s in groups[0]["keep"]] == [[], []]


def test_volumes_of():
    assert retention.volumes_of(snapshots()) == ["web_data"]
    assert retention.volumes_of([dict(volume="b"), dict(volume=None), dict(volume="a"), dict(volume="b")]) == ["a", "b"]


# -- the plan --------------------------------------------------------------------------------------

def test_plan_keep_daily_2():
    groups = retention.parse_forget(fixture("forget_keep_daily_2.json"), SUBJECT)
    planned = retention.plan("web_data", groups, snapshots())
    assert [(r["kind"], r["run"], r["short_id"]) for r in planned["removed"]] == [
        ("data", "run-a1", "7e2d8d23"), ("data", "run-a3", "6446a46d"),
        ("manifest", "run-orphan-old", "abad16aa"), ("manifest", "run-a1", "6f3bdd50"),
        ("manifest", "run-a3", "3a1c39ad")]
    assert {r["hostname"] for r in planned["removed"]} == {"engine-a"}
    assert {r["volume"] for r in planned["removed"]} == {"web_data"}
    assert [(k["run"], k["hostname"]) for k in planned["kept"]] == [
        ("run-b1", "engine-b"), ("run-a2", "engine-a"), ("run-a4", "engine-a"), ("run-b2", "engine-b")]
    assert planned["kept"][0]["time"] == "2024-03-01T10:00:00+01:00"
    assert planned["kept"][0]["reasons"] == ["daily snapshot"]
    every = {s["id"] for s in snapshots()}
    untagged = {s["id"] for s in snapshots() if not s["tags"]}
    assert len(untagged) == 1
    assert set(planned["considered"]) == every - untagged


def test_plan_keep_within_counts_from_the_newest_of_each_host():
    groups = retention.parse_forget(fixture("forget_keep_within_2d.json"), SUBJECT)
    planned = retention.plan("web_data", groups, snapshots())
    assert [(r["kind"], r["run"]) for r in planned["removed"]] == [
        ("data", "run-b1"), ("data", "run-a1"),
        ("manifest", "run-orphan-old"), ("manifest", "run-b1"), ("manifest", "run-a1")]
    assert [k["run"] for k in planned["kept"]] == ["run-a2", "run-a3", "run-a4", "run-b2"]
    assert {k["reasons"][0] for k in planned["kept"]} == {"within 2d"}


def test_plan_removes_no_snapshot_outside_the_convention():
    groups = retention.parse_forget(fixture("forget_keep_daily_2.json"), SUBJECT)
    removed = {r["id"] for r in retention.plan("web_data", groups, snapshots())["removed"]}
    for s in snapshots():
        if not (s["volume"] or s["manifest_of"]):
            assert s["id"] not in removed


def snap(id_, time, host="h", volume=None, manifest_of=None, run=None):
    return dict(id=id_ * 64, short_id=id_ * 8, time=time, hostname=host, volume=volume, manifest_of=manifest_of,
                run=run)


def data(id_, time, run, host="h"):
    return snap(id_, time, host, volume="v", run=run)


def manifest(id_, time, run, host="h", volume="v"):
    return snap(id_, time, host, manifest_of=volume, run=run)


@pytest.mark.parametrize("case, keep, remove, manifests, going", [
    ("the manifest of a removed run goes, that of a kept run stays",
     [data("a", "2024-01-02T00:00:00Z", "r2")], [data("b", "2024-01-01T00:00:00Z", "r1")],
     [manifest("c", "2024-01-01T00:01:00Z", "r1"), manifest("d", "2024-01-02T00:01:00Z", "r2")], ["c"]),
    ("an orphan older than the newest data snapshot goes, even when that one is removed",
     [data("a", "2024-01-02T00:00:00Z", "r2")], [data("b", "2024-01-03T00:00:00Z", "r3")],
     [manifest("c", "2024-01-02T12:00:00Z", "r-old")], ["c"]),
    ("an orphan newer than the newest data snapshot stays (a backup that is writing it)",
     [data("a", "2024-01-02T00:00:00Z", "r2")], [],
     [manifest("c", "2024-01-02T00:00:01Z", "r-new")], []),
    ("an orphan as old as the newest data snapshot stays",
     [data("a", "2024-01-02T00:00:00Z", "r2")], [],
     [manifest("c", "2024-01-02T01:00:00+01:00", "r-same")], []),
    ("an orphan is compared with the newest data snapshot of its own host",
     [data("a", "2024-01-09T00:00:00Z", "r2", host="h1"), data("b", "2024-01-01T00:00:00Z", "r1", host="h2")], [],
     [manifest("c", "2024-01-05T00:00:00Z", "r-x", host="h2"), manifest("d", "2024-01-05T00:00:00Z", "r-y", host="h1")],
     ["d"]),
    ("an orphan of a host without data snapshots stays",
     [data("a", "2024-01-09T00:00:00Z", "r2", host="h1")], [],
     [manifest("c", "2024-01-01T00:00:00Z", "r-x", host="h3")], []),
    ("a run with one data snapshot kept and one removed keeps its manifest",
     [data("a", "2024-01-02T00:00:00Z", "r1")], [data("b", "2024-01-01T00:00:00Z", "r1")],
     [manifest("c", "2024-01-02T00:01:00Z", "r1")], []),
    ("the manifests of another volume stay",
     [data("a", "2024-01-02T00:00:00Z", "r2")], [data("b", "2024-01-01T00:00:00Z", "r1")],
     [manifest("c", "2024-01-01T00:01:00Z", "r1", volume="w"), manifest("d", "2023-01-01T00:00:00Z", "r0", volume="w")],
     []),
    ("a manifest snapshot without a run tag stays",
     [data("a", "2024-01-02T00:00:00Z", "r2")], [data("b", "2024-01-01T00:00:00Z", None)],
     [manifest("c", "2023-01-01T00:00:00Z", None)], []),
    ("nothing to decide without data snapshots",
     [], [], [manifest("c", "2023-01-01T00:00:00Z", "r1")], []),
])
def test_plan_manifests(case, keep, remove, manifests, going):
    groups = [dict(host="h", keep=keep, remove=remove)]
    planned = retention.plan("v", groups, keep + remove + manifests)
    assert [r["id"][:1] for r in planned["removed"] if r["kind"] == "manifest"] == going, case
    assert [r["id"] for r in planned["removed"] if r["kind"] == "data"] == [s["id"] for s in remove], case


def test_plan_order_is_by_time_not_by_text():
    """restic prints each snapshot's time in the zone it was made in: 10:00+01:00 is before 09:30Z."""
    remove = [data("a", "2024-01-01T09:30:00Z", "r1"), data("b", "2024-01-01T10:00:00+01:00", "r2")]
    planned = retention.plan("v", [dict(host="h", keep=[data("c", "2024-02-01T00:00:00Z", "r3")], remove=remove)],
                             remove)
    assert [r["id"][:1] for r in planned["removed"]] == ["b", "a"]


def test_batches():
    assert retention.batches([]) == []
    assert retention.batches("abcde", size=2) == [["a", "b"], ["c", "d"], ["e"]]
    assert [len(b) for b in retention.batches(range(450))] == [200, 200, 50]
