"""Help text the way command-line tools usually show it.

Typer shows placeholders of its own (``<bool>``, ``<list[str]>``, ``{experiment}``)
and reads help text as rich markup, so ``NAME=[v1,v2]`` loses its ``[v1,v2]``.
:func:`conventional_help` runs once over the built command tree: flags get no
placeholder, options a type word (``TEXT``, ``INTEGER``) unless they name their
own (``metavar="NAME=VALUE"``), arguments their name in capitals (``EXPERIMENT``,
``[TRIALS]...``), and help text is shown literally.
"""

from __future__ import annotations

import re
from typing import Any

from typer.core import HAS_RICH, TyperArgument, TyperOption

_TYPE_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH", "bool": "BOOLEAN"}
_MARKUP = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")  # what rich would read as a tag (rich.markup.escape)


class _Argument(TyperArgument):
    """An argument shown as NAME, [NAME] or NAME... in the usage line, with no type column."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        name = (self.metavar or "").removesuffix("...") or (self.name or "arg").upper()
        many = "..." if self.nargs != 1 else ""
        return [f"{name}{many}" if self.required else f"[{name}]{many}"]


def _literal(text: str | None) -> str | None:
    """``text`` escaped so rich markup shows it as written (``[v1,v2]`` stays)."""
    if not text:
        return text
    text = _MARKUP.sub(lambda m: f"{m[1]}{m[1]}\\{m[2]}", text)
    return text + "\\" if text.endswith("\\") and not text.endswith("\\\\") else text


def _placeholder(option: TyperOption) -> str:
    if option.is_flag:
        return ""
    bare = option.bare_type()
    bare = bare.removeprefix("list[").removesuffix("]")
    return _TYPE_WORDS.get(bare, bare.upper())


def conventional_help(command: Any, help_names: list[str], *, deep: bool = True) -> None:
    """Give ``command`` and (``deep``) its subcommands conventional placeholders and literal help text.

    ``help_names`` are the root's help option names (``-h``, ``--help``): the help
    option is made here, with them, so it gets its placeholder too.
    """
    from typer import Context

    help_option = command.get_help_option(Context(command, help_option_names=help_names))
    params = [*command.params, *([help_option] if help_option is not None else [])]
    markup = HAS_RICH and getattr(command, "rich_markup_mode", None) == "rich"
    for param in params:
        if isinstance(param, TyperArgument):
            if param.metavar is None and param.name:
                param.metavar = param.name.upper() + ("..." if param.nargs != 1 else "")
            param.__class__ = _Argument
        elif isinstance(param, TyperOption) and param.metavar is None:
            param.metavar = _placeholder(param)
        if markup:
            param.help = _literal(getattr(param, "help", None))
    if markup:
        command.help = _literal(command.help)
        command.short_help = _literal(command.short_help)
        command.epilog = _literal(command.epilog)
    for sub in getattr(command, "commands", {}).values() if deep else ():
        conventional_help(sub, help_names)
