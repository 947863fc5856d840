# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The state of a scheduled job (backup, drill, retention, gc): what its runs record, and what is read back.

A job's last task reports its run (``backup_job_report``); the state of the job is kept in one JSON file per
job, ``<state_dir>/<job>.json``, and the same state is written as a node_exporter textfile,
``<textfile_dir>/persist_docker_<job>.prom``; ``backup_job_info`` reads the JSON files back.

* :func:`check_job`, :func:`read_state` -- a job's name and its state file, checked.
* :func:`merge` -- the state after a run: the last run, the last success (kept from before when the run
  failed), the number of runs and of failures in a row.
* :func:`metrics` -- the textfile (HELP, TYPE and one sample per metric, label values escaped).
* :func:`webhook_body`, :func:`notifies`, :func:`webhook_where` -- the notification of a run.
* :func:`info` -- a state as ``backup_job_info`` returns it: the age of the last success, whether it is stale.

Everything here is pure: the modules read and write the files and call the webhook.
"""

from __future__ import annotations

import json
import math
import re

from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

KINDS = ("backup", "drill", "retention", "gc")
RESULTS = ("ok", "failed")
JOB = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")  # whole names: fullmatch
# a run's message is kept up to this many characters (the state, the webhook)
MESSAGE_LIMIT = 4000
PREFIX = "persist_docker_"
STATE_DIR = "/var/lib/persist-docker/jobs"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"

# (name, help, kinds) of each metric, in the order of the textfile; the value is taken by METRIC_VALUES
METRICS = (
    ("last_success_timestamp_seconds", "Unix time the last successful run of the job ended (0: never).", KINDS),
    ("duration_seconds", "Seconds the last successful run of the job took.", ("backup",)),
    ("bytes_added", "Bytes the last successful backup added to its destination.", ("backup",)),
    ("last_run_timestamp_seconds", "Unix time the last run of the job ended.", KINDS),
    ("last_run_success", "Whether the last run of the job succeeded (1) or failed (0).", KINDS),
)


def check_job(name):
    """name if it is a job's name (also its file name): lower-case letters, digits, ``_``, ``.`` and ``-``,
    starting with a letter or digit, at most 100 characters; else DockerError (pure)."""
    if not isinstance(name, str) or not JOB.fullmatch(name):
        raise DockerError("job name %r is not usable: give lower-case letters, digits, '_', '.' and '-', starting "
                          "with a letter or a digit, at most 100 characters (it names the job's files)" % (name,))
    return name


def state_name(job):
    return check_job(job) + ".json"


def textfile_name(job):
    return PREFIX + check_job(job) + ".prom"


def rounded(seconds):
    return round(float(seconds), 3)


def limited(message):
    """A run's message as it is kept: a string of at most MESSAGE_LIMIT characters (pure)."""
    text = "" if message is None else str(message)
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT - 3] + "..."


def read_state(text, job, where):
    """The state in a state file's text (pure): a dict; DockerError naming the file where it is not one of job."""
    try:
        state = json.loads(text)
    except ValueError:
        state = None
    if (not isinstance(state, dict) or state.get("job") != job or not isinstance(state.get("last_run"), dict)
            or not isinstance(state.get("last_success"), (dict, type(None)))):
        raise DockerError("%s is not the state of job '%s' (damaged, or written by something else); remove it, the "
                          "job's next run writes it again" % (where, job))
    return state


def dumps(state):
    """The text of a state file (pure)."""
    return json.dumps(state, indent=2, sort_keys=True) + "\n"


def merge(previous, run):
    """The state of a job after a run (pure).

    ``previous`` is the state before (None for the first run); ``run`` has ``job``, ``kind``, ``volume``, ``host``,
    ``started`` and ``ended`` (unix times), ``result`` (ok or failed), ``message`` and, for a success,
    ``bytes_added``, ``digest`` and ``snapshot_id`` (each may be None). A failed run keeps the previous last
    success. A duration is never negative (a clock set back meanwhile).
    """
    if run["result"] not in RESULTS:
        raise DockerError("result must be one of %s, got %r" % (", ".join(RESULTS), run["result"]))
    previous = previous or {}
    started, ended = float(run["started"]), float(run["ended"])
    if not (math.isfinite(started) and started > 0):
        raise DockerError("started must be the unix time the job started (seconds since 1970), got %r"
                          % (run["started"],))
    duration = rounded(max(0.0, ended - started))
    ok = run["result"] == "ok"
    last_run = dict(started=rounded(started), ended=rounded(ended), result=run["result"],
                    message=limited(run.get("message")), duration_seconds=duration)
    if ok:
        last_success = dict(time=rounded(ended), duration_seconds=duration, bytes_added=run.get("bytes_added"),
                            digest=run.get("digest"), snapshot_id=run.get("snapshot_id"))
    else:
        last_success = previous.get("last_success")
    return dict(job=check_job(run["job"]), kind=run["kind"], volume=run.get("volume"), host=run.get("host"),
                last_run=last_run, last_success=last_success, runs=int(previous.get("runs") or 0) + 1,
                failures_in_a_row=0 if ok else int(previous.get("failures_in_a_row") or 0) + 1)


