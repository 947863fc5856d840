# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

import io
import socket
import tarfile

import pytest

from ansible_collections.persist.docker.plugins.module_utils import registry_container as rcont


@pytest.mark.parametrize("docker_host,bind,expected", [
    ("unix:///var/run/docker.sock", "0.0.0.0", "127.0.0.1"),
    ("unix:///var/run/docker.sock", "127.0.0.2", "127.0.0.2"),
    (None, "", "127.0.0.1"),
    ("tcp://192.0.2.10:2376", "0.0.0.0", "192.0.2.10"),
    ("ssh://admin@reg.example.com", "0.0.0.0", "reg.example.com"),
])
def test_probe_host(docker_host, bind, expected):
    assert rcont.probe_host(docker_host, bind) == expected


def test_tar_of_holds_the_files_with_modes():
    data = rcont.tar_of({"config.yml": b"version: 0.1\n", "server.crt": b"PEM"}, modes={"server.crt": 0o644})
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["config.yml", "server.crt"]
        assert members["config.yml"].mode == 0o600 and members["server.crt"].mode == 0o644
        assert tar.extractfile(members["config.yml"]).read() == b"version: 0.1\n"


def test_port_in_use():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        assert rcont.port_in_use("127.0.0.1", port) is True
    finally:
        listener.close()
    assert rcont.port_in_use("127.0.0.1", port) is False


def test_tree_size(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b").write_bytes(b"y" * 5)
    assert rcont.tree_size(str(tmp_path)) == (15, 2)
    assert rcont.tree_size(str(tmp_path / "missing")) == (0, 0)
