"""Metric capture from scripts written the way real projects write them: step lines, Keras,
logging, stable-baselines3 tables, JSON lines, labelled numbers, TensorBoard event files, and an
experiment's own ``output_scalars`` patterns."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import cli, git
from tracker.errors import ConfigError
from tracker.execution.base import Reporter
from tracker.experiments import load as load_experiment
from tracker.project import Project
from tracker.runs import RunOptions, run_experiments
from tracker.store import Trial


class Messages(Reporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


def run_script(root: Path, script: str, extra: str = "", reporter: Reporter | None = None) -> Trial:
    """Commit ``script`` as s.py with an experiment running it once, run it; the trial as stored."""
    (root / "s.py").write_text(textwrap.dedent(script))
    (root / "experiments" / "s.yaml").write_text(f"command: [{sys.executable!r}, s.py]\nseeds: 1\n"
                                                 + textwrap.dedent(extra))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "s")
    [trial] = run_experiments(Project.find(), ["s"], RunOptions(), reporter).trials
    assert trial.status == "completed", trial.error
    return trial


def series(trial: Trial, name: str) -> list[tuple[int | None, float]]:
    return [(p.step, p.value) for p in Project.find().store.metrics(trial.id, name)]


def test_a_step_line_on_its_own_sets_the_step_of_the_lines_after_it(project_dir: Path) -> None:
    trial = run_script(project_dir, """
        for i in range(3):
            print(f"step: {i}")
            print(f"loss: {1 / (i + 1):.3f}")
            print(f"acc: {i / 10}")
    """)
    assert series(trial, "loss") == [(0, 1.0), (1, 0.5), (2, 0.333)]
    assert series(trial, "acc") == [(0, 0.0), (1, 0.1), (2, 0.2)]
    assert trial.step == 2


def test_keras_progress_lines_with_the_epoch_as_step(project_dir: Path) -> None:
    trial = run_script(project_dir, """
        for epoch in range(1, 4):
            print(f"Epoch {epoch}/3")
            print(f"32/32 [==============================] - 0s 2ms/step - loss: {0.9 / epoch:.4f} "
                  f"- accuracy: {0.5 + epoch / 10:.4f} - val_loss: {1 / epoch:.4f} "
                  f"- val_accuracy: {0.4 + epoch / 10:.4f}")
        bar = "\\u2501" * 6  # Keras 3 draws its bar with box characters
        print(f"32/32 {bar} 0s 1ms/step - accuracy: 0.9000 - loss: 0.1000")
    """)
    assert series(trial, "val_accuracy") == [(1, 0.5), (2, 0.6), (3, 0.7)]
    assert series(trial, "loss") == [(1, 0.9), (2, 0.45), (3, 0.3), (3, 0.1)]
    assert trial.metrics["accuracy"] == 0.9


def test_logging_output_is_read_behind_its_prefix(project_dir: Path) -> None:
    trial = run_script(project_dir, """
        import logging
        logging.basicConfig(level=logging.INFO)
        logging.info("val_loss: %s", 0.5)
        logging.info("starting epoch 2 of 5")
        named = logging.getLogger("trainer")
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
        named.addHandler(handler)
        named.propagate = False
        named.info("acc: %.2f", 0.9)
        named.warning("step=4, loss=0.25")
    """)
    assert trial.metrics == {"val_loss": 0.5, "acc": 0.9, "loss": 0.25}
    assert series(trial, "loss") == [(4, 0.25)]


def test_a_stable_baselines3_table_is_stored_at_its_timesteps(project_dir: Path) -> None:
    table = textwrap.dedent("""\
        ------------------------------------------
        | rollout/                |              |
        |    ep_len_mean          | {len}         |
        |    ep_rew_mean          | {rew}         |
        | time/                   |              |
        |    fps                  | 1204         |
        |    iterations           | {it}            |
        |    time_elapsed         | 1            |
        |    total_timesteps      | {steps}         |
        | train/                  |              |
        |    approx_kl            | 0.0087       |
        |    learning_rate        | 0.0003       |
        ------------------------------------------""")
    trial = run_script(project_dir, f"""
        table = {table!r}
        print("Using cpu device")
        for it in (1, 2):
            print(table.format(len=20.5 * it, rew=22.4 * it, it=it, steps=2048 * it))
    """)
    assert series(trial, "rollout/ep_rew_mean") == [(2048, 22.4), (4096, 44.8)]
    assert series(trial, "train/approx_kl") == [(2048, 0.0087), (4096, 0.0087)]
    assert trial.metrics["time/total_timesteps"] == 4096


def test_json_lines_key_value_pairs_and_labelled_numbers(project_dir: Path) -> None:
    trial = run_script(project_dir, """
        import json
        for step in range(2):
            print(json.dumps({"step": step, "loss": 0.5 - step / 10, "lr": 0.1, "done": False}))
        print({"eval_loss": 0.25, "eval_runtime": 1.5, "epoch": 1.0})  # Hugging Face's Trainer prints dicts
        print("epoch=3 grad_norm=1.5, lr=0.05")
        print("Model accuracy: 0.93")
        print("Test accuracy: 91.5%")
        print("The accuracy reached 0.97 after 5 epochs")
        print("Note: results saved to out/, 12 files")
    """)
    assert series(trial, "loss") == [(0, 0.5), (1, 0.4)]
    assert trial.metrics == {"loss": 0.4, "lr": 0.05, "eval_loss": 0.25, "eval_runtime": 1.5, "epoch": 3.0,
                             "grad_norm": 1.5, "model_accuracy": 0.93, "test_accuracy": 91.5}


def test_an_experiments_own_patterns_and_defaults_off(project_dir: Path) -> None:
    script = """
        for it in range(3):
            print(f"Iteration {it * 100} | reward is {it * 1.5}")
        print("loss: 0.3")
    """
    both = run_script(project_dir, script, r"""
        output_scalars:
          - 'Iteration (?P<step>\d+) \| (?P<name>\w+) is (?P<value>\S+)'
    """)
    assert series(both, "reward") == [(0, 0.0), (100, 1.5), (200, 3.0)]
    assert both.metrics == {"reward": 3.0, "loss": 0.3}
    alone = run_script(project_dir, script, r"""
        output_scalars:
          defaults: false
          patterns:
            - {return: 'reward is (\S+)'}
    """)
    assert alone.metrics == {"return": 3.0}


def test_a_bad_pattern_is_refused_with_file_and_line(project_dir: Path) -> None:
    (project_dir / "experiments" / "bad.yaml").write_text(
        "command: [python, s.py]\noutput_scalars:\n  patterns:\n    - 'loss: ((\\S+)'\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(Project.find(), "bad")
    text = str(err.value)
    assert "bad.yaml:" in text and "invalid regex" in text and "loss: ((" in text
    (project_dir / "experiments" / "bad.yaml").write_text(
        "command: [python, s.py]\noutput_scalars:\n  - 'loss (\\S+)'\n")
    code, _, stderr = cli("experiments", "show", "bad")
    assert code == 2 and "needs (?P<name>...) and (?P<value>...)" in stderr and "Traceback" not in stderr


def test_tensorboard_event_files_are_read(project_dir: Path) -> None:
    try:
        import tensorboard  # noqa: F401
        import torch.utils.tensorboard  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"tensorboard or torch is missing under CI: {exc}")
        pytest.skip(f"needs tensorboard and torch (pip install 'tracker[tensorboard]' torch): {exc}")
    trial = run_script(project_dir, """
        import os
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(log_dir=os.path.join(os.environ["TRACKER_TRIAL_DIR"], "tb"))
        for step in range(3):
            writer.add_scalar("train/loss", 1.0 / (step + 1), step)
            writer.add_scalar("val/acc", 0.5 + step / 10, step)
        writer.close()
        print("val/acc: 0.9")  # printed too: the printed series is the one kept
    """)
    assert series(trial, "train/loss") == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert series(trial, "val/acc") == [(None, 0.9)]


def test_a_run_without_its_objective_says_which_metrics_it_saw(project_dir: Path) -> None:
    messages = Messages()
    run_script(project_dir, 'print("step: 1 accuracy: 0.9 loss: 0.2")\n',
               "objective: {metric: val/acc, goal: max}\n", messages)
    [line] = [m for m in messages.lines if "objective" in m]
    assert "val/acc never appeared" in line and "accuracy, loss" in line


def test_keras_validation_names_land_in_the_val_namespace_with_phases(project_dir: Path) -> None:
    trial = run_script(project_dir, """
        for epoch in range(1, 3):
            print(f"Epoch {epoch}/2")
            print(f"8/8 [========] - 0s - loss: {1 / epoch} - val_acc: {epoch / 4}")
    """, "phases: [train]\nobjective: {metric: val/acc, goal: max}\n")
    assert trial.metrics == {"train/loss": 0.5, "val/acc": 0.5}
    assert series(trial, "val/acc") == [(1, 0.25), (2, 0.5)]


def test_the_objective_hint_names_a_metric_that_will_exist(project_dir: Path) -> None:
    (project_dir / "experiments" / "k.yaml").write_text(
        "command: [python, s.py]\nphases: [train, validate]\nobjective: {metric: val_acc, goal: max}\n")
    with pytest.raises(ConfigError, match="name the objective 'val/acc', not 'val_acc'"):
        load_experiment(Project.find(), "k")