def escape_label(value):
    """A label value as the text exposition format writes it between double quotes (pure)."""
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value):
    """A sample value as the text format writes it (pure): integers as they are, floats as Python's repr."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def metric_value(name, state):
    """The value of metric name for state, or None when it has none (pure)."""
    success = state.get("last_success") or {}
    last_run = state.get("last_run") or {}
    if name == "last_success_timestamp_seconds":
        return success.get("time", 0)
    if name == "duration_seconds":
        return success.get("duration_seconds")
    if name == "bytes_added":
        return success.get("bytes_added")
    if name == "last_run_timestamp_seconds":
        return last_run.get("ended")
    if name == "last_run_success":
        return 1 if last_run.get("result") == "ok" else 0
    raise KeyError(name)


def labels(state):
    """The labels of every sample of a job (pure): job, kind and, when the job has one, volume."""
    pairs = [("job", state["job"]), ("kind", state["kind"])]
    if state.get("volume") is not None:
        pairs.append(("volume", state["volume"]))
    return "{%s}" % ",".join('%s="%s"' % (k, escape_label(v)) for k, v in pairs)


def metrics(state):
    """The node_exporter textfile of a job's state (pure): per metric of its kind, HELP, TYPE (gauge) and one
    sample, named ``persist_docker_<kind>_<metric>``; a metric without a value (no success yet: its duration,
    its bytes) is left out. A job that never succeeded has a last success time of 0, so that an alert on its age
    fires."""
    lines = []
    for name, text, kinds in METRICS:
        value = metric_value(name, state)
        if state["kind"] not in kinds or value is None:
            continue
        full = "%s%s_%s" % (PREFIX, state["kind"], name)
        lines += ["# HELP %s %s" % (full, text), "# TYPE %s gauge" % full, "%s%s %s" % (full, labels(state),
                                                                                        number(value))]
    return "\n".join(lines) + "\n"


def notifies(result, notify_success):
    """Whether a run calls the webhook (pure): a failure always, a success when asked."""
    return result == "failed" or bool(notify_success)


def webhook_body(state):
    """The JSON body the webhook receives for a job's last run (pure), as bytes."""
    body = dict(job=state["job"], kind=state["kind"], volume=state.get("volume"), host=state.get("host"),
                result=state["last_run"]["result"], message=state["last_run"]["message"])
    return json.dumps(body, sort_keys=True).encode("utf-8")


def webhook_where(url):
    """What a message may say of a webhook URL (pure): its scheme and host, without the user, password, path or
    query, any of which may hold a token."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://(?:[^@/?#]*@)?([^/?#]*)", url or "")
    return "%s://%s" % (match.group(1).lower(), match.group(2)) if match else "the webhook"


def check_webhook(url):
    """url if it is an http or https URL with a host (pure); DockerError otherwise, without the URL itself."""
    if not re.match(r"^https?://(?:[^@/?#]*@)?[^@/?#:]+", url or "", re.IGNORECASE):
        raise DockerError("webhook_url is not an http:// or https:// URL with a host; give the URL the receiver "
                          "listens on")
    return url


def info(state, now, max_age=None):
    """A job's state as backup_job_info returns it (pure): with ``age_seconds``, the seconds since its last
    success (null if it never succeeded; never negative), and ``stale``: with max_age, whether it never
    succeeded or its last success is older than max_age seconds; null without max_age."""
    success = state.get("last_success")
    age = rounded(max(0.0, now - float(success["time"]))) if success else None
    stale = None
    if max_age is not None:
        stale = age is None or age > max_age
    return dict(job=state.get("job"), kind=state.get("kind"), volume=state.get("volume"), host=state.get("host"),
                last_run=state.get("last_run"), last_success=success, age_seconds=age, stale=stale,
                runs=state.get("runs", 0), failures_in_a_row=state.get("failures_in_a_row", 0))


def never_ran(job, now, max_age=None):
    """info() of a job asked for by name that has no state file (pure): it never reported a run."""
    return info(dict(job=job, kind=None, volume=None, host=None, last_run=None, last_success=None, runs=0,
                     failures_in_a_row=0), now, max_age)
