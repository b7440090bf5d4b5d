"""Names users give things: experiments, remotes, storage targets.

A name becomes a file name or a YAML key, so it is letters, digits, ``_``, ``.``
and ``-``, starting with a letter or digit: no spaces, no newline, no control
characters. One rule, checked wherever a name enters tracker.
"""

from __future__ import annotations

import re

from tracker.errors import UsageError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
RULE = "use letters, digits, '_', '.' and '-', starting with a letter or digit"


def valid_name(name: object) -> bool:
    """Whether ``name`` is a valid name (``"gpu1"`` is; ``"gpu1\\n"`` and ``"-x"`` are not)."""
    return isinstance(name, str) and NAME_RE.match(name) is not None


def check_name(kind: str, name: str) -> str:
    """Return ``name``, or raise a UsageError naming the ``kind`` (``"remote"``, ...) and the rule.

    Example: ``check_name("remote", "gpu1")`` returns ``"gpu1"``.
    """
    if not valid_name(name):
        raise UsageError(f"invalid {kind} name {name!r}", hint=RULE)
    return name
