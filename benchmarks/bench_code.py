#!/usr/bin/env python3
"""What recording a run's code costs (``tracker.gitinfo.capture``, once per run), and its size.

Measures, in a repository of 50 committed modules with ``.tracker/`` ignored (best of N calls,
wall clock, so a loaded machine disturbs it least):
  1. a clean tree;
  2. a dirty tree: one untracked source file plus an untracked 5 MiB checkpoint, and the size
     of the ``code.patch`` that every trial of the run stores.

Run it once with this checkout and once with another on PYTHONPATH to compare them, e.g.
``PYTHONPATH=. python benchmarks/bench_code.py`` then ``PYTHONPATH=../main python ...``.

Usage: python benchmarks/bench_code.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table


def best(root: Path, repeat: int) -> tuple[float, int]:
    from tracker import gitinfo

    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = len(gitinfo.capture(root).patch)
        times.append(time.perf_counter() - start)
    return min(times), size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b"}
    with tempfile.TemporaryDirectory(prefix="tracker-bench-code-") as tmp:
        root = Path(tmp)
        for i in range(50):
            (root / f"m{i}.py").write_text(f"x = {i}\n")
        (root / ".gitignore").write_text(".tracker/\n")
        for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
            subprocess.run(["git", *cmd], cwd=root, check=True, env=env)
        clean, _ = best(root, args.repeat)
        (root / "notes.py").write_text("y = 1\n")
        (root / "checkpoint.pt").write_bytes(os.urandom(5 * 1024 * 1024))
        dirty, size = best(root, args.repeat)
    import tracker

    where = str(Path(tracker.__file__).resolve().parent.parent)
    print_table([("clean tree", f"{clean * 1000:.1f} ms", where),
                 ("untracked notes.py + 5 MiB checkpoint.pt", f"{dirty * 1000:.1f} ms",
                  f"code.patch {size / 1024:.1f} kiB per trial")], value_header="best")


if __name__ == "__main__":
    main()
