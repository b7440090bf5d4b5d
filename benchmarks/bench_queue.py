#!/usr/bin/env python3
"""The queue and its workers on PostgreSQL, side by side with PyExperimenter on MariaDB, in one run.

  1. Claims: --claims queued trials in a PostgreSQL store; 1, 4 and 8 claimer processes each
     call `store.claim(queue, owner, lease=60)` and finalize the trial completed, until the
     queue is drained. Claims per second = trials / (go signal -> last claimer done).
  2. End to end, tracker: a project whose experiment runs a trivial script (it appends its
     trial id to a log file and exits); `tracker run EXP --queue` submits --trials trials,
     then 1, 4 and 8 `tracker worker --idle-exit 1 --queue Q` processes drain them. Wall =
     workers launched -> last trial finished (the store's stamp; the idle-exit second after
     it is left out).
  3. End to end, PyExperimenter 1.4 (its own venv, never a project dependency) on MariaDB
     (benchmarks/infra/mariadb.sh, 127.0.0.1:33061; SQLite when MariaDB cannot start), then on
     SQLite (its single-machine backend) for reference: the same trials (one table row each,
     filled before the clock starts), 1, 4 and 8 worker processes each calling
     `experimenter.execute(fn, max_experiments=-1)` where fn runs the same script in a
     subprocess and writes its exit code as the result. Wall = workers launched -> every
     worker exited. CodeCarbon is off and logging at WARNING (its fastest).
Both walls include each worker's start-up (imports, connecting), as a user launching workers sees it.
Per-trial overhead = wall / trials * workers - the script's own run time (the bare script's
median); CPU overhead = the CPU time of the workers and everything they ran / trials - the
bare script's CPU time (the database server's CPU is not in it), a figure that other load on
the machine moves less. Duplicates come from the id log (a trial run twice); lost = trials not completed
(tracker) or rows left `running`/`created`/`error` (PyExperimenter).

Usage: python benchmarks/bench_queue.py [--trials 200] [--claims 2000] [--workers 1,4,8] [--json]
           [--pg-url postgresql://...] [--pyexp-venv DIR] [--backends mariadb,sqlite]
Without --pg-url a server is started with tests/infra/postgres.sh (PG_PORT, PG_STATE_DIR;
default 55442 and /tmp/pg-bench) and a fresh database is made for the run. Without
--pyexp-venv a venv is made under the run's temp dir (pip install 'py-experimenter>=1.4,<1.5').
This file is also the claimer (`--claimer URL QUEUE`, run by tracker's python) and the
PyExperimenter side (`--pyexp fill|work|collect CONFIG CREDENTIALS`, run by that venv's python),
so it imports only the standard library at the top.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PYEXP_SPEC = "py-experimenter>=1.4,<1.5"
# The trial: append this trial's id to the log and exit (tracker sets TRACKER_TRIAL_ID, PyExperimenter's fn BENCH_ID).
SCRIPT = """\
import os
ident = os.environ.get("TRACKER_TRIAL_ID") or os.environ["BENCH_ID"]
with open({log!r}, "a") as f:
    f.write(ident + "\\n")
"""


# ---------------------------------------------------------------------------------------------- helpers


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; on failure exit with its output (a benchmark has no one to hand an error to)."""
    done = subprocess.run(cmd, text=True, capture_output=True, **kw)  # type: ignore[call-overload]
    if done.returncode:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done


def infra_start(script: Path, state_dir: str, env: dict[str, str]) -> dict[str, str]:
    """Start a service with one of the infra scripts; its KEY=VALUE lines as a dict."""
    out = run([str(script), "start", state_dir], env={**os.environ, **env}).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def spawn(cmd: list[str], log: Path, **kw: object) -> subprocess.Popen[str]:
    """Start ``cmd`` with its stderr in ``log`` (a file: a full pipe would stall the process)."""
    with log.open("w") as err:
        return subprocess.Popen(cmd, stderr=err, text=True, **kw)  # type: ignore[call-overload]


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def id_log_counts(log: Path, expected: int) -> tuple[int, int, int]:
    """(executions, duplicates, missing) from a log of one trial id per line."""
    ids = log.read_text().split() if log.exists() else []
    distinct = len(set(ids))
    return len(ids), len(ids) - distinct, max(expected - distinct, 0)


