# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Running the restic CLI on the managed host, safely.

No secret ever reaches restic's command line: the repository (which may hold a user and
password, ``rest:https://user:pass@host/``), the repository's password and the user's
``repository_env`` (``AWS_SECRET_ACCESS_KEY``, ...) go to restic through its environment;
``argv`` holds the subcommand and its options only. Messages name a repository through
:func:`redact` and have the secrets scrubbed from restic's output (:func:`scrub`).

Also the one place of the snapshot convention that the backup modules write and ``backup_info``
and ``backup_retention`` read, and the parsers of restic's JSON output (``snapshots --json``, the
``summary`` line of ``backup --json``).

The snapshot convention (restic 0.14 keeps no other metadata with a snapshot than its tags):

* One backup run of volume V writes a **data snapshot** with the tags
  ``persist.docker.volume=V``, ``persist.docker.digest=sha256:<hex>`` (the digest of the volume's
  manifest), ``persist.docker.run=<run id>``, ``persist.docker.bytes=<n>``,
  ``persist.docker.files=<n>`` and ``persist.docker.format=tree`` (the volume's directory, read from
  its mountpoint, under its own name: ``_data`` for the local driver; a plain ``restic restore
  --target DIR`` gives ``DIR/_data``, its owner and mode included)
  or ``persist.docker.format=tar`` (one file ``/V.tar`` holding the volume as a tar stream, read
  through the Engine API), and the user's tags.
  The digest, bytes and files tags are left out when they are not known before restic reads the
  data (a first backup from the mountpoint, whose files are hashed while restic reads them, and
  every backup through the Engine API): a ``restic tag`` run to add them would rewrite the
  snapshot and cost a restic run.
* And a **manifest snapshot**: the one file ``/V.manifest.json`` (the manifest, as beside an
  archive, with the ``stat`` of each entry for the metadata-only unchanged check) with the tags
  ``persist.docker.manifest=V``, the same ``persist.docker.run=<run id>`` and the digest, bytes and
  files tags. It comes after the data snapshot; from the mountpoint of a volume held still, while
  restic reads the data (a run whose data snapshot then fails forgets both).
* A data snapshot is **complete** when a manifest snapshot of its run exists; only complete ones
  are restored or used as a parent; a field its own tags lack is read from its manifest snapshot's
  tags. Retention removes a run's two snapshots together.
* Both get ``--host`` = the engine's name, so that volumes of one name on several engines backed
  up into one repository are told apart.

Everything but :func:`run`, :func:`version` and :func:`full_snapshot_id` is pure. This file imports no Docker SDK.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import threading

from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

TAG_VOLUME = "persist.docker.volume"
TAG_DIGEST = "persist.docker.digest"
TAG_RUN = "persist.docker.run"
TAG_BYTES = "persist.docker.bytes"
TAG_FILES = "persist.docker.files"
TAG_FORMAT = "persist.docker.format"
TAG_MANIFEST = "persist.docker.manifest"
FORMATS = ("tree", "tar")
# tag key -> field of tag_fields(), and whether its value is a count
FIELDS = {TAG_VOLUME: ("volume", False), TAG_DIGEST: ("digest", False), TAG_RUN: ("run", False),
          TAG_BYTES: ("bytes", True), TAG_FILES: ("files", True), TAG_FORMAT: ("format", False),
          TAG_MANIFEST: ("manifest_of", False)}
TIMEOUT = 3600
CHUNK = 1 << 20
# What restic 0.14 says when a lock stops a command (call() removes stale locks then, and runs it once more).
LOCKED = ("repository is already locked",)
# What restic 0.14 says when nothing is at the repository's location (the stat of its config fails).
NO_REPOSITORY = ("Is there a repository at the following location?",)
INSTALL_HINT = "restic is not installed on the managed host; install the restic package"
CHECK_LINES = 10

# Variables of restic's environment that the module's own options set: inherited or given in
# repository_env they would override (or fight with) the options.
OWN_VARIABLES = ("RESTIC_REPOSITORY", "RESTIC_REPOSITORY_FILE", "RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE",
                 "RESTIC_PASSWORD_COMMAND")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# scheme://user:password@ inside a repository string (rest:, s3:, swift: and rclone URLs).
