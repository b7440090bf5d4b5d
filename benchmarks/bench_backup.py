#!/usr/bin/env python3
"""Backup to S3 (moto server on loopback) against a raw boto3 upload of the same files, in one run.

Makes SIZE of trial outputs in mixed file sizes (a few large model files, many
medium checkpoints, many small logs), then measures:
  1. raw boto3: upload_file per file with the same TransferConfig (what `aws s3 sync` does);
  2. tracker backup --to s3 (first backup: hashing + content-addressed upload);
  3. the unchanged re-backup (bytes uploaded must be 0).

Usage: python benchmarks/bench_backup.py [--size-mib 1024]   (or BENCH_BACKUP_MIB=256)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import print_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024


def make_files(directory: Path, total: int) -> list[Path]:
    """~60% in 3 large files, ~30% in 30 medium, ~10% in 300 small."""
    directory.mkdir(parents=True, exist_ok=True)
    plan = [(3, int(total * 0.6) // 3), (30, int(total * 0.3) // 30), (300, int(total * 0.1) // 300)]
    paths = []
    for count, size in plan:
        for i in range(count):
            path = directory / f"f{size}_{i}.bin"
            with open(path, "wb") as fh:
                left = size
                while left:
                    chunk = min(left, 8 * MiB)
                    fh.write(os.urandom(chunk))
                    left -= chunk
            paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=int(os.environ.get("BENCH_BACKUP_MIB", "1024")),
                    help="total size of the files (default 1024, or $BENCH_BACKUP_MIB)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracker-bench-backup-") as tmp:
        tmpdir = Path(tmp)
        os.environ.setdefault("S3_PORT", "5077")  # away from the test suite's moto on 5000
        proc = subprocess.run([str(ROOT / "tests/infra/s3.sh"), "start", str(tmpdir / "s3")],
                              capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"moto did not start: {proc.stderr.strip().splitlines()[-1:]}")
        out = proc.stdout
        env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        os.environ.update(env)
        try:
            import boto3
            from boto3.s3.transfer import TransferConfig

            from tracker.project import Project
            from tracker.storage.backup import backup
            from tracker.store import Trial, now

            s3 = boto3.client("s3", endpoint_url=env["S3_ENDPOINT_URL"])
            project_dir = tmpdir / "proj"
            project_dir.mkdir()
            (project_dir / "tracker.yaml").write_text(
                "name: bench\nstorage:\n  s3: {type: s3, bucket: tracked, prefix: bench}\n")
            project = Project.load(project_dir)
            trial = Trial(id="bench0000001", experiment="bench", status="completed", seed=1, params={},
                          created=now())
            project.store.add_trials([trial])
            files = make_files(project.paths.trial_dir(trial.id), args.size_mib * MiB)
            total = sum(p.stat().st_size for p in files)
            config = TransferConfig(multipart_threshold=64 * MiB, multipart_chunksize=16 * MiB, max_concurrency=8)

            import urllib.request

            def reset() -> None:  # moto slows as it fills up: give each measurement an empty server
                urllib.request.urlopen(urllib.request.Request(env["MOTO_RESET_URL"], method="POST")).close()
                s3.create_bucket(Bucket="raw")
                s3.create_bucket(Bucket="tracked")

            def raw_upload() -> float:
                reset()
                start = time.perf_counter()
                with ThreadPoolExecutor(max_workers=8) as pool:  # as many workers as tracker uses
                    list(pool.map(lambda p: s3.upload_file(str(p), "raw", f"sync/{p.name}", Config=config), files))
                return time.perf_counter() - start

            raw_before = raw_upload()
            reset()
            start = time.perf_counter()
            first = backup(project, "s3", [trial.id])
            ours = time.perf_counter() - start
            start = time.perf_counter()
            again = backup(project, "s3", [trial.id])
            re_backup = time.perf_counter() - start
            raw_after = raw_upload()  # measured on both sides of tracker's run, so order does not favour it
            raw = min(raw_before, raw_after)
        finally:
            subprocess.run([str(ROOT / "tests/infra/s3.sh"), "stop", str(tmpdir / "s3")], capture_output=True)
    rows = [
        (f"raw boto3 upload_file x{len(files)} ({total / MiB:.0f} MiB, 8 threads)", f"{raw:.2f} s",
         f"{total / raw / MiB:.0f} MiB/s (best of {raw_before:.2f} s before and {raw_after:.2f} s after)"),
        ("tracker backup (first: sha256 + content-addressed upload)", f"{ours:.2f} s",
         f"{first.bytes_uploaded / MiB:.0f} MiB uploaded; {ours / raw:.2f}x raw boto3 (target <= 1.2x)"),
        ("tracker backup (unchanged re-backup)", f"{re_backup:.2f} s",
         f"{again.bytes_uploaded} bytes uploaded (target 0 bytes, < 2 s)"),
    ]
    print_table(rows, "time")


if __name__ == "__main__":
    main()
