"""Run the command of a systemd service or of a cron file the way systemd or cron would run it.

    python3 run_unit.py service FILE   the [Service] section's ExecStart=, with its Environment=,
                                       WorkingDirectory=, User=, Group= and UMask=, and systemd's
                                       PATH, nothing else of the caller's environment, stdin from
                                       /dev/null
    python3 run_unit.py cron FILE      the one entry of a cron.d file (five fields, a user, a
                                       command), by /bin/sh -c in the user's home, with cron's
                                       environment and the file's variables

The exit status is the command's.
"""

import grp
import os
import pwd
import shlex
import sys

SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"


def service(path):
    section, keys = None, {}
    with open(path) as handle:
        for raw in handle:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section == "Service":
                key, _sep, value = line.partition("=")
                keys.setdefault(key, []).append(value)
    for key in keys:
        if key not in ("Type", "ExecStart", "Environment", "WorkingDirectory", "User", "Group", "UMask"):
            sys.exit("run_unit: %s: %s= is not understood here" % (path, key))
    (command,) = keys["ExecStart"]
    if "%" in command or command[:1] in "-@+!:":
        sys.exit("run_unit: %s: specifiers and prefixes of ExecStart= are not understood here" % path)
    env = {"PATH": SYSTEMD_PATH}
    for value in keys.get("Environment", []):
        for word in shlex.split(value):
            name, _sep, setting = word.partition("=")
            env[name] = setting
    user = keys.get("User", [None])[0]
    if user:
        entry = pwd.getpwnam(user)
        env.update(HOME=entry.pw_dir, USER=user, LOGNAME=user, SHELL=entry.pw_shell)
    group = keys.get("Group", [None])[0]
    run(shlex.split(command), env, keys.get("WorkingDirectory", ["/"])[0], user, group,
        int(keys.get("UMask", ["0022"])[0], 8))


def cron(path):
    env, entries = {}, []
    with open(path) as handle:
        for raw in handle:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            words = line.split(None, 6)
            if "=" in line and (len(words) < 7 or "=" in words[0]):
                name, _sep, value = line.partition("=")
                env[name.strip()] = value.strip().strip("\"'")
            else:
                entries.append(words)
    if len(entries) != 1:
        sys.exit("run_unit: %s: %d entries, expected one" % (path, len(entries)))
    user, command = entries[0][5], entries[0][6]
    if "%" in command:
        sys.exit("run_unit: %s: %% in a cron command is not understood here" % path)
    entry = pwd.getpwnam(user)
    base = {"SHELL": "/bin/sh", "PATH": "/usr/bin:/bin", "LOGNAME": user, "HOME": entry.pw_dir}
    base.update(env)
    run(["/bin/sh", "-c", command], base, base["HOME"], user, None, 0o022)


def run(argv, env, cwd, user, group, umask):
    if group:
        os.setgid(grp.getgrnam(group).gr_gid)
    if user:
        entry = pwd.getpwnam(user)
        if not group:
            os.setgid(entry.pw_gid)
        os.initgroups(user, os.getgid())
        os.setuid(entry.pw_uid)
    os.chdir(cwd)
    os.umask(umask)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    sys.stdout.flush()
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    {"service": service, "cron": cron}[sys.argv[1]](sys.argv[2])
