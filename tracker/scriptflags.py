"""What a script's command line accepts, and what to do when it refuses a flag.

``experiments create`` runs ``SCRIPT --help`` once (with a timeout; only for a Python file of
the project that uses argparse, so that nothing else is started) and reads argparse's usage:
which ``--flags`` exist and which are switches (``store_true``/``store_false``, no value).
From that it writes ``seed_flag: null`` for a script without ``--seed`` and ``booleans: bare``
for a script with switches. Nothing here ever fails a command: a script whose ``--help`` does
not answer simply gets no detection.

At run time, a script that exits with argparse's "unrecognized arguments: --seed=3" gets a
one-line hint naming the experiment setting that maps the flag (:func:`refusal_hint`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tracker.config import ExperimentConfig

HELP_TIMEOUT = 15.0
"""Seconds ``SCRIPT --help`` may take (imports of a deep-learning script included)."""

_USAGE_OPTION = re.compile(r"--([A-Za-z0-9][\w.-]*)( (?![-\[])[^\s\]]+)?")
_REFUSED = re.compile(r"unrecognized arguments: (\S+)", re.M)
_SWITCH = re.compile(r"argument (?:-\w/)?(--[\w.-]+)(?:/-\w)?: ignored explicit argument '([^']*)'")
_NEEDS_VALUE = re.compile(r"argument (?:-\w/)?(--[\w.-]+)(?:/-\w)?: expected one argument")


@dataclass(frozen=True)
class ScriptFlags:
    """The long options of a script's argparse usage: name -> whether it takes a value."""

    options: dict[str, bool]

    def accepts(self, name: str) -> bool:
        return name in self.options

    @property
    def switches(self) -> list[str]:
        """Options that take no value (``store_true``/``store_false``), ``--help`` left out."""
        return [name for name, value in self.options.items() if not value and name != "help"]


def parse_usage(text: str) -> ScriptFlags | None:
    """The options named in argparse's ``usage:`` block of ``text`` (``--help`` output); None without one.

    >>> parse_usage("usage: t.py [-h] [--lr LR] [--no-test]\\n").options
    {'help': False, 'lr': True, 'no-test': False}
    """
    start = text.find("usage:")
    if start < 0:
        return None
    usage = text[start:].split("\n\n", 1)[0]
    options: dict[str, bool] = {"help": False} if "-h" in usage else {}
    for match in _USAGE_OPTION.finditer(usage):
        options[match.group(1)] = match.group(2) is not None
    return ScriptFlags(options)


def _resolve(argv: list[str]) -> list[str]:
    """``argv`` with a bare ``python``/``python3`` that is not on PATH replaced by this interpreter."""
    if argv and argv[0] in ("python", "python3") and shutil.which(argv[0]) is None:
        return [sys.executable, *argv[1:]]
    return argv


def _uses_argparse(root: Path, argv: list[str]) -> bool:
    """Whether the command runs a Python file of the project that uses argparse: only then is
    ``--help`` sure to print usage and exit instead of, say, starting to train."""
    script = next((root / a for a in argv if a.endswith(".py") and (root / a).is_file()), None)
    try:
        return script is not None and "argparse" in script.read_text(errors="replace")
    except OSError:
        return False


def probe(root: Path, argv: list[str], timeout: float = HELP_TIMEOUT) -> ScriptFlags | None:
    """Run ``argv --help`` in ``root`` and read its usage; None for a command that is not an argparse
    script of the project, or whose ``--help`` does not answer in time or at all."""
    if not _uses_argparse(root, argv):
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    try:
        done = subprocess.run([*_resolve(argv), "--help"], cwd=root, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return parse_usage(done.stdout) if done.returncode == 0 else None


def refusal_hint(stderr: str, config: ExperimentConfig, experiment_file: str) -> str | None:
    """One line naming the flag argparse refused (``stderr`` of the script) and how to map it; None otherwise."""
    switch = _SWITCH.search(stderr)
    if switch:
        flag = f"{switch.group(1)}={switch.group(2)}"
    elif (valued := _NEEDS_VALUE.search(stderr)) is not None:
        return (f"the script refused {valued.group(1)} without a value: set 'booleans: value' in {experiment_file} "
                f"(it then gets {valued.group(1)}=true or =false)")
    elif (match := _REFUSED.search(stderr)) is not None:
        flag = match.group(1)
    else:
        return None
    name, _, value = flag.lstrip("-").partition("=")
    if config.seed_flag and name == config.seed_flag:
        return (f"the script refused {flag}: it takes no --{name}; set 'seed_flag: null' in {experiment_file} "
                "(the seed then comes only as TRACKER_SEED), or 'seed_flag: NAME' for its own seed flag")
    if value in ("true", "false"):
        return (f"the script refused {flag}: --{name} is a switch; set 'booleans: bare' in {experiment_file} "
                f"(true passes --{name}, false leaves it out)")
    return (f"the script refused {flag}: it has no --{name}; rename the param to one of its flags "
            f"(see its --help), or set 'params_as: env' in {experiment_file}")
