#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_job_report
short_description: Record the run of a scheduled job as its state, node_exporter metrics and a webhook call
version_added: 0.3.0
description:
  - The last task of a scheduled job (such as those the C(persist.docker.backup) role installs) reports how its
    run went. The job's state file C(<state_dir>/<job>.json) is updated - the last run, the last success (kept
    from before when this run failed), the number of runs and of failures in a row - and the same state is written
    as a node_exporter textfile C(<textfile_dir>/persist_docker_<job>.prom), so that a Prometheus alert on the age
    of the last success is all a user needs. M(persist.docker.backup_job_info) reads the state back.
  - Both files are written whole (a new temporary file, synced, renamed over the old one; never through a symbolic
    link), so node_exporter reads the old file or the new one, never a part of one. The state file has mode
    C(0600), the textfile C(0644).
  - Then, when the run failed (or with O(notify_success=true), also when it succeeded) and O(webhook_url) is given,
    the webhook receives a C(POST) with a JSON body C({"job", "kind", "volume", "host", "result", "message"}). A
    webhook that cannot be reached or answers with an error makes a warning, not a failed task - the job's own
    result is what counts, and the state and metrics are written before.
  - Needs no Docker engine, so it takes none of the connection options and is not in the action group
    C(persist.docker.docker).
extends_documentation_fragment:
  - persist.docker.attributes
attributes:
  check_mode:
    support: full
    description: Writes nothing and calls no webhook; returns the state and the textfile a real run would write, and
      whether it would call the webhook.
  diff_mode:
    support: full
    description: Shows the state file and the textfile before and after.
  idempotent:
    support: none
    description: Each run reports a new run of the job, so it always changes the state and reports a change.
