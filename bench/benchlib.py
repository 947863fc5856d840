"""Shared reporting for the benchmarks in bench/ (not executable: `make bench` runs only the scripts).

Each script builds its options with `options()`, gets a `Report` from `start()`, adds its figures
(timings, throughputs and the ratios the targets name) and ends with `report.finish()`:

* every figure prints one line, as the benchmarks always did:
  ``module / tar -cf = 0.62x (target >= 0.9x)``;
* ``--json FILE`` writes the figures with the machine they were measured on::

    {"benchmark": "relocate",
     "machine": {"cores": 2, "sha256_mb_s": 612.3, "filesystem": "ext4", "reflink": false, ...},
     "options": {...},
     "figures": [{"section": "relocate", "name": "module (local) / tar | tar", "value": 0.93, "unit": "x",
                  "target": 0.9, "direction": "at least", "met": true, "samples": [...]}, ...]}

  ``direction`` is ``at least`` or ``at most``; ``target``, ``direction`` and ``met`` are null
  for a figure without a target; ``samples`` holds the rounds' values behind a median (or null).
  ``machine``: ``cores``; ``sha256_mb_s``, hashlib.sha256 over 256 MB of memory on one core (best
  of 3 passes), measured at the start of the run; ``filesystem``, the type of the file system of the benchmark's
  data (``label: type, ...`` when its directories differ); ``reflink``, whether that file system can
  share blocks between files (a FICLONE probe; null if unknown); ``blocks_shared``, for the
  benchmarks that copy files, per contender whether its copy shared blocks with the source (FIEMAP;
  null if unknown or mixed); ``kernel`` and ``python``. ``options`` are the run's options;
* ``--check`` makes the exit status 1 when a target is missed, and says which (the JSON file is
  written first); without it a missed target is reported and the exit status stays 0;
* ``--quick`` runs with the small sizes each script names (a check of the harness, not a measurement).

The scripts import it from their own directory (sys.path[0] is bench/ when a script runs).
"""

import argparse
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".tmp", "collections")
MODULES = os.path.join(ROOT, "plugins", "modules")

AT_LEAST = "at least"
AT_MOST = "at most"
_SIGN = {AT_LEAST: ">=", AT_MOST: "<="}
_FORMAT = {"x": "%.2f", "s": "%.3f", "MB/s": "%.1f", "MB": "%.0f"}

HASH_MB = 256

# the head of a playbook that runs on this host with the benchmark's own Python
LOCAL_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""


# --- options ------------------------------------------------------------------------------------------------