def children_cpu() -> float:
    """CPU seconds (user + system) of every waited-for descendant of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def script_seconds(script: Path, scratch: Path, repeat: int = 15) -> tuple[float, float]:
    """The bare script's median run time and mean CPU time, the same interpreter the trials use."""
    env = {**os.environ, "BENCH_ID": "bare"}
    subprocess.run([sys.executable, str(script)], cwd=scratch, env=env, check=True)  # warm the page cache
    times, cpu = [], children_cpu()
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, str(script)], cwd=scratch, env=env, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times), (children_cpu() - cpu) / repeat


def machine() -> dict[str, object]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "system": platform.platform(terse=True), "load_at_start": round(os.getloadavg()[0], 2)}


# ---------------------------------------------------------------------------------------------- PostgreSQL


class Postgres:
    """A PostgreSQL server (started here unless a URL is given or it runs already) and a fresh database."""

    def __init__(self, url: str | None) -> None:
        self.env = {"PG_PORT": os.environ.get("PG_PORT", "55442"),
                    "PG_STATE_DIR": os.environ.get("PG_STATE_DIR", "/tmp/pg-bench")}
        self.started = url is None and not port_open("127.0.0.1", int(self.env["PG_PORT"]))
        if url is None:
            url = infra_start(ROOT / "tests/infra/postgres.sh", self.env["PG_STATE_DIR"], self.env)["DATABASE_URL"]
        self.server = urlsplit(url)
        self.name = f"bench_queue_{os.getpid()}_{int(time.time())}"
        self.psql(f"CREATE DATABASE {self.name}")
        self.url = self.server._replace(path=f"/{self.name}").geturl()

    def psql(self, sql: str) -> str:
        return run([str(PG_BIN / "psql"), self.server._replace(path="/postgres").geturl(), "-v", "ON_ERROR_STOP=1",
                    "-qAtX", "-c", sql]).stdout

    def version(self) -> str:
        return run([str(PG_BIN / "psql"), self.url, "-qAtX", "-c", "SHOW server_version"]).stdout.strip()

    def drop(self) -> None:
        """Drop the run's database, and stop the server if this run started it."""
        self.psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        if self.started:
            subprocess.run([str(ROOT / "tests/infra/postgres.sh"), "stop", self.env["PG_STATE_DIR"]],
                           capture_output=True, env={**os.environ, **self.env})


# ---------------------------------------------------------------------------------------------- 1. claims


def claimer(url: str, queue: str) -> None:
    """One claimer process: wait for "go" on stdin, claim and complete trials until none is left."""
    sys.path.insert(0, str(ROOT))
    from tracker.store import open_store

    store = open_store(url)
    owner = {"worker": f"claimer-{os.getpid()}", "host": socket.gethostname(), "pid": os.getpid()}
    print("ready", flush=True)
    sys.stdin.readline()
    claimed = []
    while trials := store.claim(queue, owner, lease=60):
        for trial in trials:
            store.finalize(trial.id, "completed", exit_code=0)
            claimed.append(trial.id)
    print(json.dumps({"claimed": claimed, "end": time.time()}), flush=True)
    store.close()


