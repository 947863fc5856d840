# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Named volumes: the shared helpers and the pure decisions of the volume modules.

Reusable by every module that handles volumes:

* :func:`inspect_volume`, :func:`list_volumes` -- the Engine's view of volumes.
* :func:`containers_using`, :func:`containers_by_volume` -- which containers
  mount a volume and whether they run.
* :func:`volume_root` / :func:`path_root` -- the ONE place that decides how a
  volume's root (or a host path) is read and changed: through the local
  mountpoint when the engine is local and this process may use it, otherwise
  through a short-lived helper container. Both return a root object with
  ``stat()``, ``holds_data()``, ``usage()`` and ``apply_ownership()``.
* :func:`data_at_risk` -- whether removing a volume would delete data.
* :func:`engine_id_maps` -- the engine's userns-remap id maps (or none).

The pure functions (validation, the local driver shortcuts, drift, the plan,
the refusal message) take plain data and are unit-tested without a daemon.
"""

from __future__ import annotations

import os
import re
import shlex
import stat as stat_module

from ansible_collections.persist.docker.plugins.module_utils import fdtree, idmap
from ansible_collections.persist.docker.plugins.module_utils.client import (
    DockerError,
    api_errors,
    get_or_none,
    os_errors,
)

DEFAULT_HELPER_IMAGE = "busybox:latest"
# Label on helper containers, so that a leftover one is easy to find.
HELPER_LABEL = "persist.docker.helper"
# Where a helper container sees the volume root or host path.
HELPER_MOUNT = "/persist_docker_root"

ROOT_ACCESS_CHOICES = ("auto", "host", "container")
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


def _read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def engine_id_maps(api, docker_host, info=None):
    """The engine's user namespace maps: (uid_map, gid_map, note).

    Maps are lists of (container_start, host_start, size), or None when the
    engine does not remap ids. The ranges come from /etc/subuid and
    /etc/subgid of this host when the engine is local.
    """
    info = info or engine_info(api)
    local = is_local_engine(docker_host)
    try:
        return idmap.engine_maps(info.get("SecurityOptions"), info.get("DockerRootDir"),
                                 _read_text("/etc/subuid") if local else None,
                                 _read_text("/etc/subgid") if local else None)
    except idmap.IdMapError as exc:
        raise DockerError("user namespace of the engine at %s: %s" % (docker_host, exc)) from None


# ---------------------------------------------------------------- volume roots: local or helper

def is_local_engine(docker_host):
    return (docker_host or "").startswith("unix://") or (docker_host or "").startswith("/")


class LocalRoot:
    """A volume root or host path that this process reads and changes directly."""

    how = "host"

    def __init__(self, path):
        self.path = path

    def describe(self):
        return self.path

    def _entries(self, recursive, follow=False):
        """fdtree.walk() of the root (refused when it is a symlink unless follow), or only the root unless recursive."""
        root = fdtree.open_root(self.path, follow)
        if recursive:
            return fdtree.walk(root)
        return iter([("", root, ".", os.fstat(root.fd))])

    def _guard(self, what):
        return _os_errors("%s of %s" % (what, self.path))

    def stat(self):
        """{'uid', 'gid', 'mode', 'exists'} of the root (host ids)."""
        with self._guard("stat"):
            if not os.path.lexists(self.path):
                return dict(uid=None, gid=None, mode=None, exists=False)
            st = os.stat(self.path)
        return dict(uid=st.st_uid, gid=st.st_gid, mode=stat_module.S_IMODE(st.st_mode), exists=True)

    def holds_data(self):
        with self._guard("listing"):
            if not os.path.isdir(self.path):
                return False
            with os.scandir(self.path) as found:
                return next(iter(found), None) is not None

    def usage(self):
        """{'size': bytes of regular files, 'files': regular files, 'entries': all entries below the root}."""
        size = files = entries = 0
        with self._guard("usage"):
            if not os.path.isdir(self.path):
                return dict(size=0, files=0, entries=0)
            for path, _parent, _name, st in self._entries(True, follow=True):
                if not path:
                    continue
                entries += 1
                if stat_module.S_ISREG(st.st_mode):
                    files += 1
                    size += st.st_size
        return dict(size=size, files=files, entries=entries)

    def apply_ownership(self, uid, gid, mode, recursive, check_mode):
        """chown (only what differs) and chmod the root; returns {'chown': n, 'chmod': n}.

        Every entry is changed relative to the descriptor of its directory, never
        through a symlink (fdtree), so a tree that changes meanwhile cannot lead
        the chown onto other files; a root that is a symlink is refused.
        """
        with self._guard("ownership"):
            if not os.path.lexists(self.path):
                if check_mode:
                    umask = os.umask(0o022)
                    os.umask(umask)
                    new = [(self.path, os.geteuid(), os.getegid(), 0o777 & ~umask)]
                    count, chmod = ownership_counts(new, uid, gid, mode)
                    return dict(chown=count, chmod=1 if chmod else 0)
                os.makedirs(self.path)
            entries = []
            root = None
            for path, parent, name, st in self._entries(recursive):
                entries.append((path, st.st_uid, st.st_gid, stat_module.S_IMODE(st.st_mode)))
                if not path:
                    root = parent
                differs = (uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid)
                if differs and not check_mode:
                    os.chown(name, -1 if uid is None else uid, -1 if gid is None else gid, dir_fd=parent.fd,
                             follow_symlinks=False)
            count, chmod = ownership_counts(entries, uid, gid, mode)
            if chmod and not check_mode:
                os.fchmod(root.fd, mode)
        return dict(chown=count, chmod=1 if chmod else 0)


def _os_errors(subject):
    return os_errors(subject, "run the module as root (become: true) or set root_access: container")


class HelperRoot:
    """A volume root or host path reached through a short-lived helper container.

    The helper runs ``helper_image`` (it needs a POSIX shell with find, stat,
    chown, chmod, wc and awk, as busybox has) as root, without network, and
    with the host's user namespace when the engine remaps ids, so that it
    sees and sets host ids as LocalRoot does.
    """

    how = "container"

    def __init__(self, api, source, helper_image, *, host_userns=False, is_path=False):
        self.api = api
        self.source = source
        self.helper_image = helper_image
        self.host_userns = host_userns
        self.is_path = is_path

    def describe(self):
        return ("host path %s" if self.is_path else "volume %s") % self.source + " (through a helper container)"

    def run(self, script):
        """Run ``script`` with sh in a helper container; return its stdout."""
        api = self.api
        subject = "helper container (%s) for %s" % (self.helper_image, self.describe())
        if get_or_none("image '%s'" % self.helper_image, api.inspect_image, self.helper_image) is None:
            raise DockerError("helper image %s is not on the engine; pull or load it there, or set helper_image to "
                              "an image with a POSIX shell and find/stat/chown (busybox)" % self.helper_image)
        with api_errors(subject):
            # Mounts, not Binds: a missing host path is an error rather than created (also in check mode),
            # and an empty volume is not filled from the image.
            mount = {"Target": HELPER_MOUNT, "Source": self.source, "ReadOnly": False,
                     "Type": "bind" if self.is_path else "volume"}
            if not self.is_path:
                mount["VolumeOptions"] = {"NoCopy": True}
            host_config = api.create_host_config(mounts=[mount], network_mode="none",
                                                 userns_mode="host" if self.host_userns else None)
            created = api.create_container(self.helper_image, command=["sh", "-c", script], user="0:0",
                                           entrypoint=[], host_config=host_config, labels={HELPER_LABEL: "volume-root"})
            try:
                api.start(created["Id"])
                status = api.wait(created["Id"]).get("StatusCode", 1)
                out = api.logs(created["Id"], stdout=True, stderr=False).decode("utf-8", "replace")
                err = api.logs(created["Id"], stdout=False, stderr=True).decode("utf-8", "replace")
            finally:
                api.remove_container(created["Id"], force=True)
        if status != 0 and "no such file" in (err or out).lower() and self.is_path:
            raise DockerError("host path %s does not exist on the engine's host; create it first" % self.source)
        if status != 0:
            raise DockerError("%s failed with status %s: %s" % (subject, status, (err or out).strip()[-300:]))
        return out

    def stat(self):
        out = self.run("stat -c '%%u %%g %%a' %s" % HELPER_MOUNT).split()
        return dict(uid=int(out[0]), gid=int(out[1]), mode=int(out[2], 8), exists=True)

    def holds_data(self):
        out = self.run("ls -A %s | head -n 1 | wc -l" % HELPER_MOUNT)
        return out.strip() not in ("", "0")

    def usage(self):
        r = HELPER_MOUNT
        out = self.run("find %s -mindepth 1 | wc -l; find %s -type f | wc -l; "
                       "find %s -type f -exec stat -c %%s {} + | awk '{s+=$1} END {print s+0}'" % (r, r, r)).split()
        return dict(entries=int(out[0]), files=int(out[1]), size=int(float(out[2])))

    def apply_ownership(self, uid, gid, mode, recursive, check_mode):
        r = HELPER_MOUNT
        conditions = []
        if uid is not None:
            conditions.append("! -user %d" % uid)
        if gid is not None:
            conditions.append("! -group %d" % gid)
        depth = "" if recursive else "-maxdepth 0 "
        lines = []
        if conditions:
            expr = "%s %s\\( %s \\)" % (r, depth, " -o ".join(conditions))
            lines.append("find %s | wc -l" % expr)
            if not check_mode:
                spec = "%s%s" % ("" if uid is None else uid, "" if gid is None else ":%d" % gid)
                lines.append("find %s -exec chown -h %s {} +" % (expr, shlex.quote(spec)))
        else:
            lines.append("echo 0")
        if mode is not None:
            lines.append("m=$(stat -c %%a %s); if [ $((0$m)) -ne %d ]; then echo 1; %s else echo 0; fi"
                         % (r, mode, "" if check_mode else "chmod %o %s;" % (mode, r)))
        else:
            lines.append("echo 0")
        out = self.run("set -e; " + "; ".join(lines)).split()
        return dict(chown=int(out[0]), chmod=int(out[1]))


def _usable_locally(docker_host, path, root_access):
    if root_access == "container":
        return False
    usable = is_local_engine(docker_host) and os.geteuid() == 0 and os.path.isabs(path or "")
    if root_access == "host" and not usable:
        raise DockerError("root_access is host but %s is not a directory this module can change as root on a local "
                          "engine; use root_access: auto or container" % path)
    return usable


def volume_root(api, docker_host, attrs, *, helper_image=DEFAULT_HELPER_IMAGE, root_access="auto", host_userns=False):
    """How to reach the root of the volume ``attrs`` (inspect dict): a LocalRoot or a HelperRoot.

    Local mountpoint when the engine is on a local Unix socket, this process
    is root and the directory exists here (plain local volumes), or the bind
    path of a local bind volume; otherwise a helper container that mounts the
    volume (this also mounts nfs, tmpfs and plugin volumes).
    """
    kind = volume_kind(attrs)
    if kind == "bind":
        return path_root(api, docker_host, attrs["Options"]["device"], helper_image=helper_image,
                         root_access=root_access, host_userns=host_userns)
    if kind == "plain" and root_access != "container":
        mountpoint = attrs.get("Mountpoint")
        if _usable_locally(docker_host, mountpoint, root_access) and os.path.isdir(mountpoint):
            return LocalRoot(mountpoint)
    elif root_access == "host":
        raise DockerError("volume '%s' (%s) is mounted only inside containers; use root_access: auto or container"
                          % (attrs.get("Name"), kind))
    return HelperRoot(api, attrs["Name"], helper_image, host_userns=host_userns)


def path_root(api, docker_host, path, *, helper_image=DEFAULT_HELPER_IMAGE, root_access="auto", host_userns=False):
    """How to reach host path ``path`` of the engine's host: a LocalRoot or a HelperRoot.

    A helper container bind-mounts the path (the Engine creates it if missing).
    """
    if not os.path.isabs(path or ""):
        raise DockerError("path %r is not absolute; give the full host path" % (path,))
    if _usable_locally(docker_host, path, root_access):
        return LocalRoot(os.path.normpath(path))
    return HelperRoot(api, os.path.normpath(path), helper_image, host_userns=host_userns, is_path=True)


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