URL_PASSWORD = re.compile(r"(://[^/@:\s]*:)[^/@\s]*(@)")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


# -- the tag convention ---------------------------------------------------------------------------

def check_tag(tag):
    """Return tag if restic 0.14 keeps it as it is, or raise DockerError (pure).

    restic splits a --tag value at commas, trims surrounding white space and drops empty tags.
    """
    if not tag or tag != tag.strip() or "," in tag or any(ord(c) < 32 or ord(c) == 127 for c in tag):
        raise DockerError("restic tag %r is not usable: a tag must be non-empty, without commas, control "
                          "characters or surrounding spaces" % tag)
    return tag


def volume_tag(volume):
    """The tag that names the volume a snapshot holds (pure)."""
    return check_tag("%s=%s" % (TAG_VOLUME, volume))


def digest_tag(digest):
    """The tag that holds the manifest digest (``sha256:<64 hex>``) of a snapshot's volume (pure)."""
    if not DIGEST.match(digest or ""):
        raise DockerError("manifest digest %r is not of the form sha256:<64 hex digits>" % (digest,))
    return check_tag("%s=%s" % (TAG_DIGEST, digest))


def tag_fields(tags):
    """The fields of the convention read from a snapshot's tags (pure): ``volume``, ``digest``, ``run``,
    ``bytes``, ``files`` (ints), ``format``, ``manifest_of`` (the volume of a manifest snapshot); None
    when absent or not a count."""
    fields = {name: None for name, _count in FIELDS.values()}
    for tag in tags or ():
        key, sep, value = tag.partition("=")
        if not sep or key not in FIELDS:
            continue
        name, count = FIELDS[key]
        if count:
            value = int(value) if value.isdigit() else None
        fields[name] = value
    return fields


def run_tag(run):
    """The tag that pairs a data snapshot with its manifest snapshot (pure)."""
    return check_tag("%s=%s" % (TAG_RUN, run))


def data_tags(volume, digest, run, size, files, fmt, extra=()):
    """The tags of a data snapshot (pure), the user's ``extra`` tags last."""
    if fmt not in FORMATS:
        raise DockerError("snapshot format %r is not one of %s" % (fmt, ", ".join(FORMATS)))
    tags = [volume_tag(volume), digest_tag(digest), run_tag(run), "%s=%d" % (TAG_BYTES, size),
            "%s=%d" % (TAG_FILES, files), "%s=%s" % (TAG_FORMAT, fmt)]
    return tags + user_tags(extra)


def user_tags(tags):
    """The user's tags of a snapshot, checked (pure): usable by restic, none of the convention's names."""
    for tag in tags or ():
        check_tag(tag)
        if tag.partition("=")[0] in FIELDS:
            raise DockerError("tag %r uses a name that the collection sets itself (%s); choose another tag"
                              % (tag, tag.partition("=")[0]))
    return list(tags or ())


def manifest_tags(volume, run, digest=None, size=None, files=None):
    """The tags of a manifest snapshot (pure); with digest, also the digest, bytes and files of its data."""
    tags = [check_tag("%s=%s" % (TAG_MANIFEST, volume)), run_tag(run)]
    if digest is not None:
        tags += [digest_tag(digest), "%s=%d" % (TAG_BYTES, size), "%s=%d" % (TAG_FILES, files)]
    return tags


# restic's backends other than a directory on this host (restic 0.14's location prefixes)
_ELSEWHERE = ("b2:", "sftp:", "s3:", "gs:", "azure:", "swift:", "rest:", "rclone:")


def local_directory(repository):
    """The directory of a repository string that names one on this host (restic's local backend,
    ``/path`` or ``local:/path``), else None (pure)."""
    if not repository or repository.startswith(_ELSEWHERE):
        return None
    path = repository[len("local:"):] if repository.startswith("local:") else repository
    return path if os.path.isabs(path) else None


