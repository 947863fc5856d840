# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Named volumes: the shared helpers and the pure decisions of the volume modules.

Reusable by every module that handles volumes:

* :func:`inspect_volume`, :func:`list_volumes` -- the Engine's view of volumes.
* :func:`containers_using`, :func:`containers_by_volume` -- which containers
  mount a volume and whether they run.
* :func:`data_at_risk` -- whether removing a volume would delete data.
* :func:`host_ids`, :func:`container_view` -- ids through the engine's userns-remap maps.

How a volume's root (or a host path) is read and changed, locally or through a
helper container, is volume_access.py.

The pure functions (validation, the local driver shortcuts, drift, the plan,
the refusal message) take plain data and are unit-tested without a daemon.
"""

from __future__ import annotations

import os
import re

from ansible_collections.persist.docker.plugins.module_utils import idmap
from ansible_collections.persist.docker.plugins.module_utils.client import (
    DockerError,
    api_errors,
    get_or_none,
)

RECREATE_CHOICES = ("never", "options-changed", "always")

# Docker's volume name grammar (daemon/names.RestrictedNamePattern).
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_SIZE_RE = re.compile(r"^[0-9]+[kmgKMG%]?$")


# ---------------------------------------------------------------- pure: input

def validate_volume_name(name):
    """Raise DockerError unless ``name`` is a valid Docker volume name."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise DockerError("invalid volume name %r: use at least two characters, letters, digits, _ . or -, "
                          "starting with a letter or digit" % (name,))
    return name


def parse_mode(value, subject="mode"):
    """A permission mode as an int: an octal string ('0750', '750') or an int as YAML gives it."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        text = str(value).strip()
        if not re.match(r"^0?o?[0-7]{1,4}$", text):
            raise DockerError("%s %r is not an octal mode; write it as a quoted string such as '0750'"
                              % (subject, value))
        mode = int(text.replace("o", ""), 8)
    if not 0 <= mode <= 0o7777:
        raise DockerError("%s %r is out of range; use an octal mode between '0000' and '7777'" % (subject, value))
    return mode


def parse_id(value, subject="owner"):
    """An owner or group as given: an int for numeric ids, else the name (str), or None."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip()
        if not text:
            raise DockerError("%s is empty; give a numeric id or a name" % subject)
        if not text.isdigit():
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*\$?$", text):
                raise DockerError("%s %r is neither a numeric id nor a valid user or group name" % (subject, value))
            return text
        number = int(text)
    if not 0 <= number < 2 ** 32 - 1:
        raise DockerError("%s %r is out of range for a user or group id" % (subject, value))
    return number


def shortcut_driver_opts(name, *, bind=None, nfs=None, tmpfs=None, owner=None, group=None):
    """The ``local`` driver options for the bind / nfs / tmpfs shortcuts, or None.

    ``owner`` and ``group`` (numeric) go into the mount options of a tmpfs
    volume, the only way to own a file system that exists only while mounted.
    """
    given = [k for k, v in (("bind", bind), ("nfs", nfs), ("tmpfs", tmpfs)) if v is not None]
    if len(given) > 1:
        raise DockerError("volume '%s': bind, nfs and tmpfs are alternatives; give only one of %s"
                          % (name, ", ".join(given)))
    if bind is not None:
        return _bind_opts(name, bind)
    if nfs is not None:
        return _nfs_opts(name, nfs)
    if tmpfs is not None:
        return _tmpfs_opts(name, tmpfs, owner, group)
    return None


def _bind_opts(name, bind):
    if not isinstance(bind, str) or not os.path.isabs(bind):
        raise DockerError("volume '%s': bind path %r is not absolute; give the full host path, for example "
                          "/srv/data" % (name, bind))
    return {"type": "none", "o": "bind", "device": os.path.normpath(bind)}


def _nfs_opts(name, nfs):
    server = (nfs.get("server") or "").strip()
    path = (nfs.get("path") or "").strip()
    if not server:
        raise DockerError("volume '%s': nfs needs a server (host name or address of the NFS server)" % name)
    if not path.startswith("/"):
        raise DockerError("volume '%s': nfs needs the absolute exported path on %s, for example /exports/data"
                          % (name, server))
    options = ",".join(o for o in ["addr=" + server, (nfs.get("options") or "").strip()] if o)
    return {"type": "nfs", "o": options, "device": ":" + path}