def bench_claims(url: str, n: int, workers: int) -> dict[str, object]:
    """Drain ``n`` queued trials with ``workers`` claimer processes; claims per second."""
    sys.path.insert(0, str(ROOT))
    from tracker.store import Trial, now, open_store

    queue = f"claims-{workers}"
    store = open_store(url)
    created = now()
    store.add_trials(Trial(id=f"{queue}-{i:06d}", experiment="claims", status="queued", seed=i, params={},
                           created=created, queue=queue, max_attempts=1) for i in range(n))
    procs = [subprocess.Popen([sys.executable, __file__, "--claimer", url, queue], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    for p in procs:  # every claimer has imported tracker and connected before the clock starts
        if p.stdout is None or p.stdout.readline().strip() != "ready":
            sys.exit("a claimer failed to start")
    start = time.time()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode:
            sys.exit(f"a claimer failed ({p.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    seconds = max(r["end"] for r in results) - start
    ids = [i for r in results for i in r["claimed"]]
    statuses = Counter(t.status for t in store.list_trials(experiment="claims") if t.queue == queue)
    store.close()
    return {"workers": workers, "trials": n, "seconds": round(seconds, 3), "claims_per_s": round(n / seconds, 1),
            "duplicates": len(ids) - len(set(ids)), "unclaimed": n - len(set(ids)),
            "per_claimer": [len(r["claimed"]) for r in results], "statuses": dict(statuses)}


# ---------------------------------------------------------------------------------------------- 2. tracker end to end


def make_project(root: Path, script_text: str, experiments: list[str], seeds: int, env: dict[str, str]) -> None:
    root.mkdir(parents=True)
    (root / "trial.py").write_text(script_text)
    (root / "tracker.yaml").write_text("name: benchqueue\n")
    (root / ".gitignore").write_text(".tracker/\n")
    (root / "experiments").mkdir()
    for name in experiments:
        (root / f"experiments/{name}.yaml").write_text(f"command: [{sys.executable!r}, trial.py]\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b",
                                                 "commit", "-qm", "init"]):
        run(["git", *args], cwd=root)
    run([sys.executable, "-m", "tracker", "seeds", "generate", str(seeds), "--master-seed", "1"], cwd=root, env=env)
    run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "seeds"], cwd=root)


def bench_tracker(project: Path, env: dict[str, str], log: Path, n: int, workers: int,
                  script_s: float, script_cpu: float) -> dict[str, object]:
    """Submit ``n`` queue trials with `tracker run --queue`, drain them with ``workers`` `tracker worker`s."""
    sys.path.insert(0, str(ROOT))
    from tracker.store import open_store

    exp, queue = f"q{workers}", f"bench-{workers}"
    log.unlink(missing_ok=True)
    start = time.perf_counter()
    run([sys.executable, "-m", "tracker", "run", exp, "--queue", "--queue-name", queue, "--seeds", str(n), "-q"],
        cwd=project, env=env)
    submit = time.perf_counter() - start
    launched, cpu = time.time(), children_cpu()
    logs = [project.parent / f"worker-{project.name}-{queue}-{i}.log" for i in range(workers)]
    procs = [spawn([sys.executable, "-m", "tracker", "worker", "--idle-exit", "1", "--queue", queue], log_,
                   cwd=project, env=env, stdout=subprocess.DEVNULL) for log_ in logs]
    codes = [p.wait() for p in procs]
    exited, cpu = time.time() - launched, children_cpu() - cpu
    if any(codes):
        sys.exit(f"a tracker worker failed:\n{logs[next(i for i, c in enumerate(codes) if c)].read_text()}")
    store = open_store(env["TRACKER_STORE"])
    trials = store.list_trials(experiment=exp)
    store.close()
    finished = [datetime.fromisoformat(t.finished.replace("Z", "+00:00")).timestamp() for t in trials if t.finished]
    wall = (max(finished) if finished else time.time()) - launched
    executions, duplicates, missing = id_log_counts(log, n)
    statuses = Counter(t.status for t in trials)
    return {"tool": "tracker", "workers": workers, "trials": n, "submit_s": round(submit, 3),
            "wall_s": round(wall, 3), "workers_exited_s": round(exited, 3), "trials_per_s": round(n / wall, 2),
            "overhead_ms": round((wall / n * workers - script_s) * 1000, 1),
            "cpu_overhead_ms": round((cpu / n - script_cpu) * 1000, 1), "executions": executions,
            "duplicates": duplicates, "missing": missing, "lost": n - statuses.get("completed", 0),
            "requeued": sum(1 for t in trials if t.attempts > 1), "statuses": dict(statuses)}


# ---------------------------------------------------------------------------------------------- 3. PyExperimenter


