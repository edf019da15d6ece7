"""Smoke tests of the robustness and transfer studies, and of the report built from them.

Each study runs in a subprocess at its tiny profile, restricted to few families, variants and
methods (compilation is most of it); the report is then regenerated from their real outputs.
They inherit the session's XLA flags and compilation cache from conftest.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *flags: str, cwd: Path) -> None:
    command = [sys.executable, str(ROOT / "experiments" / script), "--tiny", "--quiet", *flags]
    done = subprocess.run(
        command, cwd=cwd, env=dict(os.environ), capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("studies")
    # One family (the curriculum) keeps CI short; the point mass's bar is tested in test_analysis.
    _run(
        "robustness.py",
        *("--families", "corridor_curriculum", "--variants", "a3c", "distral_klent_2col"),
        *("--out", str(root / "runs" / "robustness")),
        cwd=root,
    )
    _run(
        "transfer.py",
        *("--families", "corridor", "--methods", "scratch", "prior_2col", "finetune_multitask"),
        *("--out", str(root / "runs" / "transfer")),
        cwd=root,
    )
    return root / "runs"


@pytest.mark.slow
def test_robustness_reports_every_row_of_the_grid(runs):
    out = runs / "robustness"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["profile"] == "tiny"
    assert summary["run"]["command"].startswith("python ")
    assert set(summary["families"]) == {"corridor_curriculum"}
    for name, family in summary["families"].items():
        rows = family["variants"]
        assert set(rows) == {"a3c", "a3c (matched entropy)", "distral_klent_2col"}
        a3c, matched = rows["a3c"]["settings"][0], rows["a3c (matched entropy)"]["settings"][0]
        klent = rows["distral_klent_2col"]["settings"][0]
        # The matched row's entropy cost is Distral-klent's at the same β; the plain row's twice.
        assert matched["entropy_cost"] == pytest.approx(klent["entropy_cost"])
        assert a3c["entropy_cost"] == pytest.approx(2 * klent["entropy_cost"])
        for row in rows.values():
            scores = row["sorted_setting_scores"]
            assert scores == sorted(scores, reverse=True)
            assert len(row["sorted_run_scores"]) == row["runs"] == 2  # 1 setting x 2 seeds
            assert 0.0 <= row["fraction_of_runs_reaching"] <= 1.0
            assert np.isfinite(row["area_under_score_curve"]["median"])
        assert (out / f"{name}_sorted_final.png").stat().st_size > 0
        assert (out / f"{name}_steps_to_bar.png").stat().st_size > 0
    curriculum = summary["families"]["corridor_curriculum"]
    assert curriculum["task_start_steps"][0] == 0 < curriculum["task_start_steps"][-1]
    assert "late_tasks_steps_after_introduction" in curriculum["variants"]["a3c"]


@pytest.mark.slow
def test_transfer_reports_steps_and_paired_ratios(runs):
    out = runs / "transfer"
    summary = json.loads((out / "summary.json").read_text())
    family = summary["families"]["corridor"]
    assert set(family["held_out"]).isdisjoint(family["trained_on"])
    assert len(family["held_out"]) == 4 and len(family["trained_on"]) == 8
    assert set(family["steps_to_bar"]) == {"scratch", "prior_2col", "finetune_multitask"}
    assert set(family["ratios"]) == {"prior_2col/scratch", "prior_2col/finetune_multitask"}
    assert family["steps_to_bar"]["scratch"]["runs"] == 2
    assert set(family["phase1_final_score"]) == {"distral_klent_2col", "a3c_multitask"}
    assert (out / "corridor_heldout_curves.png").stat().st_size > 0


@pytest.mark.slow
def test_report_renders_both_studies(runs, tmp_path):
    spec = importlib.util.spec_from_file_location("report", ROOT / "experiments" / "report.py")
    report = importlib.util.module_from_spec(spec)
    sys.modules["report"] = report  # its dataclasses look their module up
    spec.loader.exec_module(report)
    page = tmp_path / "results.md"
    figures = tmp_path / "results"
    assert report.main(["--runs", str(runs), "--out", str(page), "--figures", str(figures)]) == 0
    text = page.read_text()
    assert "python experiments/robustness.py --tiny" in text
    assert "a3c (matched entropy)" in text
    assert "prior_2col/scratch" in text
    assert any((figures / "robustness").rglob("*.png"))
