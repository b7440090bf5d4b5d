"""How the commands that run trials show them: a progress reporter for the terminal, and the
one line on trials that did not complete (shared by run, test, trials reset --run, optimize,
worker and remote sync, so no command module imports another)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from tracker.cli._common import fmt_duration, fmt_metrics, fmt_params, info, is_tty


def report_failed(proj: Any, failed: list[Any]) -> None:
    """One line on what did not complete, pointing at the log that holds the error."""
    from tracker.trials import logs_command

    first = next((t for t in failed if t.status == "failed"), failed[0])
    info(f"{len(failed)} trial(s) did not complete; see '{logs_command(proj, first)}'")
    hint = next((t.extra["hint"] for t in failed if t.extra.get("hint")), None)
    if hint:
        info(hint)


class ConsoleReporter:
    """Streams trial output and shows a progress bar on a terminal; plain lines when piped."""

    def __init__(self, stream: bool = True, console: Any = None) -> None:
        self.stream = stream
        self.tty = is_tty() if console is None else console.is_terminal
        self._lock = threading.Lock()
        self._console: Any = console  # a rich Console (default: stderr's, made on first use)
        self._progress: Any = None
        self._task: Any = None
        self._done = 0
        self._total: int | None = None
        self._transfers: dict[str, Any] = {}

    def _rich(self, experiment: str | None = None) -> Any:
        """The rich console and progress bar, made on first use and only on a terminal; the
        run's own bar (done/total) appears with its first trial."""
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            if self._console is None:
                from tracker.cli._common import console

                self._console = console(stderr=True)
            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                      TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                      console=self._console, transient=True)
            self._progress.start()
        if experiment is not None and self._task is None:
            self._task = self._progress.add_task(experiment, total=self._total, detail=self._count())
        return self._console

    def _count(self) -> str:
        """``done/total`` (just the done count while the total is unknown)."""
        return f"{self._done}/{self._total}" if self._total is not None else f"{self._done} done"

    def planned(self, total: int) -> None:
        with self._lock:
            self._total = total
            if self._task is not None:
                self._progress.update(self._task, total=total, detail=self._count())

    def _print(self, trial: Any, plain: str, styled: str | None = None) -> None:
        if self.tty:
            self._rich(trial.experiment if trial else None).print(
                styled or plain, markup=styled is not None, highlight=False)
        else:
            sys.stderr.write(plain + "\n")
            sys.stderr.flush()

    def started(self, trial: Any) -> None:
        with self._lock:
            text = f"trial {trial.id} started: seed={trial.seed} {fmt_params(trial.params)}"
            self._print(trial, text, f"[dim]{text}[/dim]")

    def output(self, trial: Any, stream: str, line: str) -> None:
        if self.stream:
            with self._lock:
                self._print(trial, f"{trial.id[:6]} | {line}")

    def finished(self, trial: Any) -> None:
        with self._lock:
            self._done += 1
            colour = {"completed": "green", "failed": "red"}.get(trial.status, "yellow")
            rest = f"in {fmt_duration(trial.duration)} {fmt_metrics(trial.metrics)}"
            self._print(trial, f"trial {trial.id} {trial.status} {rest}",
                        f"trial {trial.id} [{colour}]{trial.status}[/{colour}] {rest}")
            if self._task is not None:
                self._progress.update(self._task, completed=self._done, detail=self._count())

    def message(self, text: str) -> None:
        with self._lock:
            self._print(None, text)

    def progress(self, label: str, done: int, total: int) -> None:
        """A bytes/rate bar per label on a terminal (large code syncs); nothing when piped."""
        if not self.tty:
            return
        with self._lock:
            self._rich()
            tasks = self._transfers
            if label not in tasks:
                tasks[label] = (self._progress.add_task(label, total=total, detail=""), time.monotonic())
            task, started = tasks[label]
            rate = done / max(time.monotonic() - started, 1e-3) / 1e6
            self._progress.update(task, completed=done, total=total,
                                  detail=f"{done / 1e6:.1f}/{total / 1e6:.1f} MB at {rate:.1f} MB/s")
            if done >= total:
                self._progress.remove_task(tasks.pop(label)[0])

    def status(self, label: str, text: str | None) -> None:
        """One updating line per label on a terminal (an environment build's current step); plain lines when piped."""
        with self._lock:
            if not self.tty:
                if text:
                    sys.stderr.write(f"{label}: {text}\n")
                    sys.stderr.flush()
                return
            self._rich()
            tasks = self._transfers
            if text is None:
                if label in tasks:
                    self._progress.remove_task(tasks.pop(label)[0])
                return
            if label not in tasks:
                tasks[label] = (self._progress.add_task(label, total=None, detail=""), time.monotonic())
            self._progress.update(tasks[label][0], detail=text[:100])

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