def pyexp_python(venv: Path | None, tmp: Path) -> tuple[str, str]:
    """The python of a venv with PyExperimenter 1.4 (made under ``tmp`` when none is given) and its version."""
    venv = venv or tmp / "pyexpenv"
    python = venv / "bin/python"
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('py-experimenter'))"]
    if not python.exists() or subprocess.run(probe, capture_output=True).returncode:
        print(f"installing {PYEXP_SPEC} into {venv} (a few minutes)", file=sys.stderr)
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(python), "-m", "pip", "install", "-q", PYEXP_SPEC])
    return str(python), run(probe).stdout.strip()


def mariadb(state_dir: str) -> tuple[dict[str, str] | None, bool, str]:
    """Credentials of the throwaway MariaDB (None when it cannot start), whether this run started it, and why not."""
    port = os.environ.get("MARIADB_PORT", "33061")
    ours = not port_open("127.0.0.1", int(port))
    done = subprocess.run([str(HERE / "infra/mariadb.sh"), "start", state_dir], text=True, capture_output=True,
                          env={**os.environ, "MARIADB_PORT": port})
    if done.returncode:
        return None, False, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "mariadb.sh failed"
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line), ours, ""


def pyexp_files(scratch: Path, backend: str, creds: dict[str, str] | None, table: str, n: int,
                script: Path) -> tuple[Path, Path]:
    """PyExperimenter's experiment configuration and credentials files for one table of ``n`` rows."""
    database = creds["MARIADB_DATABASE"] if creds else str(scratch / "pyexp")
    config = scratch / f"{table}.yml"
    config.write_text(json.dumps({"PY_EXPERIMENTER": {
        "n_jobs": 1,
        "Database": {"provider": "mysql" if backend == "mariadb" else "sqlite", "database": database,
                     "table": {"name": table, "keyfields": {"idx": {"type": "INT", "values": {"start": 0, "stop": n}}},
                               "resultfields": {"exit_code": "INT"}}},
        "Custom": {"python": sys.executable, "script": str(script)},
    }}))  # JSON is YAML
    credentials = scratch / "credentials.yml"
    if creds:
        credentials.write_text(json.dumps({"CREDENTIALS": {
            "Database": {"user": creds["MARIADB_USER"], "password": creds["MARIADB_PASSWORD"]},
            "Connection": {"Standard": {"server": creds["MARIADB_HOST"]}}}}))
    else:
        credentials.write_text("{}")
    return config, credentials


def pyexp_side(action: str, config: str, credentials: str) -> None:
    """Inside PyExperimenter's venv: fill the table, work through it, or print its rows' statuses and drop it."""
    import functools
    import logging

    from py_experimenter import database_connector_mysql
    from py_experimenter.experimenter import PyExperimenter

    # PyExperimenter 1.4 passes host, user and password to pymysql but no port: point it at the throwaway server's.
    port = int(os.environ.get("MARIADB_PORT", "33061"))
    database_connector_mysql.connect = functools.partial(database_connector_mysql.connect, port=port)
    experimenter = PyExperimenter(experiment_configuration_file_path=config, database_credential_file_path=credentials,
                                  use_codecarbon=False, log_level=logging.WARNING, log_file="pyexp.log")
    if action == "fill":
        experimenter.fill_table_from_config()
    elif action == "work":
        def trial(keyfields: dict, result_processor: object, custom: dict) -> None:
            env = {**os.environ, "BENCH_ID": f"p{keyfields['idx']}"}
            code = subprocess.run([custom["python"], custom["script"]], env=env).returncode
            result_processor.process_results({"exit_code": code})  # type: ignore[attr-defined]

        experimenter.execute(trial, max_experiments=-1, n_jobs=1)
    else:  # collect: the rows by status, then drop the table
        print(json.dumps(experimenter.get_table()["status"].value_counts().to_dict()))
        experimenter.delete_table()


