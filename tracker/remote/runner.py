#!/usr/bin/env python3
"""tracker's remote runner. Standard library only: tracker copies it to each remote.

Subcommands (each prints one JSON line):
  start SPEC.json  start a trial detached (setsid + double fork): the monitor writes pid.json,
                   refreshes `heartbeat` every few seconds and writes `exit_code` when the
                   command ends; stdout/stderr go to stdout.log/stderr.log in the trial dir
  status DIR       {"exit_code": int|null, "alive": bool, "heartbeat_age": seconds|null}; alive
                   while the monitor or the command runs (pids checked against boot id and start time)
  stop DIR         SIGTERM to the trial's process group, SIGKILL after a grace period
  manifest DIR     {relative path: [size, sha256]} of every file under DIR
  link-from PREV DEST   hard-link the relative paths read from stdin from PREV into DEST
"""

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

HEARTBEAT_SECONDS = 2.0
GRACE_SECONDS = 5.0


def _write(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _start_time(pid):
    """The process's start time in clock ticks since boot (None without /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid, start=None, boot=None):
    """Whether ``pid`` runs and is still the process recorded (same boot, same start time)."""
    if not pid or (boot and boot != _boot_id()):
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return fields[0] != "Z" and (start is None or int(fields[19]) == start)
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False


def _recorded(trial_dir):
    """pid.json of a trial, or {}."""
    try:
        with open(os.path.join(trial_dir, "pid.json")) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def start(spec_path):
    with open(spec_path) as fh:
        spec = json.load(fh)
    trial_dir = spec["trial_dir"]
    pid_file = os.path.join(trial_dir, "pid.json")
    first = os.fork()
    if first:
        os.waitpid(first, 0)
        for _ in range(200):
            if os.path.exists(pid_file):
                with open(pid_file) as fh:
                    print(fh.read().strip())
                return 0
            time.sleep(0.05)
        print(json.dumps({"error": "the monitor did not start"}))
        return 1
    os.setsid()
    if os.fork():
        os._exit(0)
    _monitor(spec, trial_dir, pid_file)
    os._exit(0)


def _monitor(spec, trial_dir, pid_file):
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    env = dict(os.environ)
    env.update(spec.get("env", {}))
    if spec.get("path_prefix"):
        env["PATH"] = spec["path_prefix"] + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    heartbeat = os.path.join(trial_dir, "heartbeat")
    with open(os.path.join(trial_dir, "stdout.log"), "ab") as out, \
            open(os.path.join(trial_dir, "stderr.log"), "ab") as err:
        try:
            child = subprocess.Popen(spec["argv"], cwd=spec["cwd"], env=env, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=err, start_new_session=True)
        except OSError as exc:
            err.write(f"cannot start {spec['argv'][0]!r}: {exc.strerror}\n".encode())
            _write(pid_file, json.dumps({"pid": None, "monitor": os.getpid()}))
            _write(os.path.join(trial_dir, "exit_code"), "127")
            return

        def forward(signum, frame):
            with contextlib.suppress(OSError):
                os.killpg(child.pid, signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        me = os.getpid()
        _write(pid_file, json.dumps({"pid": child.pid, "start": _start_time(child.pid), "monitor": me,
                                     "monitor_start": _start_time(me), "boot": _boot_id()}))
        while True:
            _write(heartbeat, str(time.time()))
            try:
                code = child.wait(timeout=HEARTBEAT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                continue
    _write(heartbeat, str(time.time()))
    _write(os.path.join(trial_dir, "exit_code"), str(code))


def status(trial_dir):
    result = {"exit_code": None, "alive": False, "heartbeat_age": None}
    try:
        with open(os.path.join(trial_dir, "exit_code")) as fh:
            result["exit_code"] = int(fh.read().strip())
    except (OSError, ValueError):
        pass
    pids = _recorded(trial_dir)
    boot = pids.get("boot")
    # the command may outlive a killed monitor: the trial runs while either does
    result["alive"] = _alive(pids.get("monitor"), pids.get("monitor_start"), boot) or \
        _alive(pids.get("pid"), pids.get("start"), boot)
    with contextlib.suppress(OSError):
        result["heartbeat_age"] = round(time.time() - os.stat(os.path.join(trial_dir, "heartbeat")).st_mtime, 1)
    print(json.dumps(result))
    return 0


def stop(trial_dir):
    pids = _recorded(trial_dir)
    pid, start, boot = pids.get("pid"), pids.get("start"), pids.get("boot")
    if not _alive(pid, start, boot):  # never signal a pid that now belongs to another process
        print(json.dumps({"stopped": False, "reason": "no running process"}))
        return 0
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        print(json.dumps({"stopped": False, "reason": "process already gone"}))
        return 0
    deadline = time.time() + GRACE_SECONDS
    while time.time() < deadline and _alive(pid, start, boot):
        time.sleep(0.1)
    if _alive(pid, start, boot):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    print(json.dumps({"stopped": True}))
    return 0


def manifest(root):
    files = {}
    for base, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            path = os.path.join(base, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            files[os.path.relpath(path, root)] = [os.path.getsize(path), digest.hexdigest()]
    print(json.dumps(files))
    return 0


def link_from(prev, dest):
    linked = 0
    for rel in sys.stdin.read().split("\0"):
        if not rel:
            continue
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            os.link(os.path.join(prev, rel), target)
            linked += 1
        except OSError:
            pass
    print(json.dumps({"linked": linked}))
    return 0


def main(argv):
    commands = {"start": start, "status": status, "stop": stop, "manifest": manifest, "link-from": link_from}
    if not argv or argv[0] not in commands:
        print(json.dumps({"error": f"usage: runner.py {'|'.join(commands)} ..."}))
        return 2
    return commands[argv[0]](*argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
