# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from ansible_collections.persist.docker.plugins.module_utils import engine_info as ei

INFO = dict(ID="ABCD", Name="host1", DockerRootDir="/var/lib/docker", ServerVersion="26.1.5",
            OperatingSystem="Debian", Architecture="x86_64", Driver="overlay2", LiveRestoreEnabled=True,
            SecurityOptions=["name=seccomp,profile=builtin", "name=userns"], Containers=3, ContainersRunning=1,
            Images=7)


def test_identity_tells_engines_with_one_key_apart():
    other_root = dict(INFO, DockerRootDir="/var/lib/docker-b")
    assert ei.identity(INFO) == "ABCD host1 /var/lib/docker"
    assert ei.identity(INFO) != ei.identity(other_root)
    assert ei.identity(INFO) != ei.identity(dict(INFO, Name="host2"))
    assert ei.identity({}) == "  "


def test_summary_fields():
    engine = ei.summary(INFO, dict(Version="26.1.5", ApiVersion="1.45"))
    assert engine["id"] == "ABCD" and engine["docker_root_dir"] == "/var/lib/docker"
    assert engine["identity"] == ei.identity(INFO)
    assert engine["api_version"] == "1.45" and engine["server_version"] == "26.1.5"
    assert engine["userns_remap"] is True and engine["live_restore"] is True
    assert engine["containers"] == 3 and engine["containers_running"] == 1 and engine["images"] == 7


def test_summary_without_userns_or_version_answer():
    engine = ei.summary(dict(INFO, SecurityOptions=["name=seccomp,profile=builtin"], LiveRestoreEnabled=False), {})
    assert engine["userns_remap"] is False and engine["live_restore"] is False
    assert engine["server_version"] == "26.1.5" and engine["api_version"] is None