def bench_pyexp(python: str, scratch: Path, backend: str, creds: dict[str, str] | None, log: Path, n: int,
                workers: int, script: Path, script_s: float, script_cpu: float) -> dict[str, object]:
    """The same ``n`` trials through PyExperimenter with ``workers`` processes."""
    table = f"bench_w{workers}_{os.getpid()}"
    config, credentials = pyexp_files(scratch, backend, creds, table, n, script)
    side = [python, __file__, "--pyexp"]
    log.unlink(missing_ok=True)
    start = time.perf_counter()
    run([*side, "fill", str(config), str(credentials)], cwd=scratch)
    fill = time.perf_counter() - start
    logs = [scratch / f"{table}-{i}.log" for i in range(workers)]
    launched, cpu = time.time(), children_cpu()
    procs = [spawn([*side, "work", str(config), str(credentials)], log_, cwd=scratch, stdout=subprocess.DEVNULL)
             for log_ in logs]
    codes = [p.wait() for p in procs]
    wall, cpu = time.time() - launched, children_cpu() - cpu
    if any(codes):
        sys.exit(f"a PyExperimenter worker failed:\n{logs[next(i for i, c in enumerate(codes) if c)].read_text()}")
    statuses = json.loads(run([*side, "collect", str(config), str(credentials)], cwd=scratch).stdout.splitlines()[-1])
    executions, duplicates, missing = id_log_counts(log, n)
    return {"tool": "pyexperimenter", "backend": backend, "workers": workers, "trials": n,
            "submit_s": round(fill, 3), "wall_s": round(wall, 3), "trials_per_s": round(n / wall, 2),
            "overhead_ms": round((wall / n * workers - script_s) * 1000, 1),
            "cpu_overhead_ms": round((cpu / n - script_cpu) * 1000, 1), "executions": executions,
            "duplicates": duplicates, "missing": missing, "lost": n - statuses.get("done", 0),
            "left_running": statuses.get("running", 0), "statuses": statuses}


# ---------------------------------------------------------------------------------------------- main