def full_snapshot_id(repository, short):
    """The full id of the snapshot whose id starts with short, from the names in a local repository's
    ``snapshots/`` directory; None for other backends, or when none or several names match."""
    directory = local_directory(repository)
    if directory is None or not re.fullmatch(r"[0-9a-f]{8,63}", short or ""):
        return None
    try:
        names = os.listdir(os.path.join(directory, "snapshots"))
    except OSError:
        return None
    found = [name for name in names if name.startswith(short) and re.fullmatch(r"[0-9a-f]{64}", name)]
    return found[0] if len(found) == 1 else None


def manifest_file(volume):
    """The name of the manifest snapshot's one file (pure)."""
    return "%s.manifest.json" % volume


def tar_file(volume):
    """The name of the one file of a data snapshot of format ``tar`` (pure)."""
    return "%s.tar" % volume


MERGED = ("digest", "bytes", "files")


def complete(snapshots):
    """The data snapshots among snapshots whose run has a manifest snapshot (pure), in the given order, each with
    its ``manifest_id`` and the digest, bytes and files its own tags lack taken from the manifest snapshot's."""
    manifests = {}
    for s in snapshots:
        if s.get("manifest_of") and s.get("run"):
            manifests[(s["manifest_of"], s["run"])] = s
    found = []
    for s in snapshots:
        partner = manifests.get((s.get("volume"), s.get("run")))
        if not s.get("volume") or not s.get("run") or partner is None:
            continue
        merged = dict(s, manifest_id=partner["id"])
        for field in MERGED:
            if merged.get(field) is None:
                merged[field] = partner.get(field)
        if merged["digest"]:
            found.append(merged)
    return found


# -- secrets out of argv, messages and output -----------------------------------------------------

def redact(repository):
    """The repository string with any password in it replaced by ``***``, as restic prints it (pure)."""
    return URL_PASSWORD.sub(r"\1***\2", repository or "")


def url_password(repository):
    """The password inside a repository URL (``rest:https://user:PASSWORD@host/``), or None (pure)."""
    match = re.search(r"://[^/@:\s]*:([^/@\s]*)@", repository or "")
    return match.group(1) if match else None


def secrets_of(repository, password=None, repository_env=None):
    """The strings that must never show in a message (pure): password, env values, a URL's password."""
    found = [password, url_password(repository)] + [str(v) for v in (repository_env or {}).values() if v is not None]
    return [s for s in found if s and len(s) >= 3]


def scrub(text, secrets):
    """text with each secret replaced by ``***`` (pure)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def environment(repository, password=None, password_file=None, repository_env=None, base=None):
    """The environment restic runs with (pure): ``base`` (os.environ) without the variables the
    options own, then the user's ``repository_env``, the repository and the password (or its file).
    """
    if (password is None) == (password_file is None):
        raise DockerError("give exactly one of repository_password and repository_password_file")
    env = {k: v for k, v in (base if base is not None else os.environ).items() if k not in OWN_VARIABLES}
    for key, value in (repository_env or {}).items():
        if not ENV_NAME.match(str(key)):
            raise DockerError("repository_env: %r is not a name of an environment variable" % (key,))
        if key in OWN_VARIABLES:
            raise DockerError("repository_env: %s is set by the options repository, repository_password and "
                              "repository_password_file; remove it from repository_env" % key)
        env[key] = "" if value is None else str(value)
    env["RESTIC_REPOSITORY"] = repository
    if password is not None:
        env["RESTIC_PASSWORD"] = password
    else:
        env["RESTIC_PASSWORD_FILE"] = password_file
    return env


def argv(binary, command, *args):
    """restic's command line (pure): the binary, the subcommand and its options, never a secret.

    The repository is not on it either (RESTIC_REPOSITORY, since it may hold a password).
    """
    return [binary, command] + [str(a) for a in args]


# -- output of restic ----------------------------------------------------------------------------

def parse_version(text):
    """``0.14.0`` from ``restic version`` (pure), or None."""
    match = re.match(r"restic (\d+\.\d+\.\d+)", text or "")
    return match.group(1) if match else None


def snapshot_summary(snapshot):
    """One snapshot as backup_info returns it (pure)."""
    tags = list(snapshot.get("tags") or [])
    result = dict(id=snapshot.get("id"), short_id=snapshot.get("short_id") or (snapshot.get("id") or "")[:8],
                  time=snapshot.get("time"), hostname=snapshot.get("hostname"),
                  paths=list(snapshot.get("paths") or []), tags=tags)
    result.update(tag_fields(tags))
    return result


def parse_snapshots(text, subject):
    """The snapshots of ``snapshots --json`` (pure), oldest first as restic lists them."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        data = {}
    if data is None:  # "null": no snapshots
        data = []
    if not isinstance(data, list) or not all(isinstance(s, dict) for s in data):
        raise DockerError("%s: restic printed no snapshot list where one was expected; is the restic "
                          "binary a restic >= 0.14?" % subject)
    return [snapshot_summary(s) for s in data]