def options(doc):
    """An argument parser with the options every benchmark has; the script adds its own."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                     epilog="Run with `make bench` or .venv/bin/python bench/<name>.")
    parser.add_argument("--json", metavar="FILE", help="also write the figures and the machine as JSON to FILE")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and one round: checks the harness, measures nothing useful")
    return parser


def start(parser, benchmark, quick=None):
    """Parse the options (``--quick`` sets the given values where the command line left the default)."""
    opts = parser.parse_args()
    if opts.quick:
        for key, value in (quick or {}).items():
            if getattr(opts, key) == parser.get_default(key):
                setattr(opts, key, value)
    return opts, Report(benchmark, opts)


# --- the machine --------------------------------------------------------------------------------------------


def sha256_speed(megabytes=HASH_MB, passes=3):
    """MB/s of hashlib.sha256 over `megabytes` of memory, on one core (the best of `passes`)."""
    data = b"\x5a" * (megabytes << 20)
    best = None
    for _pass in range(passes):
        begin = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        seconds = time.perf_counter() - begin
        best = seconds if best is None else min(best, seconds)
    return len(data) / 1e6 / best


def filesystem(path):
    """The type of the file system that holds `path` (longest mount point of /proc/mounts), or None."""
    path = os.path.realpath(path)
    best, kind = "", None
    with contextlib.suppress(OSError), open("/proc/mounts") as handle:
        for line in handle:
            fields = line.split()
            mount = fields[1].replace("\\040", " ")
            if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                best, kind = mount, fields[2]
    return kind


FICLONE = 0x40049409
FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_SHARED = 0x2000


def can_reflink(directory):
    """Whether files in `directory` can share blocks (a FICLONE of a small file there); None if unknown."""
    names = [os.path.join(directory, ".pd-bench-reflink-%d-%s" % (os.getpid(), n)) for n in "ab"]
    try:
        with open(names[0], "w+b") as src, open(names[1], "wb") as dst:
            src.write(b"\0" * 65536)
            src.flush()
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS):
            return False
        return None
    finally:
        for name in names:
            with contextlib.suppress(OSError):
                os.unlink(name)
    return True


def shares_blocks(path, extents=64):
    """Whether `path` has blocks shared with another file (FIEMAP, first `extents` extents); None if unknown."""
    header = struct.pack("=QQIIII", 0, 0xFFFFFFFFFFFFFFFF, FIEMAP_FLAG_SYNC, 0, extents, 0)
    buf = bytearray(header + bytes(56 * extents))
    try:
        with open(path, "rb") as handle:
            fcntl.ioctl(handle.fileno(), FS_IOC_FIEMAP, buf, True)
    except OSError:
        return None
    mapped = struct.unpack_from("=I", buf, 20)[0]
    return any(struct.unpack_from("=I", buf, 32 + 56 * i + 40)[0] & FIEMAP_EXTENT_SHARED for i in range(mapped))


# --- the report ---------------------------------------------------------------------------------------------


def _unit(unit):
    return unit if unit == "x" else " " + unit


class Figure:
    def __init__(self, section, name, value, unit, target=None, direction=None, samples=None, note=None):
        if (target is None) != (direction is None):
            raise ValueError("a target needs its direction (at least / at most)")
        self.section, self.name, self.value, self.unit = section, name, value, unit
        self.target, self.direction, self.samples, self.note = target, direction, samples, note

    @property
    def met(self):
        if self.target is None:
            return None
        return self.value >= self.target if self.direction == AT_LEAST else self.value <= self.target

    def line(self):
        value = _FORMAT.get(self.unit, "%.3g") % self.value
        text = "%s = %sx" % (self.name, value) if self.unit == "x" else "%-34s %8s %s" % (self.name, value, self.unit)
        extra = [self.note] if self.note else []
        if self.target is not None:
            extra.insert(0, "target %s %g%s%s" % (_SIGN[self.direction], self.target, _unit(self.unit),
                                                  "" if self.met else ": NOT met"))
        elif self.unit == "x":
            extra.insert(0, "no target")
        if extra:
            text += " (%s)" % "; ".join(extra)
        if self.samples and len(self.samples) > 1:
            text += "   " + " ".join(_FORMAT.get(self.unit, "%.3g") % s for s in self.samples)
        return "  " + text

    def as_dict(self):
        return {"section": self.section, "name": self.name, "value": round(self.value, 4), "unit": self.unit,
                "target": self.target, "direction": self.direction, "met": self.met,
                "samples": None if self.samples is None else [round(s, 4) for s in self.samples]}


class Report:
    """The figures of one benchmark run and the machine they were measured on."""

    def __init__(self, benchmark, opts):
        self.benchmark, self.opts = benchmark, opts
        self.figures, self.section_key = [], benchmark
        self.machine = {"cores": os.cpu_count(), "sha256_mb_s": round(sha256_speed(), 1),
                        "filesystem": None, "reflink": None, "blocks_shared": {},
                        "kernel": platform.release(), "python": platform.python_version()}

    def where(self, **paths):
        """Record the file system of the benchmark's data (label=directory) and whether it can share blocks."""
        kinds = {label.replace("_", " "): filesystem(path) for label, path in paths.items()}
        if len(set(kinds.values())) == 1:
            self.machine["filesystem"] = next(iter(kinds.values()))
        else:
            self.machine["filesystem"] = ", ".join("%s: %s" % item for item in kinds.items())
        probes = [can_reflink(path) for path in paths.values()]
        self.machine["reflink"] = None if None in probes else all(probes)
        m = self.machine
        print("machine: %d cores, sha256 %.0f MB/s on one core, file system %s, reflink %s"
              % (m["cores"], m["sha256_mb_s"], m["filesystem"],
                 {True: "yes", False: "no", None: "unknown"}[m["reflink"]]), flush=True)

    def shared(self, contender, path):
        """Record whether a contender's copy (the file at `path`) shares blocks with its source."""
        shared = shares_blocks(path)
        previous = self.machine["blocks_shared"].get(contender, shared)
        self.machine["blocks_shared"][contender] = shared if previous == shared else None
        return shared

    def section(self, key, heading):
        """Start a group of figures: prints its heading; the figures' JSON carries the key."""
        self.section_key = key
        print("\n" + heading, flush=True)

    def add(self, name, value, unit, target=None, direction=None, samples=None, note=None):
        figure = Figure(self.section_key, name, value, unit, target, direction, samples, note)
        self.figures.append(figure)
        print(figure.line(), flush=True)
        return figure

    def ratio(self, name, value, at_least=None, at_most=None, note=None):
        if at_least is not None:
            return self.add(name, value, "x", at_least, AT_LEAST, note=note)
        if at_most is not None:
            return self.add(name, value, "x", at_most, AT_MOST, note=note)
        return self.add(name, value, "x", note=note)

    def as_dict(self):
        opts = {k: v for k, v in vars(self.opts).items() if k not in ("json", "check")}
        return {"benchmark": self.benchmark, "machine": self.machine, "options": opts,
                "figures": [f.as_dict() for f in self.figures]}

    def finish(self):
        """Write the JSON file if asked; with --check, exit 1 when a target was missed."""
        missed = [f for f in self.figures if f.met is False]
        if self.opts.json:
            with open(self.opts.json, "w") as handle:
                json.dump(self.as_dict(), handle, indent=2)
                handle.write("\n")
        if missed:
            print("\n%s: %d of %d targets missed: %s"
                  % (self.benchmark, len(missed), sum(f.target is not None for f in self.figures),
                     "; ".join("%s%s = %s%s (target %s %g%s)" % (
                         "" if f.section == self.benchmark else f.section + ": ", f.name,
                         _FORMAT.get(f.unit, "%.3g") % f.value, _unit(f.unit), _SIGN[f.direction], f.target,
                         _unit(f.unit)) for f in missed)),
                  file=sys.stderr if self.opts.check else sys.stdout)
        if self.opts.check and missed:
            sys.exit(1)


