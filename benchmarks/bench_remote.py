#!/usr/bin/env python3
"""Remote sync and per-trial overhead, side by side with plain rsync and ssh, in one run.

Starts two test sshd hosts on loopback (tests/infra/sshd-hosts.sh), makes a
project of ~2,000 small files, then measures:
  1. first sync and unchanged re-sync: tracker's sync vs `rsync -a` over the same SSH, a new
     connection against a new one and an open one (tracker's pooled paramiko connection)
     against an open one (an OpenSSH ControlMaster);
  2. a sync after a new commit changing one file: tracker (a new code directory per commit)
     vs plain rsync updating one directory in place; and the SFTP fallback;
  3. per-trial remote overhead: `tracker run --remote` vs `ssh host python train.py`.

Usage: python benchmarks/bench_remote.py [--files 2000] [--trials 5] [--sync-only]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import TRAIN_SCRIPT, free_port  # noqa: E402


def sh(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def timed(func) -> tuple[float, object]:
    start = time.perf_counter()
    value = func()
    return time.perf_counter() - start, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--sync-only", action="store_true", help="Measure the syncs, not the per-trial overhead.")
    args = ap.parse_args()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="tracker-bench-remote-") as tmp:
        tmpdir = Path(tmp)
        sshd = tmpdir / "sshd"
        os.environ.setdefault("SSHD_HOSTS_PORT", str(free_port("127.0.0.2", "127.0.0.3")))
        out = sh(str(ROOT / "tests/infra/sshd-hosts.sh"), "start", str(sshd), "2")
        env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        try:
            project = tmpdir / "proj"
            (project / "src").mkdir(parents=True)
            for i in range(args.files):
                (project / "src" / f"m{i:04d}.py").write_text(f"VALUE_{i} = {i}\n" + "# padding\n" * 40)
            (project / "train.py").write_text(TRAIN_SCRIPT)
            (project / "tracker.yaml").write_text("name: bench\nseeds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n")
            (project / ".gitignore").write_text(".tracker/\n")
            (project / "experiments").mkdir()
            (project / "experiments/e.yaml").write_text("command: [python3, train.py]\nparams: {lr: 0.1}\n")
            for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
                sh("git", "-c", "user.name=b", "-c", "user.email=b@b", *cmd, cwd=project)
            os.chdir(project)
            from tracker.project import Project
            from tracker.remote import connection as hosts_conn
            from tracker.remote import hosts, sync
            from tracker.remote.executor import workspace
            from tracker.remote.workspace import Workspace

            proj = Project.load(project)
            for i in (1, 2):
                proj.set_section("remotes", f"gpu{i}", {
                    "host": env[f"SSH_GPU{i}_ADDR"], "port": int(env["SSH_PORT"]), "user": env["SSH_USER"],
                    "key": env["SSH_KEY"], "workdir": env[f"SSH_GPU{i}_BASE"], "known_hosts": env["SSH_KNOWN_HOSTS"]})
            sh("git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "remotes", cwd=project)
            proj = Project.load(project)
            head = sh("git", "rev-parse", "HEAD", cwd=project).strip()[:12]
            ws = workspace(proj, hosts.resolve(proj, "gpu1"))
            files = sync.file_list(project)
            size = sum((project / f).stat().st_size for f in files)

            plain_dest = f"{env['SSH_GPU2_BASE']}/plain/"
            rsync = ["rsync", "-a", "-e", env["RSYNC_RSH"], f"{project}/", f"gpu2:{plain_dest}"]
            # the same rsync over an already open OpenSSH connection (a ControlMaster), for tracker's open one
            control = f"-o ControlPath={tmpdir}/cm-%r@%h:%p"
            master = subprocess.Popen(["ssh", "-F", env["SSH_CONFIG"], "-M", "-N", *control.split(), "gpu2"],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rsync_open = ["rsync", "-a", "-e", f"{env['RSYNC_RSH']} {control}", f"{project}/", f"gpu2:{plain_dest}"]
            sh("ssh", "-F", env["SSH_CONFIG"], "gpu2", f"mkdir -p {plain_dest}")

            opened: list[Workspace] = []

            def fresh() -> Workspace:  # tracker as a new command sees it: connect, then sync
                opened.append(Workspace(hosts_conn.Connection.open(ws.host), ws.host, ws.project_name))
                return opened[-1]

            def settle() -> None:  # a commit is seconds after the last sync: its spare is ready by then
                time.sleep(1.0)

            t_plain1, _ = timed(lambda: sh(*rsync))
            t_ours1, first = timed(lambda: sync.sync_code(ws, project, head))
            t_plain2 = statistics.median(timed(lambda: sh(*rsync))[0] for _ in range(5))
            t_plain2_open = statistics.median(timed(lambda: sh(*rsync_open))[0] for _ in range(5))
            t_ours2 = statistics.median(timed(lambda: sync.sync_code(ws, project, head))[0] for _ in range(5))
            t_ours2_new = statistics.median(timed(lambda: sync.sync_code(fresh(), project, head))[0]
                                            for _ in range(5))
            again = sync.sync_code(ws, project, head)
            rows += [
                (f"first sync, {len(files)} files ({size / 1e6:.1f} MB): plain rsync -a", f"{t_plain1:.2f} s", ""),
                ("first sync: tracker", f"{t_ours1:.2f} s", f"{first.bytes_sent:,} bytes ({first.method})"),
                ("unchanged re-sync, new connection: plain rsync -a", f"{t_plain2:.2f} s", ""),
                ("unchanged re-sync, new connection: tracker (connect + check)", f"{t_ours2_new:.2f} s",
                 f"{t_ours2_new / t_plain2:.2f}x plain rsync"),
                ("unchanged re-sync, open connection: plain rsync -a (ControlMaster)", f"{t_plain2_open:.2f} s", ""),
                ("unchanged re-sync, open connection: tracker", f"{t_ours2:.2f} s",
                 f"{again.bytes_sent} bytes moved; {t_ours2 / t_plain2_open:.2f}x plain rsync"),
            ]
            # a new commit changing one file, six times (three each way): tracker's code dir per commit vs plain rsync
            # updating one directory in place (both over a new OpenSSH connection for the copy)
            t_commit, t_commit_new, t_plain_commit, sent = [], [], [], 0
            for i in range(6):
                (project / "src/m0000.py").write_text(f"VALUE_0 = 'changed {i}'\n")
                sh("git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", f"c{i}", cwd=project)
                commit = sh("git", "rev-parse", "HEAD", cwd=project).strip()[:12]
                settle()
                t_plain_commit.append(timed(lambda: sh(*rsync))[0])
                if i % 2:
                    t, result = timed(lambda c=commit: sync.sync_code(fresh(), project, c))
                    t_commit_new.append(t)
                else:
                    t, result = timed(lambda c=commit: sync.sync_code(ws, project, c))
                    t_commit.append(t)
                sent = result.bytes_sent
            plain_commit = statistics.median(t_plain_commit)
            rows += [
                ("new commit, one file changed: plain rsync -a into one directory", f"{plain_commit:.2f} s", ""),
                ("new commit, one file changed: tracker, open connection", f"{statistics.median(t_commit):.2f} s",
                 f"{sent:,} bytes; {statistics.median(t_commit) / plain_commit:.2f}x plain rsync (target <= 1.3x)"),
                ("new commit, one file changed: tracker, new connection",
                 f"{statistics.median(t_commit_new):.2f} s",
                 f"{statistics.median(t_commit_new) / plain_commit:.2f}x plain rsync"),
            ]
            t_same_all = []
            for i in range(3):  # the same files into a new code directory (a new snapshot of an unchanged tree)
                settle()
                t_same_all.append(timed(lambda n=i: sync.sync_code(ws, project, f"same{n}"))[0])
            t_same = statistics.median(t_same_all)
            rows.append(("same files, new code dir: tracker", f"{t_same:.2f} s",
                         f"{t_same / t_plain2:.2f}x plain rsync (unchanged, new connection)"))
            (project / "src/m0001.py").write_text("VALUE_1 = 'changed'\n")
            sh("git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "two", cwd=project)
            head3 = sh("git", "rev-parse", "HEAD", cwd=project).strip()[:12]
            t_sftp, sftp = timed(lambda: sync.sync_code(ws, project, head3, use_rsync=False))
            rows.append(("new commit, one file changed: tracker (SFTP fallback, sha256 manifest)",
                         f"{t_sftp:.2f} s", f"{sftp.bytes_sent:,} bytes"))
            master.terminate()
            for w in opened:
                w.conn.close()

            if args.sync_only:
                print_table(rows)
                return
            # per-trial overhead
            code_dir = first.path
            bare = statistics.median(timed(lambda: sh(
                "ssh", "-F", env["SSH_CONFIG"], "gpu1", f"cd {code_dir} && python3 train.py --lr=0.1 --seed=1"))[0]
                for _ in range(args.trials))
            n = args.trials
            t_run, _ = timed(lambda: sh("tracker", "run", "e", "--remote", "gpu1", "--seeds", str(n), "-q",
                                        cwd=project))
            t_one = statistics.median(timed(lambda: sh("tracker", "run", "e", "--remote", "gpu1", "--seed", "1",
                                                       "--rerun", "-q", cwd=project))[0] for _ in range(3))
            rows += [
                ("ssh gpu1 python train.py (bare, incl. SSH handshake)", f"{bare * 1000:.0f} ms", ""),
                (f"tracker run --remote gpu1, {n} trials, per trial", f"{t_run / n * 1000:.0f} ms",
                 f"overhead {(t_run / n - bare) * 1000:+.0f} ms/trial (target < 1 s)"),
                ("tracker run --remote gpu1, one trial per call", f"{t_one * 1000:.0f} ms",
                 f"overhead {(t_one - bare) * 1000:+.0f} ms (connect, code check, env check, run, pull)"),
            ]
        finally:
            sh(str(ROOT / "tests/infra/sshd-hosts.sh"), "stop", str(sshd))
    print_table(rows)


if __name__ == "__main__":
    main()
