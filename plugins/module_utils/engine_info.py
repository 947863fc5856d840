# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the engine_info module returns about one Docker engine, and how engines are told apart.

Pure (no SDK): the engine's /info and /version answers turned into a small, stable dict.
"""

from __future__ import annotations


def identity(info):
    """The identity of an engine: its ID, host name and root directory.

    The ID alone does not tell engines apart: engines that share /etc/docker/key.json (two on one
    host, cloned machines) report the same one. With the host name and the root directory it does.
    """
    return "%s %s %s" % (info.get("ID") or "", info.get("Name") or "", info.get("DockerRootDir") or "")


def summary(info, version):
    """The engine's /info and /version answers -> the engine dict of engine_info."""
    security = list(info.get("SecurityOptions") or [])
    userns = any(option == "name=userns" or option.startswith("name=userns,") for option in security)
    return dict(
        id=info.get("ID"),
        name=info.get("Name"),
        docker_root_dir=info.get("DockerRootDir"),
        identity=identity(info),
        server_version=version.get("Version") or info.get("ServerVersion"),
        api_version=version.get("ApiVersion"),
        operating_system=info.get("OperatingSystem"),
        architecture=info.get("Architecture"),
        storage_driver=info.get("Driver"),
        live_restore=bool(info.get("LiveRestoreEnabled")),
        userns_remap=userns,
        security_options=security,
        containers=info.get("Containers", 0),
        containers_running=info.get("ContainersRunning", 0),
        images=info.get("Images", 0),
    )