def parse_backup_summary(text, subject):
    """The ``summary`` message of ``backup --json`` (pure), from its JSON lines."""
    summary = None
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line.startswith("{"):
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("message_type") == "summary":
            summary = message
    if summary is None:
        raise DockerError("%s: restic's backup printed no summary; the snapshot may not have been saved" % subject)
    return summary


def last_lines(text, count=CHECK_LINES):
    """The last ``count`` non-empty lines of text (pure)."""
    return [line for line in (text or "").splitlines() if line.strip()][-count:]


# Known failures: the texts restic 0.14 (or the S3 server through it) prints, and what to tell the user.
# The first match wins; "%s" is filled with restic's Fatal line. Order matters: an S3 refusal is
# followed by restic's "Is there a repository ..." too.
CAUSES = (
    (("wrong password or no key found",),
     "wrong password or no key found; give the repository's password in repository_password or "
     "repository_password_file"),
    (("SignatureDoesNotMatch", "signature we calculated does not match"),
     "the S3 server refused the secret key (SignatureDoesNotMatch); check AWS_SECRET_ACCESS_KEY in repository_env"),
    (("InvalidAccessKeyId", "Access Denied", "AccessDenied", "Key ID you provided does not exist"),
     "the S3 server denied access; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in repository_env and "
     "the key's rights on the bucket"),
    (("The specified bucket does not exist",),
     "the S3 bucket does not exist; create it, or correct the repository"),
    (("Is there a repository at the following location?",),
     "there is no restic repository there (%s); correct the repository, or create it with 'restic init'"),
    (("Resolving password failed", "an empty password is not a password"),
     "the password could not be read (%s); check repository_password_file"),
    (("unable to create lock", "repository is already locked"),
     "the repository is locked by another restic process (%s); wait for it, or remove a stale lock with "
     "'restic unlock'"),
)


def known_cause(stderr):
    """The cause and what to do, for a failure that restic reports in a known way, or None (pure)."""
    text = stderr or ""
    for markers, message in CAUSES:
        if any(marker.lower() in text.lower() for marker in markers):
            return message % fatal_line(text) if "%s" in message else message
    return None


def classify(stderr, subject):
    """A one-line message for restic's failure (pure): the cause and what to do, else restic's last line.

    ``subject`` names the repository, already redacted (``restic repository 's3:...'``).
    """
    cause = known_cause(stderr)
    if cause is None:
        lines = last_lines(stderr, 1)
        cause = "restic failed: %s" % (lines[0] if lines else "no message")
    return "%s: %s" % (subject, cause)


def fatal_line(text):
    """restic's first ``Fatal:`` line without the prefix, or its last line (pure)."""
    for line in text.splitlines():
        if line.startswith("Fatal:"):
            return line[len("Fatal:"):].strip()
    lines = last_lines(text, 1)
    return lines[0] if lines else "no message"


# -- running restic ------------------------------------------------------------------------------

def find_binary(path=None):
    """The path of the restic binary, searched in ``path`` (default: PATH and the usual bin directories),
    or DockerError with what to install."""
    if path is None:
        path = os.pathsep.join(p for p in (os.environ.get("PATH", ""), "/usr/local/bin", "/usr/bin", "/bin") if p)
    binary = shutil.which("restic", path=path)
    if not binary:
        raise DockerError(INSTALL_HINT)
    return binary


