"""Planning job arrays: one task per trial, chunks below MaxArraySize, several trials per task
when the cluster takes fewer jobs than there are trials."""

from __future__ import annotations

import pytest

from tracker.errors import UsageError
from tracker.slurm.cluster import Limits
from tracker.slurm.submit import ArrayPlan, SlurmOptions, plan_arrays


@pytest.mark.parametrize(("trials", "array", "jobs", "expected"), [
    (3, 1001, 10000, ArrayPlan([3], 1)),
    (1001, 1001, 10000, ArrayPlan([1001], 1)),
    (2500, 1001, 10000, ArrayPlan([1001, 1001, 498], 1)),
    (10, 4, 10000, ArrayPlan([4, 4, 2], 1)),
    (10, 1001, 4, ArrayPlan([4], 3)),  # MaxSubmitJobs 4: 4 tasks of at most 3 trials (3+3+3+1)
    (10, 2, 5, ArrayPlan([2, 2, 1], 2)),
    (0, 1001, 10000, ArrayPlan([], 1)),
])
def test_plan_arrays(trials: int, array: int, jobs: int, expected: ArrayPlan) -> None:
    got = plan_arrays(trials, Limits(array, jobs))
    assert got == expected
    assert sum(got.arrays) * got.trials_per_task >= trials  # every trial has a task
    assert all(n <= array for n in got.arrays) and sum(got.arrays) <= jobs


def test_options_become_sbatch_flags() -> None:
    options = SlurmOptions(partition="gpu", time="2:00:00", gpus="a100:1", cpus=4, mem="16G")
    assert options.sbatch_options() == ["--partition=gpu", "--time=2:00:00", "--gpus=a100:1",
                                        "--cpus-per-task=4", "--mem=16G"]


@pytest.mark.parametrize(("options", "message"), [
    (SlurmOptions(array_parallel=0), "--array-parallel must be at least 1"),
    (SlurmOptions(cpus=0), "--cpus must be at least 1"),
    (SlurmOptions(mem="8 G"), "--mem '8 G' is not a valid value"),
    (SlurmOptions(partition="a\n#SBATCH --x"), "--partition"),
])
def test_bad_options_are_refused(options: SlurmOptions, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        options.sbatch_options()
