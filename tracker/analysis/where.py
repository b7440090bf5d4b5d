"""``--where``: a small, safe filter language over a trial's params and metrics (never ``eval``).

Grammar::

    expr       := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "not" factor | "(" expr ")" | comparison
    comparison := NAME OP VALUE          OP: < <= > >= == = !=
    VALUE      := number | 'text' | "text" | a bare word (relu) | true | false | null

NAME is a param of the trial, else one of its metrics (last value: ``val/acc>0.8``), else
``seed`` or ``experiment``. Ordering comparisons hold only between numbers; a trial without
the name fails every comparison with it. Examples: ``lr<0.1``, ``layers>=2 and act==relu``,
``not (opt == sgd or lr > 0.5)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from tracker.errors import UsageError

Lookup = Callable[[str], Any]  # name -> value of one trial (MISSING when it has none)
MISSING = object()

_TOKEN = re.compile(r"""\s*(?:
    (?P<op><=|>=|==|!=|<|>|=)
  | (?P<paren>[()])
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w./-]))
  | (?P<word>[A-Za-z_][\w./-]*)
  | (?P<bad>\S)
)""", re.VERBOSE)
_KEYWORDS = {"and", "or", "not"}
_LITERALS = {"true": True, "false": False, "null": None, "none": None}
_ORDER = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


@dataclass(frozen=True)
class Condition:
    """A parsed ``--where``: the names it uses and a test of one trial."""

    text: str
    names: list[str]
    test: Callable[[Lookup], bool]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is MISSING:
        return False
    if op in _ORDER:
        return _is_number(left) and _is_number(right) and bool(_ORDER[op](left, right))
    same = (left == right) if (_is_number(left) and _is_number(right)) or type(left) is type(right) else False
    return same if op in ("==", "=") else not same


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:  # only trailing spaces are left
                break
            kind = m.lastgroup or "bad"
            self.tokens.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.i = 0
        self.names: list[str] = []

    def fail(self, message: str, at: int | None = None) -> UsageError:
        if at is None:
            at = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text)
        where = f"at column {at + 1} ({self.text[at:]!r})" if at < len(self.text.rstrip()) else "at the end"
        return UsageError(f"bad --where {self.text!r}: {message} {where}",
                          hint='write comparisons joined by and/or/not, e.g. --where "lr<0.1 and act==relu"')

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def word(self, value: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].lower() == value:
            self.i += 1
            return True
        return False

    def expr(self) -> Callable[[Lookup], bool]:
        parts = [self.term()]
        while self.word("or"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda get: any(p(get) for p in parts))

    def term(self) -> Callable[[Lookup], bool]:
        parts = [self.factor()]
        while self.word("and"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else (lambda get: all(p(get) for p in parts))

    def factor(self) -> Callable[[Lookup], bool]:
        if self.word("not"):
            inner = self.factor()
            return lambda get: not inner(get)
        tok = self.peek()
        if tok is None:
            raise self.fail("expected a comparison such as lr<0.1")
        if tok[:2] == ("paren", "("):
            self.i += 1
            inner = self.expr()
            close = self.peek()
            if close is None or close[:2] != ("paren", ")"):
                raise self.fail("expected ')'")
            self.i += 1
            return inner
        if tok[0] != "word" or tok[1].lower() in _KEYWORDS:
            raise self.fail("expected a param or metric name")
        name = tok[1]
        self.i += 1
        op = self.peek()
        if op is None or op[0] != "op":
            raise self.fail(f"expected an operator (< <= > >= == !=) after {name!r}")
        self.i += 1
        value = self.value()
        self.names.append(name)
        return lambda get: _compare(op[1], get(name), value)

    def value(self) -> Any:
        tok = self.peek()
        if tok is None or tok[0] not in ("number", "string", "word") or tok[1].lower() in _KEYWORDS:
            raise self.fail("expected a value (a number, a word or a quoted text)")
        self.i += 1
        kind, text, _ = tok
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "string":
            return text[1:-1]
        return _LITERALS.get(text.lower(), text)

    def parse(self) -> Condition:
        if not self.tokens:
            raise self.fail("empty expression")
        bad = next((t for t in self.tokens if t[0] == "bad"), None)
        if bad is not None:
            raise self.fail(f"unexpected {bad[1]!r}", bad[2])
        test = self.expr()
        if self.peek() is not None:
            raise self.fail("expected 'and', 'or' or the end")
        return Condition(self.text, list(dict.fromkeys(self.names)), test)


def parse(text: str) -> Condition:
    """Parse a ``--where`` expression; a bad one is a one-line UsageError saying where it failed."""
    return _Parser(text).parse()


def check_names(condition: Condition, params: Collection[str], metrics: Collection[str]) -> None:
    """Refuse a name that is no param or metric of the selected trials (nor seed / experiment)."""
    for name in condition.names:
        if name not in params and name not in metrics and name not in ("seed", "experiment"):
            raise UsageError(f"--where names {name!r}, which no selected trial has",
                             hint=f"params: {', '.join(sorted(params)) or 'none'}; "
                                  f"metrics: {', '.join(sorted(metrics)) or 'none'}")