class NoRepository(DockerError):
    """restic found no repository at the repository's location."""


def _widen_pipe(pipe):
    """Let the pipe hold CHUNK bytes (Linux; 64 KiB by default), so that each read takes up to that much: fewer
    reads, and fewer hand-overs between the threads of the consumer. Best effort."""
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, CHUNK)


class Restic:
    """restic run on one repository, with its secrets in the environment only."""

    def __init__(self, repository, password=None, password_file=None, repository_env=None,
                 timeout=TIMEOUT, binary=None):
        self.repository = repository
        self.subject = "restic repository '%s'" % redact(repository)
        self.secrets = secrets_of(repository, password, repository_env)
        self.env = environment(repository, password, password_file, repository_env)
        self.timeout = timeout
        self.binary = binary or find_binary()

    def _start(self, command, args, stdin=subprocess.DEVNULL, cwd=None):
        cmd = argv(self.binary, command, *args)
        try:
            # Not AnsibleModule.run_command: it has no timeout, and restic's process group must be killed
            # when one runs out (this file is pure of the module object, as its tests are).
            return subprocess.Popen(cmd, env=self.env, stdin=stdin, stdout=subprocess.PIPE,  # pylint: disable=ansible-bad-function
                                    stderr=subprocess.PIPE, start_new_session=True, cwd=cwd)
        except OSError as exc:
            raise DockerError("%s: cannot run %s: %s; %s"
                              % (self.subject, self.binary, exc.strerror, INSTALL_HINT)) from None

    def run(self, command, *args, cwd=None):
        """(rc, stdout, stderr) of restic; stdin is closed, the run bounded by the timeout."""
        proc = self._start(command, args, cwd=cwd)
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise DockerError("%s: 'restic %s' did not end within %d seconds; raise restic_timeout, or look for "
                              "what holds it (network, lock)" % (self.subject, command, self.timeout)) from None
        return (proc.returncode, scrub(out.decode("utf-8", "replace"), self.secrets),
                scrub(err.decode("utf-8", "replace"), self.secrets))

    def call(self, command, *args, cwd=None):
        """stdout of a restic run that must succeed; DockerError with the classified cause otherwise."""
        rc, out, err = self.run(command, *args, cwd=cwd)
        if rc != 0 and command != "unlock" and any(marker in err for marker in LOCKED) and self.unlock():
            rc, out, err = self.run(command, *args, cwd=cwd)  # once more, without the stale lock
        if rc != 0:
            if any(marker in err for marker in NO_REPOSITORY):
                raise NoRepository(classify(err, self.subject))
            raise DockerError(classify(err, self.subject))
        return out

    def _watchdog(self, proc, command):
        """A started timer that kills proc's process group when the timeout runs out."""
        def expire():
            expired.append(command)
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
        expired = []
        timer = threading.Timer(self.timeout, expire)
        timer.daemon = True
        timer.start()
        return timer, expired

    def _timed_out(self, command):
        return DockerError("%s: 'restic %s' did not end within %d seconds; raise restic_timeout, or look for what "
                           "holds it (network, lock)" % (self.subject, command, self.timeout))

    def stream(self, command, *args):
        """The stdout of restic (``dump``) as chunks of at most ``CHUNK`` bytes; DockerError with the
        classified cause when restic fails, after the last chunk. Closing the generator early kills restic."""
        proc = self._start(command, args)
        _widen_pipe(proc.stdout)
        timer, expired = self._watchdog(proc, command)
        errors = []
        reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
        reader.start()
        done = False
        try:
            while True:
                chunk = proc.stdout.read1(CHUNK) if hasattr(proc.stdout, "read1") else proc.stdout.read(CHUNK)
                if not chunk:
                    break
                yield chunk
            done = True
        finally:
            if not done:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.stdout.close()
            rc = proc.wait()
            reader.join()
            timer.cancel()
        if expired:
            raise self._timed_out(command)
        if rc != 0:
            err = scrub((errors[0] if errors else b"").decode("utf-8", "replace"), self.secrets)
            raise DockerError(classify(err, self.subject))

    def feed(self, command, chunks, *args):
        """stdout of restic run with chunks on its stdin (``backup --stdin``); DockerError with the classified
        cause when it fails. An error of the chunks' own source is raised as it is, restic killed first."""
        proc = self._start(command, args, stdin=subprocess.PIPE)
        timer, expired = self._watchdog(proc, command)
        found = {}

        def read(name, pipe):
            found[name] = pipe.read()
        readers = [threading.Thread(target=read, args=(n, getattr(proc, n)), daemon=True) for n in ("stdout", "stderr")]
        for thread in readers:
            thread.start()
        done = False
        try:
            for chunk in chunks:
                proc.stdin.write(chunk)
            done = True
        except BrokenPipeError:
            done = True  # restic stopped reading: its exit status and message tell why
        finally:
            if not done:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            rc = proc.wait()
            for thread in readers:
                thread.join()
            timer.cancel()
        if expired:
            raise self._timed_out(command)
        out, err = (scrub((found.get(n) or b"").decode("utf-8", "replace"), self.secrets) for n in ("stdout", "stderr"))
        if rc != 0:
            raise DockerError(classify(err, self.subject))
        return out

    def unlock(self):
        """Remove the repository's stale locks (``restic unlock``): those of restic processes of this host that no
        longer run, and those nobody refreshed for 30 minutes; a live process's lock stays. restic 0.14 does not
        skip a stale lock: a killed run's lock stops every command that locks exclusively (check, tag, forget,
        prune), or a backup after a killed exclusive one, until it is removed. True when restic answered."""
        return self.run("unlock")[0] == 0

    def init(self):
        self.call("init")

    def version(self):
        """restic's version, such as ``0.14.0``."""
        rc, out, err = self.run("version")
        found = parse_version(out)
        if rc != 0 or not found:
            raise DockerError("%s does not answer 'version' as restic does (%s); %s"
                              % (self.binary, (last_lines(err or out, 1) or ["no output"])[0], INSTALL_HINT))
        return found

    def snapshots(self, volume=None, tags=(), lock=True):
        """The snapshots, of one volume (by its tag) when given, or with any of tags; without a lock file in the
        repository when lock is False (saves a write and a wait, and reads what is complete anyway)."""
        args = ["--json"] if lock else ["--no-lock", "--json"]
        for tag in ([volume_tag(volume)] if volume is not None else []) + list(tags):
            args += ["--tag", check_tag(tag)]
        return parse_snapshots(self.call("snapshots", *args), self.subject)

    def check(self, read_data_subset=None):
        """``{ok, output}`` of ``restic check``; DockerError when the repository cannot be opened."""
        args = ["--read-data-subset", read_data_subset] if read_data_subset else []
        rc, out, err = self.run("check", *args)
        if rc != 0 and any(marker in err for marker in LOCKED) and self.unlock():
            rc, out, err = self.run("check", *args)
        output = last_lines(out + "\n" + err)
        if rc != 0 and known_cause(err) is not None:
            raise DockerError(classify(err, self.subject))
        return dict(ok=rc == 0, output=output)


READ_DATA_SUBSET = re.compile(r"^(?:[1-9]\d*/[1-9]\d*|\d+(?:\.\d+)?%|\d+[kKmMgGtT]?)$")


def check_read_data_subset(value):
    """value if restic 0.14's ``check --read-data-subset`` takes it (``n/t``, ``x%``, a size), or raise (pure)."""
    if not READ_DATA_SUBSET.match(value or ""):
        raise DockerError("read_data_subset %r is not n/t (such as 1/5), a percentage (10%%) or a size (500M)"
                          % (value,))
    if "/" in value:
        n, t = (int(x) for x in value.split("/"))
        if n > t:
            raise DockerError("read_data_subset %r: the group %d is beyond the %d groups" % (value, n, t))
    elif value.endswith("%") and not 0 < float(value[:-1]) <= 100:
        raise DockerError("read_data_subset %r: a percentage is above 0 and at most 100" % value)
    return value