# --- running things -----------------------------------------------------------------------------------------


def sh(*args, **kwargs):
    """Run a command (an argument list); its stdout, stripped. Fails on a non-zero exit."""
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs).stdout.strip()


def timed(func):
    """(seconds, result) of func()."""
    begin = time.perf_counter()
    result = func()
    return time.perf_counter() - begin, result


def _no_vfork():
    """Runs in the child between fork and exec (its presence alone rules out vfork)."""


def run_module(name, args):
    """Run a module as Ansible runs it on the managed host (the module file with its arguments).

    Returns (result, seconds, peak RSS in MB); a failed module ends the benchmark. The peak RSS is the
    module's own as long as this process holds less memory than the module at its peak.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    try:
        begin = time.perf_counter()
        # preexec_fn makes it a fork, not a vfork: after a vfork the exec'd child's max RSS starts at the
        # peak RSS of this process (its sha256 buffer, the test data), not at its current RSS; the benchmarks
        # start no threads, so preexec_fn is safe here
        proc = subprocess.Popen([sys.executable, os.path.join(MODULES, name + ".py"), handle.name],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                preexec_fn=_no_vfork)  # noqa: PLW1509
        out = proc.stdout.read()
        proc.stdout.close()
        _pid, _status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - begin
        proc.returncode = 0
    finally:
        os.unlink(handle.name)
    try:
        result = json.loads(out)
    except ValueError:
        raise SystemExit("%s printed no result: %s" % (name, out[-2000:])) from None
    if result.get("failed"):
        raise SystemExit("%s failed: %s" % (name, result.get("msg")))
    return result, seconds, usage.ru_maxrss / 1024.0