def rows_for(result: dict[str, object]) -> list[tuple[str, str, str]]:
    rows = [(f"claims/s on {c['store']}, {c['workers']} claimer(s), {c['trials']} trials", f"{c['claims_per_s']:.0f}",
             f"{c['seconds']:.2f} s; duplicates {c['duplicates']}, unclaimed {c['unclaimed']}"
             + ("; target >= 500/s" if c["workers"] == 8 and c["store"] == "postgresql" else ""))
            for c in result["claims"]]  # type: ignore[union-attr]
    rows.append(("bare script", f"{result['script_ms']:.0f} ms",
                 f"the trial's own run time (CPU {result['script_cpu_ms']:.0f} ms)"))
    for r in result["e2e"]:  # type: ignore[union-attr]
        name = f"{'tracker' if r['tool'] == 'tracker' else 'PyExperimenter'} ({r['backend']})"
        rows.append((f"{name}, {r['workers']} worker(s), {r['trials']} trials", f"{r['overhead_ms']:.0f} ms",
                     f"overhead/trial (CPU {r['cpu_overhead_ms']:.0f} ms); wall {r['wall_s']:.1f} s "
                     f"({r['trials_per_s']:.1f}/s), submit "
                     f"{r['submit_s']:.1f} s; duplicates {r['duplicates']}, lost {r['lost']}, missing {r['missing']}"))
    by = {(r["tool"], r["backend"], r["workers"]): r for r in result["e2e"]}  # type: ignore[union-attr]
    for (tool, backend, w), r in by.items():  # like for like: a shared server, then one machine's file
        theirs = by.get(("pyexperimenter", {"postgresql": "mariadb"}.get(backend, backend), w))
        if tool == "tracker" and theirs and theirs["overhead_ms"] > 0:
            rows.append((f"tracker ({backend}) / PyExperimenter ({theirs['backend']}) overhead, {w} worker(s)",
                         f"{r['overhead_ms'] / theirs['overhead_ms']:.2f}x", "target <= 0.5x"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=200, help="trials per end-to-end row")
    ap.add_argument("--claims", type=int, default=2000, help="queued trials per claims row")
    ap.add_argument("--workers", default="1,4,8")
    ap.add_argument("--pg-url", help="a PostgreSQL server's URL (a fresh database is made there, then dropped)")
    ap.add_argument("--stores", default="postgresql,sqlite", help="tracker's stores, a set of rows each")
    ap.add_argument("--pyexp-venv", type=Path, help="a venv with py-experimenter 1.4 (made when missing)")
    ap.add_argument("--backends", default="mariadb,sqlite",
                    help="PyExperimenter's databases, a set of rows each (mariadb: sqlite when it cannot start)")
    ap.add_argument("--mariadb-dir", default=os.environ.get("MARIADB_STATE_DIR", "/tmp/mariadb-bench"))
    ap.add_argument("--skip", choices=["claims", "tracker", "pyexp"], action="append", default=[])
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    ap.add_argument("--claimer", nargs=2, metavar=("URL", "QUEUE"), help=argparse.SUPPRESS)
    ap.add_argument("--pyexp", nargs=3, metavar=("ACTION", "CONFIG", "CREDENTIALS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.claimer:
        return claimer(*args.claimer)
    if args.pyexp:
        return pyexp_side(*args.pyexp)

    workers = [int(w) for w in args.workers.split(",")]
    result: dict[str, object] = {"machine": machine(), "claims": [], "e2e": []}
    with tempfile.TemporaryDirectory(prefix="tracker-bench-queue-") as tmp_:
        tmp = Path(tmp_)
        scratch = tmp / "scratch"
        scratch.mkdir()
        log = tmp / "ids.log"
        script = tmp / "trial.py"
        script_text = SCRIPT.format(log=str(log))
        script.write_text(script_text)
        script_s, script_cpu = script_seconds(script, scratch)
        result["script_ms"], result["script_cpu_ms"] = round(script_s * 1000, 1), round(script_cpu * 1000, 1)
        log.unlink(missing_ok=True)

        for store in dict.fromkeys(args.stores.split(",")) if {"claims", "tracker"} - set(args.skip) else ():
            pg = Postgres(args.pg_url) if store == "postgresql" else None
            url = pg.url if pg else f"sqlite:///{tmp / 'tracker-store.db'}"
            if pg:
                result["postgres"] = pg.version()
            try:
                if "claims" not in args.skip:
                    result["claims"] += [{"store": store, **bench_claims(url, args.claims, w)}  # type: ignore[operator]
                                         for w in workers]
                if "tracker" not in args.skip:
                    env = {**os.environ, "TRACKER_STORE": url}
                    project = tmp / f"project-{store}"
                    make_project(project, script_text, [f"q{w}" for w in workers], args.trials, env)
                    for w in workers:
                        row = bench_tracker(project, env, log, args.trials, w, script_s, script_cpu)
                        result["e2e"].append({"backend": store, **row})  # type: ignore[union-attr]
            finally:
                if pg:
                    pg.drop()

        if "pyexp" not in args.skip:
            python, version = pyexp_python(args.pyexp_venv, tmp)
            result["pyexperimenter"] = version
            for backend in dict.fromkeys(args.backends.split(",")):
                creds, started = None, False
                if backend == "mariadb":
                    creds, started, why = mariadb(args.mariadb_dir)
                    if not creds:
                        print(f"MariaDB did not start ({why}); PyExperimenter runs on SQLite", file=sys.stderr)
                        backend = "sqlite"
                        if "sqlite" in args.backends.split(","):
                            continue
                try:
                    for w in workers:
                        result["e2e"].append(bench_pyexp(python, scratch, backend, creds, log, args.trials, w,  # type: ignore[union-attr]
                                                         script, script_s, script_cpu))
                finally:
                    if started:
                        subprocess.run([str(HERE / "infra/mariadb.sh"), "stop", args.mariadb_dir], capture_output=True)

    if args.json:
        print(json.dumps(result, indent=2))
        return
    sys.path.insert(0, str(HERE))
    from _table import print_table

    m = result["machine"]
    print(f"# {m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, load {m['load_at_start']}; "  # type: ignore[index]
          f"PostgreSQL {result.get('postgres', '-')}; PyExperimenter {result.get('pyexperimenter', '-')} "
          f"on {', '.join(sorted({r['backend'] for r in result['e2e'] if r['tool'] != 'tracker'})) or '-'}")
    print_table(rows_for(result), value_header="value")


if __name__ == "__main__":
    main()
