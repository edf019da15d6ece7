"""Smoke test of the XLand-MiniGrid study: its tiny profile runs end to end and writes its files.

The study runs in a subprocess, as a user launches it; it inherits the session's XLA flags and
compilation cache from conftest.py. One variant, two tasks, two environments, four updates:
compilation is most of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_tiny_profile_writes_summary_curves_and_rollouts(tmp_path):
    out = tmp_path / "minigrid"
    command = [
        sys.executable,
        str(ROOT / "experiments" / "minigrid_multitask.py"),
        "--tiny",
        "--quiet",
        "--out",
        str(out),
    ]
    done = subprocess.run(
        command, cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["args"]["profile"] == "tiny"
    assert len(summary["tasks"]) == 2 and all(summary["tasks"])
    assert summary["config"]["core"] == "lstm"
    assert summary["config"]["episode_length"] == summary["args"]["max_steps"]
    row = summary["variants"]["distral_klent_2col"]
    for key in (
        "initial_return_sampled",
        "final_return_sampled",
        "final_return_greedy",
        "final_pi0_return_sampled",
        "final_pi0_return_greedy",
    ):
        assert len(row[key]) == 2, key
        assert all(0.0 <= r <= 1.0 for r in row[key]), key
    assert set(row["steps_to_threshold_sampled"]) == {"median", "q25", "q75", "reached", "runs"}
    assert row["steps_to_threshold_sampled"]["runs"] == 1
    assert row["training_sps_of_its_program"] > 0 and row["compile_time_s"] > 0
    assert row["eval_steps"][0] == 0 and row["eval_steps"][-1] >= 64

    assert (out / "curves.png").stat().st_size > 0
    assert (out / "curves_mean_worst.png").stat().st_size > 0
    rollouts = summary["rollouts"]
    assert rollouts["variant"] == "distral_klent_2col"
    for i, task in enumerate(rollouts["tasks"]):
        assert task["file"] == f"rollout_task{i}.png"
        assert (out / task["file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert 1 <= task["length"] <= summary["args"]["max_steps"]
        assert task["steps_drawn"][-1] == task["length"] - 1
        assert len(task["steps_drawn"]) <= summary["args"]["strip_frames"]
    assert len(rollouts["tasks"]) == 2
