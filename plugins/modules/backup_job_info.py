#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_job_info
short_description: The scheduled jobs of a host, their last run and the age of their last success
version_added: 0.3.0
description:
  - Reads the state files that M(persist.docker.backup_job_report) writes for each scheduled job
    (C(<state_dir>/<job>.json), the same state its node_exporter metrics are written from) and returns, per job,
    its last run, its last success, the seconds since that success and, with O(max_age), whether it is stale.
  - So a fleet playbook can assert that no host has a backup older than a day (see the examples).
  - Reads only; never changes anything. A state file that is a symbolic link or damaged fails the module, naming
    the file.
  - Needs no Docker engine, so it takes none of the connection options and is not in the action group
    C(persist.docker.docker).
extends_documentation_fragment:
  - persist.docker.attributes
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is no diff.
  idempotent:
    support: full
    description: Never reports a change.
options:
  state_dir:
    description: The directory of the jobs' state files, as given to M(persist.docker.backup_job_report).
    type: path
    default: /var/lib/persist-docker/jobs
  job:
    description:
      - Only this job.
      - A job that has no state file yet (it never reported a run) is returned all the same, with no last run and
        no last success, so it is stale with O(max_age) - a job that never ran is not forgotten.
    type: str
  max_age:
    description:
      - Seconds after its last success at which a job is stale (RV(jobs[].stale)); a job that never succeeded is
        stale too.
      - Without it, RV(jobs[].stale) is null.
    type: int
notes:
  - Without O(job), the jobs are those with a state file, sorted by name; none when O(state_dir) does not exist.
  - The age is counted from the clock of the managed host, against the time the last successful run ended.
seealso:
  - module: persist.docker.backup_job_report
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: The scheduled jobs of each host, stale when their last success is older than a day
  persist.docker.backup_job_info:
    max_age: 86400
  register: backup_jobs

- name: No backup older than a day, on any host
  ansible.builtin.assert:
    that: backup_jobs.jobs | selectattr('stale') | list | length == 0
    fail_msg: "stale: {{ backup_jobs.jobs | selectattr('stale') | map(attribute='job') | list }}"

- name: The restore drill of pgdata passed within the last week
  persist.docker.backup_job_info:
    job: pgdata-drill
    max_age: "{{ 7 * 86400 }}"
  register: drill

- name: Say so
  ansible.builtin.assert:
    that: not drill.jobs[0].stale
    fail_msg: "last drill run: {{ drill.jobs[0].last_run }}"
"""

RETURN = r"""
jobs:
  description: The jobs, sorted by name (only O(job) when given).
  returned: always
  type: list
  elements: dict
  contains:
    job:
      description: The job's name.
      type: str
      sample: pgdata-nightly
    kind:
      description: What the job does (V(backup), V(drill), V(retention) or V(gc)); null for a job that never ran.
      type: str
    volume:
      description: The volume the job works on; null without one.
      type: str
    host:
      description: The host name the job reported from.
      type: str
    last_run:
      description: The job's last run, as M(persist.docker.backup_job_report) recorded it; null for a job that
        never ran.
      type: dict
      contains:
        started:
          description: Unix time it started.
          type: float
        ended:
          description: Unix time it ended.
          type: float
        result:
          description: V(ok) or V(failed).
          type: str
        message:
          description: What it said about itself.
          type: str
        duration_seconds:
          description: Seconds it took.
          type: float
    last_success:
      description: The job's last successful run; null when it never succeeded.
      type: dict
      contains:
        time:
          description: Unix time it ended.
          type: float
        duration_seconds:
          description: Seconds it took.
          type: float
        bytes_added:
          description: Bytes it added to its destination; null when not reported.
          type: int
        digest:
          description: The digest it reported; null when not reported.
          type: str
        snapshot_id:
          description: The snapshot it reported; null when not reported.
          type: str
    age_seconds:
      description: Seconds since the last success ended (never negative); null when the job never succeeded.
      type: float
      sample: 3600.5
    stale:
      description: With O(max_age), whether the job never succeeded or its last success is older than O(max_age)
        seconds; null without O(max_age).
      type: bool
    runs:
      description: The number of runs the job reported.
      type: int
    failures_in_a_row:
      description: The number of failed runs since the last success.
      type: int
now:
  description: The unix time the ages were counted to.
  returned: always
  type: float
  sample: 1767229242.5
"""

import time

from ansible_collections.persist.docker.plugins.module_utils import jobfiles, jobstate
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager
from ansible_collections.persist.docker.plugins.module_utils.module import PersistModule


class JobInfoManager(Manager):
    def run(self):
        p = self.params
        if p["job"] is not None:
            jobstate.check_job(p["job"])
        if p["max_age"] is not None and p["max_age"] < 0:
            raise DockerError("max_age must be 0 or more seconds, got %d" % p["max_age"])
        now = time.time()
        directory = jobfiles.open_directory(p["state_dir"], "state_dir")
        names = [p["job"]] if p["job"] is not None else jobfiles.jobs_in(directory) if directory is not None else []
        jobs = []
        for name in names:
            state = jobfiles.state_of(directory, p["state_dir"], name) if directory is not None else None
            jobs.append(jobstate.never_ran(name, now, p["max_age"]) if state is None
                        else jobstate.info(state, now, p["max_age"]))
        return dict(changed=False, jobs=jobs, now=round(now, 3))


def main():
    PersistModule(
        dict(
            state_dir=dict(type="path", default=jobstate.STATE_DIR),
            job=dict(type="str"),
            max_age=dict(type="int"),
        ),
    ).run(JobInfoManager)


if __name__ == "__main__":
    main()