options:
  job:
    description:
      - The job's name, unique on the host; it names the job's files and is the C(job) label of its metrics.
      - Lower-case letters, digits, C(_), C(.) and C(-), starting with a letter or a digit, at most 100 characters.
    type: str
    required: true
  kind:
    description: What the job does; it names the metrics (C(persist_docker_<kind>_...)).
    type: str
    required: true
    choices: [backup, drill, retention, gc]
  volume:
    description: The volume the job works on (the C(volume) label of its metrics); none for a registry's C(gc).
    type: str
  result:
    description: How the run went.
    type: str
    required: true
    choices: [ok, failed]
  msg:
    description:
      - What to say about the run, such as the error of the task that failed (C(ansible_failed_result.msg)); it is
        the C(message) of the state and of the webhook's body.
      - Kept up to 4000 characters.
      - Not called C(message), a name Ansible keeps for itself.
    type: str
  started:
    description:
      - The unix time (seconds since 1970, UTC) at which the run started, such as the job's first task sets it with
        C(now(utc=true).timestamp()).
      - The run ends when this module runs; the difference is its duration.
    type: float
    required: true
  bytes_added:
    description: Bytes the run added to its destination (a backup's C(bytes_added)); only recorded for a success.
    type: int
  digest:
    description: The manifest digest of what the run backed up or verified; only recorded for a success.
    type: str
  snapshot_id:
    description: The restic snapshot the run wrote or restored; only recorded for a success.
    type: str
  state_dir:
    description:
      - The directory of the jobs' state files; created with mode C(0700), with its missing parents, when it does
        not exist.
      - Refused when it is a symbolic link or not a directory.
    type: path
    default: /var/lib/persist-docker/jobs
  textfile_dir:
    description:
      - The directory of node_exporter's textfile collector (its C(--collector.textfile.directory)); created with
        mode C(0755), with its missing parents, when it does not exist.
      - Refused when it is a symbolic link or not a directory.
    type: path
    default: /var/lib/prometheus/node-exporter
  webhook_url:
    description:
      - An C(http://) or C(https://) URL that receives a C(POST) with the run's JSON body, on a failure and, with
        O(notify_success), on a success.
      - Treated as a secret, since it often holds a token; messages name only its scheme and host.
      - Redirects are not followed.
    type: str
  webhook_timeout:
    description: Seconds the webhook may take to answer.
    type: int
    default: 10
  notify_success:
    description: Call the webhook after a successful run too.
    type: bool
    default: false
notes:
  - 'The metrics, all gauges, each with the labels C(job), C(kind) and (when given) C(volume):
    C(persist_docker_<kind>_last_success_timestamp_seconds) (when the last successful run ended; C(0) when the job
    never succeeded, so an alert on its age fires), C(persist_docker_<kind>_last_run_timestamp_seconds) and
    C(persist_docker_<kind>_last_run_success) (C(1) or C(0)) for every kind; for a C(backup), also
    C(persist_docker_backup_duration_seconds) and C(persist_docker_backup_bytes_added) of the last success (left out
    until the job has one, and the bytes when they were not given).'
  - Prometheus sets the label C(job) of every series it scrapes to the name of its scrape job, so the C(job) label
    of these metrics arrives as C(exported_job), unless the scrape job sets C(honor_labels) to true.
  - The time of a success is when its run ended, not when it started.
  - A state file that cannot be read as the job's state (damaged, or replaced by a symbolic link) makes a warning
    and is written again from this run; the job's counts start again.
seealso:
  - module: persist.docker.backup_job_info
  - module: persist.docker.volume_backup
  - name: node_exporter's textfile collector
    description: How node_exporter exports the metrics of files in a directory.
    link: https://github.com/prometheus/node_exporter#textfile-collector
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
# The tasks of a nightly backup job, a small local playbook that a timer runs
- name: When the job started
  ansible.builtin.set_fact:
    job_started: "{{ now(utc=true).timestamp() }}"

- name: The job
  block:
    - name: Back up the volume pgdata
      persist.docker.volume_backup:
        volume: pgdata
        repository: /srv/restic
        repository_password_file: /etc/persist-docker/restic-password
        quiesce: stop
      register: job_result
  rescue:
    - name: Report the failure, and call the webhook
      persist.docker.backup_job_report:
        job: pgdata-nightly
        kind: backup
        volume: pgdata
        result: failed
        msg: "{{ ansible_failed_result.msg | default('failed') }}"
        started: "{{ job_started }}"
        webhook_url: "{{ lookup('ansible.builtin.file', '/etc/persist-docker/webhook-url') }}"

    - name: The job fails too
      ansible.builtin.fail:
        msg: "{{ ansible_failed_result.msg | default('failed') }}"

- name: Report the success
  persist.docker.backup_job_report:
    job: pgdata-nightly
    kind: backup
    volume: pgdata
    result: ok
    started: "{{ job_started }}"
    bytes_added: "{{ job_result.bytes_added | default(omit) }}"
    snapshot_id: "{{ job_result.snapshot_id | default(omit) }}"

# What a failed restore drill would record, without writing it
- name: Predict the state and the textfile of a failed drill
  persist.docker.backup_job_report:
    job: pgdata-drill
    kind: drill
    volume: pgdata
    result: failed
    msg: the health command exited with 1
    started: "{{ now(utc=true).timestamp() - 30 }}"
  check_mode: true
  register: would_write

- name: Show the textfile it would write
  ansible.builtin.debug:
    msg: "{{ would_write.metrics }}"
"""

RETURN = r"""
state:
  description: The job's state as it was written (in check mode, as it would be written).
  returned: always
  type: dict
  contains:
    job:
      description: The job's name.
      type: str
      sample: pgdata-nightly
    kind:
      description: What the job does.
      type: str
      sample: backup
    volume:
      description: The volume the job works on; null without one.
      type: str
      sample: pgdata
    host:
      description: The host name of the machine the job ran on.
      type: str
      sample: db1
    last_run:
      description: This run.
      type: dict
      contains:
        started:
          description: Unix time it started.
          type: float
          sample: 1767225600.0
        ended:
          description: Unix time it ended (when this module ran).
          type: float
          sample: 1767225642.5
        result:
          description: V(ok) or V(failed).
          type: str
        message:
          description: What it said about itself (at most 4000 characters); empty without a message.
          type: str
        duration_seconds:
          description: Seconds from its start to its end (never negative).
          type: float
          sample: 42.5
    last_success:
      description: The last run that succeeded (this run, or the last one before when this run failed); null when the
        job never succeeded.
      type: dict
      contains:
        time:
          description: Unix time that run ended.
          type: float
        duration_seconds:
          description: Seconds it took.
          type: float
        bytes_added:
          description: Bytes it added to its destination; null when not given.
          type: int
        digest:
          description: The digest it reported; null when not given.
          type: str
        snapshot_id:
          description: The snapshot it reported; null when not given.
          type: str
    runs:
      description: The number of runs the job reported.
      type: int
      sample: 12
    failures_in_a_row:
      description: The number of failed runs since the last success (0 after a success).
      type: int
      sample: 0
state_path:
  description: The job's state file.
  returned: always
  type: str
  sample: /var/lib/persist-docker/jobs/pgdata-nightly.json
textfile_path:
  description: The job's node_exporter textfile.
  returned: always
  type: str
  sample: /var/lib/prometheus/node-exporter/persist_docker_pgdata-nightly.prom
metrics:
  description: The text of the textfile as it was written (in check mode, as it would be written).
  returned: always
  type: str
  sample: |
    # HELP persist_docker_drill_last_run_success Whether the last run of the job succeeded (1) or failed (0).
    # TYPE persist_docker_drill_last_run_success gauge
    persist_docker_drill_last_run_success{job="pg-drill",kind="drill",volume="pgdata"} 1
webhook:
  description: The call of the webhook.
  returned: always
  type: dict
  contains:
    notify:
      description: Whether this run calls the webhook (in check mode, would call it) - O(webhook_url) is given and the
        run failed or O(notify_success) is set.
      type: bool
    status:
      description: The HTTP status the webhook answered with; null when it was not called (or in check mode) or did
        not answer.
      type: int
      sample: 204
    error:
      description: Why the call failed (also given as a warning); null when it did not fail.
      type: str
actions:
  description: What was done (in check mode, what would be done).
  returned: always
  type: list
  elements: str
  sample: ["wrote /var/lib/persist-docker/jobs/pgdata-nightly.json",
           "wrote /var/lib/prometheus/node-exporter/persist_docker_pgdata-nightly.prom",
           "called the webhook at https://hooks.example.com"]
"""

import http.client
import os
import socket
import time

from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import open_url

from ansible_collections.persist.docker.plugins.module_utils import jobfiles, jobstate
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager, diff_of
from ansible_collections.persist.docker.plugins.module_utils.module import PersistModule

# what a webhook call that fails raises: urllib's errors and timeouts are OSError, a broken answer HTTPException
WEBHOOK_ERRORS = (OSError, ValueError, http.client.HTTPException, UrlConnectionError)


class JobReportManager(Manager):
    def run(self):
        p = self.params
        jobstate.check_job(p["job"])
        if p["webhook_url"] is not None:
            jobstate.check_webhook(p["webhook_url"])
        if p["webhook_timeout"] < 1:
            raise DockerError("webhook_timeout must be at least 1 second")
        if p["bytes_added"] is not None and p["bytes_added"] < 0:
            raise DockerError("bytes_added must be 0 or more, got %d" % p["bytes_added"])
        ended = time.time()
        state_name, textfile_name = jobstate.state_name(p["job"]), jobstate.textfile_name(p["job"])
        state_path = os.path.join(p["state_dir"], state_name)
        textfile_path = os.path.join(p["textfile_dir"], textfile_name)
        state_dir = jobfiles.open_directory(p["state_dir"], "state_dir")
        textfile_dir = jobfiles.open_directory(p["textfile_dir"], "textfile_dir")
        previous = self.previous_state(state_dir)
        metrics_before = self.previous_text(textfile_dir, textfile_name, textfile_path)
        state = jobstate.merge(previous, dict(
            job=p["job"], kind=p["kind"], volume=p["volume"], host=socket.gethostname(), started=p["started"],
            ended=ended, result=p["result"], message=p["msg"], bytes_added=p["bytes_added"], digest=p["digest"],
            snapshot_id=p["snapshot_id"]))
        text = jobstate.metrics(state)
        notify = p["webhook_url"] is not None and jobstate.notifies(p["result"], p["notify_success"])
        webhook = dict(notify=notify, status=None, error=None)
        if state_dir is None:
            self.act("created directory %s" % p["state_dir"])
        self.act("wrote %s" % state_path)
        if textfile_dir is None:
            self.act("created directory %s" % p["textfile_dir"])
        self.act("wrote %s" % textfile_path)
        if notify:
            self.act("called the webhook at %s" % jobstate.webhook_where(p["webhook_url"]))
        if not self.check_mode:
            state_dir = state_dir or jobfiles.make_directory(p["state_dir"], 0o700, "state_dir")
            jobfiles.write_file(state_dir, state_name, jobstate.dumps(state), jobfiles.STATE_MODE, state_path)
            textfile_dir = textfile_dir or jobfiles.make_directory(p["textfile_dir"], 0o755, "textfile_dir")
            jobfiles.write_file(textfile_dir, textfile_name, text, jobfiles.TEXTFILE_MODE, textfile_path)
            if notify:
                webhook.update(self.call_webhook(state))
        result = dict(state=state, state_path=state_path, textfile_path=textfile_path, metrics=text, webhook=webhook)
        return self.finish(result, changed=True, diffs=[
            diff_of(jobstate.dumps(previous) if previous else "", jobstate.dumps(state), header=state_path),
            diff_of(metrics_before or "", text, header=textfile_path)])

    def previous_state(self, state_dir):
        """The job's state before this run; None (with a warning when a file was there) when there is none."""
        if state_dir is None:
            return None
        try:
            return jobfiles.state_of(state_dir, self.params["state_dir"], self.params["job"])
        except DockerError as exc:
            self.dm.warn("%s; this run writes it again, and the job's counts start again" % exc)
            return None

    def previous_text(self, directory, name, where):
        """The textfile before this run, for the diff; None when there is none or it cannot be read (it is
        replaced)."""
        if directory is None:
            return None
        try:
            return jobfiles.read_file(directory, name, where)
        except DockerError:
            return None

    def call_webhook(self, state):
        """POST the run's JSON body to the webhook: {'status'} or, when it fails, {'error'} and a warning."""
        p = self.params
        where = jobstate.webhook_where(p["webhook_url"])
        try:
            response = open_url(p["webhook_url"], data=jobstate.webhook_body(state), method="POST",
                                headers={"Content-Type": "application/json"}, timeout=p["webhook_timeout"],
                                follow_redirects="none", use_netrc=False, http_agent="persist.docker")
            with response:
                response.read(65536)
                return dict(status=response.getcode())
        except WEBHOOK_ERRORS as exc:
            status = getattr(exc, "code", None)
            reason = str(exc).replace(p["webhook_url"], where)
            error = "the webhook at %s failed: %s" % (where, reason)
            self.dm.warn("%s; the job's state and metrics were written, check the webhook's URL and receiver"
                         % error)
            return dict(status=status if isinstance(status, int) else None, error=error)


def main():
    PersistModule(
        dict(
            job=dict(type="str", required=True),
            kind=dict(type="str", required=True, choices=list(jobstate.KINDS)),
            volume=dict(type="str"),
            result=dict(type="str", required=True, choices=list(jobstate.RESULTS)),
            msg=dict(type="str"),
            started=dict(type="float", required=True),
            bytes_added=dict(type="int"),
            digest=dict(type="str"),
            snapshot_id=dict(type="str"),
            state_dir=dict(type="path", default=jobstate.STATE_DIR),
            textfile_dir=dict(type="path", default=jobstate.TEXTFILE_DIR),
            webhook_url=dict(type="str", no_log=True),
            webhook_timeout=dict(type="int", default=10),
            notify_success=dict(type="bool", default=False),
        ),
    ).run(JobReportManager)


if __name__ == "__main__":
    main()
