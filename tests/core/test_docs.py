"""Docs stay true: the CLI reference is current, and every command is documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_is_up_to_date() -> None:
    generated = subprocess.run([sys.executable, str(ROOT / "scripts/cli_reference.py")], capture_output=True,
                               text=True, check=True).stdout
    assert generated == (ROOT / "docs/cli.md").read_text(), "docs/cli.md is stale: run 'make docs'"


def test_every_command_group_is_described_in_the_guides() -> None:
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
                     if p.name != "cli.md")
    for command in ["tracker create", "tracker experiments create", "tracker seeds generate", "tracker run",
                    "tracker trials list", "tracker trials show", "tracker trials logs", "tracker trials reset",
                    "tracker trials delete", "tracker trials stop", "tracker status", "tracker checkout",
                    "tracker remote add", "tracker remote check", "tracker remote trust", "tracker remote attach",
                    "tracker remote status", "tracker remote sync", "tracker storage add", "tracker storage check",
                    "tracker backup --to", "tracker backup list", "tracker backup verify", "tracker restore",
                    "tracker diff", "tracker worker", "tracker queue status", "tracker queue submit",
                    "tracker store migrate", "tracker store info", "tracker optimize", "--queue", "--slurm"]:
        assert command in text, f"{command!r} is not documented"


def test_readme_opens_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1: lines.index("```bash") + 3]
    assert block[0].startswith("make demo") and block[1].startswith("make test")
    makefile = (ROOT / "Makefile").read_text()
    assert "\ndemo:" in makefile and "\ntest:" in makefile
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_install_lines_name_the_distribution() -> None:
    """Every ``pip install`` of tracker in the docs, the template and the code names the distribution in pyproject."""
    import re

    dist = re.search(r'^name = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)  # py3.10: no tomllib
    assert dist != "tracker"  # taken on PyPI by an unrelated package
    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "templates").rglob("*.md"),
             *(ROOT / "tracker").rglob("*.py"), ROOT / "pyproject.toml"]
    installs = [(path.name, m.group(0)) for path in files for m in
                re.finditer(r"pip install(?: -U)? '?([\w-]+)(\[[\w,{}]+\])?", path.read_text())
                if m.group(2) or m.group(1) in ("tracker", dist)]
    extras = [(path.name, m.group(0)) for path in files for m in re.finditer(r"[\w-]+\[[\w,]+\]", path.read_text())
              if m.group(0).split("[")[0] in ("tracker", dist)]
    assert installs and extras
    assert all(f" {dist}" in line or f"'{dist}[" in line for _, line in installs), installs
    assert all(e.startswith(f"{dist}[") for _, e in extras), extras


def test_shell_examples_quote_brackets_for_zsh() -> None:
    """``--grid lr=[0.1,0.01]`` unquoted is a glob: zsh stops with "no matches found"."""
    import re

    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "templates").rglob("*.md"),
             *(ROOT / "tracker/cli").glob("*.py")]
    unquoted = [(path.name, line.strip()) for path in files for line in path.read_text().splitlines()
                if "tracker " in line and re.search(r"(?<=\s)[\w./-]+=\[[^\]]*\]", line)]
    assert not unquoted, unquoted


def test_design_layout_names_every_module() -> None:
    """docs/design.md's layout is a map of the package: every module is on it (a new one must be added)."""
    text = (ROOT / "docs" / "design.md").read_text()
    layout = text[text.index("## Layout"):text.index("## Layers")]
    package = ROOT / "tracker"
    missing = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if len(rel.parts) == 2:
            named = f"tracker/{path.name}" in layout
        else:
            named = f"tracker/{rel.parts[1]}/" in layout and (
                path.stem in ("__init__",) or path.stem.lstrip("_") in layout)
        if not named and "_templates" not in rel.parts:
            missing.append(str(rel))
    assert missing == []