def _tmpfs_opts(name, tmpfs, owner, group):
    options = []
    size = tmpfs.get("size")
    if size is not None:
        if not _SIZE_RE.match(str(size)):
            raise DockerError("volume '%s': tmpfs size %r is not a size such as 64m, 1g or 50%%" % (name, size))
        options.append("size=%s" % size)
    mode = parse_mode(tmpfs.get("mode"), "tmpfs mode")
    if mode is not None:
        options.append("mode=%o" % mode)
    for key, value in (("uid", owner), ("gid", group)):
        if value is not None:
            if not isinstance(value, int):
                raise DockerError("volume '%s': a tmpfs volume takes numeric owner and group ids (mount "
                                  "options), not %r" % (name, value))
            options.append("%s=%d" % (key, value))
    result = {"type": "tmpfs", "device": "tmpfs"}
    if options:
        result["o"] = ",".join(options)
    return result


def wanted_volume(spec):
    """Validate one volume's options and return the wanted state as plain data.

    ``spec`` has the keys of the module's volume options. Returns a dict with
    name, state, driver, driver_opts (None = not managed), labels (None = not
    managed), kind (plain, bind, nfs, tmpfs, other), owner, group, mode,
    recursive, recreate, force. Raises DockerError for bad input.
    """
    name = validate_volume_name(spec.get("name"))
    state = spec.get("state") or "present"
    driver = spec.get("driver") or "local"
    owner = parse_id(spec.get("owner"), "volume '%s': owner" % name)
    group = parse_id(spec.get("group"), "volume '%s': group" % name)
    mode = parse_mode(spec.get("mode"), "volume '%s': mode" % name)
    recreate = spec.get("recreate") or "never"
    if recreate not in RECREATE_CHOICES:
        raise DockerError("volume '%s': recreate must be one of %s, not %r"
                          % (name, ", ".join(RECREATE_CHOICES), recreate))
    shortcut = [k for k in ("bind", "nfs", "tmpfs") if spec.get(k) is not None]
    driver_opts = spec.get("driver_opts")
    if driver_opts is not None:
        driver_opts = dict((str(k), str(v)) for k, v in driver_opts.items())
    kind = "plain" if driver == "local" else "other"
    if shortcut:
        if driver != "local":
            raise DockerError("volume '%s': %s is a shortcut for the local driver, not for driver %r"
                              % (name, shortcut[0], driver))
        if driver_opts:
            raise DockerError("volume '%s': give either %s or driver_opts, not both" % (name, shortcut[0]))
        tmpfs = spec.get("tmpfs")
        if tmpfs is not None and tmpfs.get("mode") is not None and mode is not None:
            raise DockerError("volume '%s': give the mode of a tmpfs volume once, as tmpfs.mode or mode" % name)
        if tmpfs is not None and mode is not None:
            tmpfs = dict(tmpfs, mode=mode)
        driver_opts = shortcut_driver_opts(name, bind=spec.get("bind"), nfs=spec.get("nfs"), tmpfs=tmpfs,
                                           owner=owner if tmpfs is not None else None,
                                           group=group if tmpfs is not None else None)
        kind = shortcut[0]
    elif driver == "local" and driver_opts:
        kind = local_kind(driver_opts)
    labels = spec.get("labels")
    if labels is not None:
        labels = dict((str(k), str(v)) for k, v in labels.items())
    if kind == "tmpfs" and any(isinstance(v, str) for v in (owner, group)):
        raise DockerError("volume '%s': a tmpfs volume takes numeric owner and group ids (mount options)" % name)
    if kind == "tmpfs" and spec.get("recursive"):
        raise DockerError("volume '%s': recursive does not apply to a tmpfs volume (it is empty until mounted)" % name)
    return dict(name=name, state=state, driver=driver, driver_opts=driver_opts, labels=labels, kind=kind,
                owner=owner, group=group, mode=mode, recursive=bool(spec.get("recursive")), recreate=recreate,
                force=bool(spec.get("force")))


