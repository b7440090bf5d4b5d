"""What a trial ran on: Python, installed packages, OS, host, CPUs and GPUs.

Captured once per run (not per trial) from the interpreter that runs the
script, stored deduplicated by hash so trials can be compared on it later.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

_PROBE = r"""
import json, platform, sys
try:
    from importlib import metadata
    pkgs = {}
    for d in metadata.distributions():
        name = d.metadata["Name"]
        if name:
            pkgs[name.lower()] = d.version
except Exception:
    pkgs = {}
import os
stamp = []
for d in sys.path:
    try:
        stamp.append([d, os.stat(d or ".").st_mtime_ns])
    except OSError:
        pass
print(json.dumps({"python": platform.python_version(), "implementation": platform.python_implementation(),
                  "executable": sys.executable, "packages": dict(sorted(pkgs.items())), "_stamp": stamp}))
"""


def _python_of(argv: list[str], path: str | None = None) -> str | None:
    """The interpreter a command runs (found on ``path``, default ``$PATH``), when it is a Python command."""
    if not argv:
        return None
    exe = Path(argv[0]).name
    if exe.startswith("python"):
        return shutil.which(argv[0], path=path) or argv[0]
    return None


def gpus() -> list[dict[str, str]]:
    """GPUs reported by nvidia-smi (empty when there is none)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    rows = [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]
    return [dict(zip(("index", "name", "memory", "driver"), r, strict=False)) for r in rows]


def gpu_ids() -> list[str]:
    """The GPUs trials may use: ``CUDA_VISIBLE_DEVICES`` when it is set (the user's choice, "" for
    none), else every GPU nvidia-smi reports, by index."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [g.strip() for g in visible.split(",")]
        return ids[:ids.index("-1")] if "-1" in ids else [g for g in ids if g]
    return [g["index"] for g in gpus()]


def _stamp_matches(stamp: list[list[Any]]) -> bool:
    """Whether no directory on the interpreter's sys.path changed (no package (un)installed)."""
    for directory, mtime in stamp:
        try:
            if os.stat(directory or ".").st_mtime_ns != mtime:
                return False
        except OSError:
            return False
    return bool(stamp)


def _probe(python: str, cache: Path | None) -> dict[str, Any]:
    """Python version and packages of ``python``, cached until its sys.path dirs change."""
    # not realpath: a venv's python is a symlink to its base interpreter, with other packages
    key = os.path.abspath(python)
    cached: dict[str, Any] = {}
    if cache is not None and cache.is_file():
        try:
            cached = json.loads(cache.read_text())
        except ValueError:
            cached = {}
        entry = cached.get(key)
        if entry and _stamp_matches(entry.get("_stamp", [])):
            return entry
    try:
        proc = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60)
        info = json.loads(proc.stdout) if proc.returncode == 0 else {}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}
    if cache is not None and info:
        from tracker.yamlio import atomic_write

        cached[key] = info
        atomic_write(cache, json.dumps(cached))
    return info


def capture(argv: list[str], cache: Path | None = None, path: str | None = None) -> dict[str, Any]:
    """Describe the environment the command ``argv`` will run in.

    ``cache`` (a JSON file) keeps the package list of each interpreter until a
    directory on its sys.path changes, so the probe runs once, not every run.
    ``path`` is the ``PATH`` the command will see (a venv's ``bin`` first), default ``$PATH``.
    """
    python = _python_of(argv, path)
    info: dict[str, Any] = {}
    if python:
        info = {k: v for k, v in _probe(python, cache).items() if k != "_stamp"}
    if not info:
        info = {"python": platform.python_version(), "executable": sys.executable, "packages": {}}
    info.update({
        "os": platform.system(),
        "os_release": platform.release(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "gpus": gpus(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    })
    return info


def env_id(info: dict[str, Any]) -> str:
    """A short content hash identifying an environment."""
    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:16]
