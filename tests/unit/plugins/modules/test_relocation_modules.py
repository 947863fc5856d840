# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""volume_relocate and volume_backup refuse contradictory options before they talk to any daemon."""
from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.persist.docker.plugins.modules import volume_backup, volume_relocate

NO_DAEMON = "unix:///nonexistent/docker.sock"


def run_module(capsys, module, **args):
    args.setdefault("docker_host", NO_DAEMON)
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def test_relocate_refuses_an_unchecked_move_before_anything(capsys):
    result = run_module(capsys, volume_relocate, source=dict(name="aa"), destination=dict(name="bb"),
                        mode="move", verify="none")
    assert result["failed"] is True
    assert "verify: none" in result["msg"] and "nothing was done" in result["msg"]
    assert "cannot reach" not in result["msg"]


@pytest.mark.parametrize(("args", "fragment"), [
    (dict(quiesce="stop", stop_containers=True), "mutually exclusive"),
    (dict(quiesce="freeze"), "value of quiesce must be one of"),
    (dict(lock_timeout="soon"), "lock_timeout"),
])
def test_backup_bad_input(capsys, args, fragment):
    result = run_module(capsys, volume_backup, volume="aa", path="/tmp/x.tar", **args)
    assert result["failed"] is True and fragment in result["msg"]
