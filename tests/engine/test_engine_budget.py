"""time_budget: the step count planned from measured step times, written into config.yaml."""

from __future__ import annotations

import time

import pytest
import torch
import yaml
from engine_helpers import tiny_config

from resnet.cli import main
from resnet.engine import budget
from resnet.engine.budget import StepTimes, measure_step_times, plan_steps
from resnet.engine.setup import StepContext
from resnet.engine.train import train
from resnet.errors import ConfigError
from resnet.models import create_model

TIMES = StepTimes(step_seconds=1.0, forward_seconds_per_image=0.001)


def test_the_plan_is_the_most_steps_whose_training_and_scoring_fit():
    # 100 s budget, 10 s gone: 81 s after the 10% margin, 5 s of it for the final 5,000
    # images; 74 steps (2 epochs of 50, each scoring 1,000 images: 1 s) cost 76 s <= 76 s,
    # 75 steps 77 s.
    plan = plan_steps(100, 10, TIMES, steps_per_epoch=50, max_steps=1000,
                      epoch_eval_images=1000, final_eval_images=5000)  # fmt: skip
    assert plan.total_steps == 74 and plan.remaining_seconds == 90
    # The epoch-end scoring counts once per started epoch: 1-step epochs pay it every step.
    plan = plan_steps(100, 10, TIMES, steps_per_epoch=1, max_steps=1000,
                      epoch_eval_images=1000, final_eval_images=5000)  # fmt: skip
    assert plan.total_steps == 38  # 38 x (1 s + 1 s) = 76 s
    # Never more than the recipe's own length.
    plan = plan_steps(1e6, 0, TIMES, steps_per_epoch=50, max_steps=120,
                      epoch_eval_images=0, final_eval_images=0)  # fmt: skip
    assert plan.total_steps == 120


def test_a_budget_with_no_room_for_a_step_is_a_config_error():
    with pytest.raises(ConfigError, match=r"time_budget 10 s leaves no time to train.*raise") as e:
        plan_steps(10, 9.5, TIMES, steps_per_epoch=50, max_steps=100,
                   epoch_eval_images=0, final_eval_images=0)  # fmt: skip
    assert "scoring" not in str(e.value)  # no final scoring: none to name
    with pytest.raises(ConfigError, match="scoring the 20000 final test images 20.0 s"):
        plan_steps(20, 1, TIMES, steps_per_epoch=50, max_steps=100,
                   epoch_eval_images=0, final_eval_images=20000)  # fmt: skip


def test_measuring_leaves_the_model_and_the_random_state_as_they_were():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_chans=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = (torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))
    rng = torch.get_rng_state()
    times = measure_step_times(model, batch, StepContext("off", "auto", torch.device("cpu")))
    assert times.step_seconds > 0 and times.forward_seconds_per_image > 0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics included
    assert torch.equal(torch.get_rng_state(), rng) and model.training


def _fixed_times(monkeypatch, step_seconds: float) -> None:
    monkeypatch.setattr(budget, "measure_step_times", lambda *a, **k: StepTimes(step_seconds, 1e-6))
    monkeypatch.setattr("resnet.engine.train.measure_step_times", budget.measure_step_times)


def test_a_budgeted_run_writes_its_plan_and_its_config_repeats_it(tiny_npz, tmp_path, monkeypatch):
    """8 steps/epoch x 3 epochs = 24 nominal; a 100 s step (as measured) and a 2,100 s budget
    give 18 steps (90% of 2,100 s less the setup's second or so, 2.25 epochs), warmup shrunk to
    18/24 of 1.0 epoch. Rerunning the written config.yaml, with no
    budget, trains the same steps to bitwise the same weights."""
    _fixed_times(monkeypatch, 100.0)
    config = tiny_config(tiny_npz, tmp_path, time_budget=2100, schedule="onecycle",
                         warmup_epochs=1.0)  # fmt: skip
    first = train(config, started=time.perf_counter())
    saved = yaml.safe_load((tmp_path / "tiny" / "config.yaml").read_text())
    assert saved["max_steps"] == 18 and saved["time_budget"] is None
    assert saved["warmup_epochs"] == pytest.approx(0.75)
    assert [row["step"] for row in first.history] == [8, 16, 18]
    monkeypatch.setattr(budget, "measure_step_times", None)  # a replan would fail loudly
    monkeypatch.setattr("resnet.engine.train.measure_step_times", None)
    again = train({**saved, "name": "again"})
    weights = torch.load(tmp_path / "tiny" / "last.state.pt", weights_only=True)["model"]
    repeat = torch.load(tmp_path / "again" / "last.state.pt", weights_only=True)["model"]
    assert again.history[-1]["step"] == 18
    assert all(torch.equal(weights[k], repeat[k]) for k in weights)


def test_a_budget_larger_than_the_recipe_changes_nothing(tiny_npz, tmp_path, monkeypatch):
    _fixed_times(monkeypatch, 1e-3)
    train(tiny_config(tiny_npz, tmp_path, time_budget=3600, epochs=2, warmup_epochs=0.5))
    saved = yaml.safe_load((tmp_path / "tiny" / "config.yaml").read_text())
    assert saved["max_steps"] == 16 and saved["warmup_epochs"] == 0.5


def test_a_too_small_budget_fails_before_the_run_folder_exists(tiny_npz, tmp_path, monkeypatch):
    _fixed_times(monkeypatch, 10.0)
    with pytest.raises(ConfigError, match="leaves no time to train"):
        train(tiny_config(tiny_npz, tmp_path, time_budget=5))
    assert not (tmp_path / "tiny").exists()


def test_budget_conflicts_are_config_errors(tiny_npz, tmp_path):
    with pytest.raises(ConfigError, match="drop compile or time_budget"):
        train(tiny_config(tiny_npz, tmp_path, time_budget=60, compile=True))
    train(tiny_config(tiny_npz, tmp_path, epochs=1, max_steps=2))
    with pytest.raises(ConfigError, match="a resumed run keeps the max_steps"):
        train({"time_budget": 60}, resume=tmp_path / "tiny")


def test_cli_time_budget(tiny_npz, tmp_path, capsys):
    args = ["train", "--dataset", str(tiny_npz), "--runs-dir", str(tmp_path), "--name", "cli",
            "--model", "resnet20", "--no-progress", "--set", "pad=1",
            "--set", "num_threads=1"]  # fmt: skip
    assert main([*args, "--time-budget", "0"]) == 2
    assert "time_budget must be in (0, inf], got 0.0" in capsys.readouterr().err
    assert main([*args, "--time-budget", "600", "--epochs", "1", "--batch-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "time budget 600 s:" in out and "-> 4 steps (1.00 epochs, 100% of the recipe's 4)" in out
    assert yaml.safe_load((tmp_path / "cli" / "config.yaml").read_text())["max_steps"] == 4
