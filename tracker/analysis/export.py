"""``tracker export`` and ``tracker.load_trials``: one row per trial, params and metrics flattened.

Columns are the trial's fields (id, experiment, status, seed, step, commit, dirty, host, started,
finished, duration, exit_code, tags), then ``params.NAME`` for every param and ``metrics.NAME``
(the last value) for every metric among the selected trials. The rows are built by the store in
one query, so exporting 100k trials costs about what listing them does.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tracker.errors import MissingDependencyError, NotFoundError, UsageError
from tracker.project import Project
from tracker.yamlio import cannot_write, write_output

FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet"}


def records(project: Project, experiments: Sequence[str] = (), *, status: list[str] | None = None,
            tags: list[str] | None = None, optimization: str | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """The selected trials as flat records (column -> value), and the column names in order."""
    from tracker import trials
    from tracker.experiments import names

    known = set(names(project)) | {e for e in project.store.count_by_status()}
    for name in experiments:
        if name not in known:
            raise NotFoundError(f"no experiment {name!r}", hint="see 'tracker experiments list'")
    columns, rows = trials.list_rows(project, experiment=list(experiments) or None, status=status, tags=tags,
                                     optimization=optimization)
    out = []
    for row in rows:
        record = dict(zip(columns, row, strict=True))
        record["dirty"] = bool(record["dirty"])
        out.append(record)
    return columns, out


def export(project: Project, experiments: Sequence[str], dest: Path, **filters: Any) -> int:
    """Write the selected trials to ``dest`` (.csv, .json or .parquet, by its suffix); return the row count."""
    kind = FORMATS.get(dest.suffix.lower())
    if kind is None:
        raise UsageError(f"cannot tell the format of {dest.name!r} from its suffix",
                         hint="end the file name in .csv, .json or .parquet")
    columns, rows = records(project, experiments, **filters)
    if kind == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise MissingDependencyError("pyarrow", "analysis") from exc
        table = pa.Table.from_pylist(rows, schema=None) if rows else pa.table({c: [] for c in columns})
        try:
            pq.write_table(table, dest)
        except OSError as exc:
            raise cannot_write(dest, exc) from exc
        return len(rows)
    if kind == "json":
        text = json.dumps(rows, indent=1, default=str) + "\n"
    else:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if r[c] is None else r[c] for c in columns] for r in rows])
        text = buf.getvalue()
    write_output(dest, text)
    return len(rows)


def load_trials(experiments: Sequence[str] | str = (), *, project: Project | str | Path | None = None,
                status: list[str] | None = None, tags: list[str] | None = None,
                optimization: str | None = None, as_frame: bool | None = None) -> Any:
    """The project's trials as flat records, or a pandas DataFrame when pandas is installed.

    ``project`` is a Project, a path inside one, or None for the current directory's.
    ``as_frame``: True needs pandas, False gives records, None (default) a DataFrame if it can.
    """
    if isinstance(experiments, str):
        experiments = [experiments]
    if not isinstance(project, Project):
        project = Project.find(Path(project) if project is not None else None)
    columns, rows = records(project, experiments, status=status, tags=tags, optimization=optimization)
    if as_frame is False:
        return rows
    try:
        import pandas as pd
    except ImportError as exc:
        if as_frame:
            raise MissingDependencyError("pandas", "analysis") from exc
        return rows
    return pd.DataFrame(rows, columns=columns)
