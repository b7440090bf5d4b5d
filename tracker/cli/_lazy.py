"""Command groups that import their commands only when one is used (click's LazyGroup pattern).

A :class:`LazyGroup` knows each command's name, the module and attribute that define it and its
one-line help. ``tracker --help`` (and completing a command's name) shows the one-line help
without importing anything; running a command, or asking for its ``--help``, imports that one
module and builds that one command. So start-up costs the same however many commands there are.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, ClassVar, NamedTuple

import typer
from typer.core import TyperCommand, TyperGroup


class Lazy(NamedTuple):
    """Where a command lives: ``tracker.cli.<module>.<attribute>`` (a function, or a Typer app for
    a group) and the first paragraph of its help, as ``tracker --help`` shows it."""

    module: str
    attribute: str
    summary: str


class _Commands(MutableMapping[str, Any]):
    """A group's commands by name, in order; each built by ``load`` on first access."""

    def __init__(self, names: list[str], load: Callable[[str], Any]) -> None:
        self._names, self._load, self._built = list(names), load, {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            if name not in self._names:
                raise KeyError(name)
            self._built[name] = self._load(name)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        if name not in self._names:
            self._names.append(name)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._names.remove(name)
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class LazyGroup(TyperGroup):
    """A root group whose commands are listed in ``lazy`` and imported on first use.

    ``global_options`` name root options that also work after a subcommand
    (``tracker trials list --store URL``): each loaded command gets a hidden copy of them,
    unless it has an option of that name itself.
    """

    lazy: ClassVar[dict[str, Lazy]] = {}
    global_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _Commands(list(self.lazy), self._build)
        self._summaries_only = False

    @contextmanager
    def _summaries(self) -> Iterator[None]:
        """While listing commands (help, completion): stand-ins with their one-line help, nothing imported."""
        self._summaries_only = True
        try:
            yield
        finally:
            self._summaries_only = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # the names, in order, without building any

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        spec = self.lazy.get(cmd_name)
        if self._summaries_only and spec is not None:
            return self._stand_in(cmd_name, spec)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with self._summaries():
            super().format_help(ctx, formatter)

    def shell_complete(self, ctx: Any, incomplete: str) -> list[Any]:
        with self._summaries():
            return super().shell_complete(ctx, incomplete)

    def _stand_in(self, name: str, spec: Lazy) -> TyperCommand:
        stand_in = TyperCommand(name=name, help=spec.summary, rich_markup_mode=self.rich_markup_mode)
        self.prepare(stand_in)
        return stand_in

    def prepare(self, command: Any) -> None:
        """Called on every command this group builds (and its stand-ins): adjust it here."""

    def _build(self, name: str) -> Any:
        """Import command ``name``'s module and build its click command (a group for a Typer app)."""
        from typer.main import get_command_from_info, get_group_from_info
        from typer.models import CommandInfo, TyperInfo

        spec = self.lazy[name]
        target = getattr(importlib.import_module(f"tracker.cli.{spec.module}"), spec.attribute)
        if isinstance(target, typer.Typer):
            command = get_group_from_info(TyperInfo(target, name=name), pretty_exceptions_short=True,
                                          rich_markup_mode=self.rich_markup_mode,
                                          suggest_commands=self.suggest_commands)
        else:
            command = get_command_from_info(CommandInfo(name=name, callback=target), pretty_exceptions_short=True,
                                            rich_markup_mode=self.rich_markup_mode)
        self.prepare(command)
        self._add_global_options(command)
        return command

    def _add_global_options(self, command: Any) -> None:
        """Hidden copies of the global options on ``command`` and every command under it."""
        taken = {opt for param in command.params for opt in getattr(param, "opts", [])}
        for param in self.params:
            if param.name in self.global_options and not taken & set(param.opts):
                twin = copy.copy(param)
                twin.hidden, twin.expose_value = True, False  # its callback does the work
                command.params.append(twin)
        for sub in getattr(command, "commands", {}).values():
            self._add_global_options(sub)
