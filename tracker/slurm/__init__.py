"""Running a run's trials on a SLURM cluster: job arrays of ``tracker worker`` tasks (docs/slurm.md).

``cluster`` wraps SLURM's commands, ``submit`` plans and submits the arrays
(``tracker run --slurm``), ``task`` is what a worker inside a SLURM job calls.
"""