def local_kind(driver_opts):
    """What a local volume with these options is: plain, bind, nfs, tmpfs or device."""
    opts = driver_opts or {}
    kind = opts.get("type", "")
    if not opts.get("device"):
        return "plain"
    if kind == "tmpfs":
        return "tmpfs"
    if kind.startswith("nfs"):
        return "nfs"
    if "bind" in (opts.get("o") or "").split(","):
        return "bind"
    return "device"


def volume_kind(attrs):
    """plain, bind, nfs, tmpfs, device (local driver) or other (any other driver)."""
    if attrs.get("Driver") != "local":
        return "other"
    return local_kind(attrs.get("Options") or {})


def require_lasting(name, attrs, what):
    """Raise DockerError when volume ``name`` (inspect dict ``attrs``) is a tmpfs volume.

    Its data lives only while a container mounts it, so ``what`` written into it
    by a helper container would be gone when the helper exits.
    """
    if volume_kind(attrs) == "tmpfs":
        raise DockerError("volume '%s' is a tmpfs volume: its data lives only while a container mounts it, so %s "
                          "would be lost; choose a volume that keeps its data" % (name, what))


def data_at_risk(attrs):
    """Whether removing the volume deletes its data.

    True for a plain local volume (its data lives in the mountpoint) and for
    other drivers (cannot tell); False for local volumes backed by a device,
    a bind path or NFS (the data stays there) and for tmpfs (nothing persists).
    """
    return volume_kind(attrs) in ("plain", "other")


# ---------------------------------------------------------------- pure: plan

def volume_drift(current, wanted):
    """What differs between an existing volume and the wanted driver, options, labels.

    Returns a list of {'field', 'before', 'after'}; driver_opts and labels
    are compared only when wanted (not None); labels the volume has beyond
    the wanted ones are not drift.
    """
    drift = []
    if current.get("Driver") != wanted["driver"]:
        drift.append(dict(field="driver", before=current.get("Driver"), after=wanted["driver"]))
    if wanted["driver_opts"] is not None:
        have = current.get("Options") or {}
        if have != wanted["driver_opts"]:
            drift.append(dict(field="driver_opts", before=have, after=wanted["driver_opts"]))
    if wanted["labels"] is not None:
        have = current.get("Labels") or {}
        differing = dict((k, v) for k, v in wanted["labels"].items() if have.get(k) != v)
        if differing:
            drift.append(dict(field="labels", before=dict((k, have.get(k)) for k in differing), after=differing))
    return drift


def plan_volume(current, wanted):
    """Decide what to do with one volume: (action, drift).

    action is one of: create, remove, recreate, none, keep-drift (drift
    found but recreate is never). ``current`` is the inspect dict or None.
    """
    if wanted["state"] == "absent":
        return ("remove" if current is not None else "none"), []
    if current is None:
        return "create", []
    drift = volume_drift(current, wanted)
    if wanted["recreate"] == "always":
        return "recreate", drift
    if drift:
        return ("recreate" if wanted["recreate"] == "options-changed" else "keep-drift"), drift
    return "none", []


def human_size(size):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return ("%d %s" % (size, unit)) if unit == "bytes" else ("%.1f %s" % (size, unit))
        size /= 1024.0
    return str(size)


def container_names(users):
    return ", ".join("%s (%s)" % (u["name"], "running" if u["running"] else u["state"] or "stopped") for u in users)


def removal_refusal(name, verb, users, usage, force):
    """Why ``verb`` (remove / recreate) of volume ``name`` must not happen, or None.

    ``users`` are the containers that use the volume (see containers_using),
    ``usage`` is {'size', 'files', 'entries'} of the data removal would delete,
    or None when no data is at risk. Containers always block: the Engine
    keeps a volume that a container references. Data blocks unless force.
    """
    if users:
        held = ""
        if usage and usage.get("entries"):
            held = " and holds %s in %d file%s" % (
                human_size(usage.get("size", 0)), usage.get("files", 0), "" if usage.get("files") == 1 else "s")
        return ("refusing to %s volume '%s': it is used by container%s %s%s; remove %s first (force does not "
                "remove containers)" % (verb, name, "s" if len(users) > 1 else "", container_names(users), held,
                                        "them" if len(users) > 1 else "it"))
    if usage and usage.get("entries") and not force:
        return ("refusing to %s volume '%s': it holds %s in %d file%s (%d entr%s); that data would be lost. "
                "Back it up or move it first, or set force: true to %s it anyway"
                % (verb, name, human_size(usage.get("size", 0)), usage.get("files", 0),
                   "" if usage.get("files") == 1 else "s", usage["entries"],
                   "y" if usage["entries"] == 1 else "ies", verb))
    return None


