# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Engine-side helpers for registry containers: files in and out, health, host checks."""

from __future__ import annotations

import errno
import io
import os
import socket
import tarfile
import time
from urllib.parse import urlparse

from ansible_collections.persist.docker.plugins.module_utils.client import api_errors, get_or_none
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


def read_file(api, container, path):
    """The bytes of one file inside a container, or None when it does not exist."""
    answer = get_or_none("file %s in container '%s'" % (path, container), api.get_archive, container, path)
    if answer is None:
        return None
    stream, _stat = answer
    with api_errors("file %s in container '%s'" % (path, container)):
        data = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.next()
        if member is None or not member.isfile():
            return None
        handle = tar.extractfile(member)
        return handle.read() if handle else None


def tar_of(files, modes=None):
    """An uncompressed tar archive holding {name: bytes} (names relative to the target directory)."""
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name=name)
            info.size = len(files[name])
            info.mode = (modes or {}).get(name, 0o600)
            info.mtime = now
            tar.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


def put_files(api, container, directory, files, modes=None):
    with api_errors("container '%s'" % container):
        if not api.put_archive(container, directory, tar_of(files, modes)):
            raise DockerError("container '%s': the engine did not accept the files for %s" % (container, directory))


def log_tail(api, container, lines=60):
    """The telling lines of a container's last log lines: a panic or errors, else the last three."""
    with api_errors("container '%s'" % container):
        text = api.logs(container, stdout=True, stderr=True, tail=lines).decode("utf-8", "replace")
    all_lines = [line.strip() for line in text.splitlines() if line.strip()]
    telling = [line for line in all_lines if line.startswith(("panic:", "fatal", "configuration error"))
               or "level=fatal" in line or "level=error" in line]
    chosen = []
    for line in (telling or all_lines)[-3:]:
        if line not in chosen:
            chosen.append(line)
    return " | ".join(chosen)[-600:]


def probe_host(docker_host, bind_address):
    """The host to reach a published port at from the managed host."""
    if docker_host and docker_host.startswith(("tcp://", "ssh://", "http://", "https://")):
        return urlparse(docker_host.replace("tcp://", "http://", 1)).hostname
    if not bind_address or bind_address in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return bind_address


def port_in_use(address, port):
    """True when something on this host listens on address:port."""
    family = socket.AF_INET6 if ":" in (address or "") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address or "0.0.0.0", port))
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE
    finally:
        sock.close()
    return False


def tree_size(path):
    """Bytes and files below path (0, 0 when it does not exist)."""
    total = files = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
                files += 1
            except OSError:
                continue
    return total, files
