"""Running trials: launch building, lifecycle, executors (local; SSH, queue and SLURM plug in)."""