def ownership_counts(entries, uid, gid, mode):
    """How many entries need a chown, and whether the root needs a chmod.

    ``entries`` is [(path, uid, gid)] (the root first), ``mode`` the wanted
    mode of the root or None; the root's current mode is the 4th item of
    the first entry when present. Returns (chown_count, chmod_root: bool).
    """
    count = 0
    for entry in entries:
        if (uid is not None and entry[1] != uid) or (gid is not None and entry[2] != gid):
            count += 1
    chmod = bool(entries) and mode is not None and len(entries[0]) > 3 and entries[0][3] != mode
    return count, chmod


# ---------------------------------------------------------------- engine: volumes and containers

def inspect_volume(api, name):
    """The Engine's inspect dict of volume ``name``, or None when it does not exist."""
    return get_or_none("volume '%s'" % name, api.inspect_volume, name)


def list_volumes(api):
    """Every volume on the engine as {name: inspect-like dict} (one request)."""
    with api_errors("volume list"):
        listed = api.volumes() or {}
    return dict((v["Name"], v) for v in listed.get("Volumes") or [])


def _container_entry(c):
    return dict(name=(c.get("Names") or ["/" + c["Id"][:12]])[0].lstrip("/"), id=c["Id"],
                running=c.get("State") == "running", state=c.get("State") or "")


def containers_using(api, name):
    """The containers (running or not) that mount volume ``name``.

    Returns [{'name', 'id', 'running', 'state'}] sorted by name.
    """
    with api_errors("containers using volume '%s'" % name):
        found = api.containers(all=True, filters={"volume": name})
    return sorted((_container_entry(c) for c in found), key=lambda c: c["name"])


def containers_by_volume(api):
    """{volume name: [container entries]} for all containers (one request)."""
    with api_errors("container list"):
        found = api.containers(all=True)
    result = {}
    for c in found:
        for mount in c.get("Mounts") or []:
            if mount.get("Type") == "volume" and mount.get("Name"):
                result.setdefault(mount["Name"], []).append(_container_entry(c))
    for users in result.values():
        users.sort(key=lambda c: c["name"])
    return result


def engine_info(api):
    with api_errors("docker info"):
        return api.info()


def check_driver(api, driver, info=None):
    """Raise DockerError unless the engine knows volume driver ``driver``."""
    if driver == "local":
        return
    info = info or engine_info(api)
    known = set((info.get("Plugins") or {}).get("Volume") or [])
    with api_errors("plugin list"):
        for plugin in api.plugins() or []:
            if plugin.get("Enabled"):
                known.add(plugin.get("Name", "").split(":")[0])
                known.add(plugin.get("Name", ""))
    if driver not in known:
        raise DockerError("unknown volume driver %r: the engine knows %s; install the plugin first (docker plugin "
                          "install) or use driver local" % (driver, ", ".join(sorted(known)) or "none"))


def container_view(value, id_map):
    """A host id as containers see it (None when unmapped); the identity without a map."""
    if value is None:
        return None
    return idmap.to_container_or_none(value, id_map) if id_map else value


def host_ids(uid, gid, uid_map, gid_map):
    """Container ids -> host ids through the engine's maps (identity without maps)."""
    try:
        return (None if uid is None else idmap.to_host(uid, uid_map),
                None if gid is None else idmap.to_host(gid, gid_map))
    except idmap.IdMapError as exc:
        raise DockerError("cannot map the ids into the engine's user namespace: %s" % exc) from None


def format_mode(mode):
    return None if mode is None else "%04o" % mode
