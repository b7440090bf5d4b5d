"""Running a trial's phases one after the other, and telling their output apart.

A training trial of an experiment with a ``validate`` phase runs two commands in one
trial directory: the train command, then (when it succeeded) the validate command,
which can read the checkpoint the first wrote. :data:`CHAIN` is the small program that
does it wherever the trial runs (it needs nothing but a Python 3 interpreter): before
each phase it prints a marker line to stdout and stderr, which :func:`marker` recognises
so that a plain ``acc: 0.9`` line is recorded as ``val/acc`` in the validate phase.
"""

from __future__ import annotations

import json
import re
from typing import Any

_MARKER = re.compile(r"==> tracker: (train|validate|test) phase\b")

CHAIN = r"""
import json, os, signal, subprocess, sys
for step in json.loads(sys.argv[1]):
    note = "==> tracker: %s phase" % step["phase"]
    print(note, flush=True)
    print(note, file=sys.stderr, flush=True)
    try:
        code = subprocess.call(step["argv"], env=dict(os.environ, **step["env"]))
    except OSError as exc:
        print("cannot start %r: %s" % (step["argv"][0], exc.strerror), file=sys.stderr, flush=True)
        sys.exit(127)
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    if code != 0:
        print("tracker: the %s phase exited with code %d" % (step["phase"], code), file=sys.stderr, flush=True)
        sys.exit(code)
"""


def chain_argv(steps: list[dict[str, Any]]) -> list[str]:
    """The command that runs ``steps`` ({phase, argv, env}) in order, stopping at the first failure."""
    return ["python3", "-c", CHAIN, json.dumps(steps)]


def marker(line: str) -> str | None:
    """The phase a marker line starts, or None for any other line."""
    match = _MARKER.match(line)
    return match.group(1) if match else None
