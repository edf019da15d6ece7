"""Smoke test of ``benchmarks/compare.py``: its tiny profile runs end to end and writes its files.

The script runs in a subprocess, as a user launches it (it inherits conftest.py's XLA flags and
compilation cache). No figure is checked against a threshold: timings belong to the script.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_tiny_profile_writes_json_and_results_table(tmp_path):
    out, report = tmp_path / "compare_cpu_tiny.json", tmp_path / "RESULTS.md"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "compare.py"),
        "--tiny",
        "--out",
        str(out),
        "--report",
        str(report),
    ]
    done = subprocess.run(
        command, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]

    result = json.loads(out.read_text())
    assert result["profile"] == "tiny" and result["meta"]["jax"]
    (grid,) = result["families"]
    methods = [row["method"] for row in grid["rows"]]
    assert methods == ["raw", "trainer distral_klent_2col a2c"]
    rows = grid["rows"] + [result["loop"]] + result["scaling"]
    for row in rows:
        assert row["sps"] > 0 and math.isfinite(row["sps"]) and row["compile_s"] > 0
    assert grid["rows"][1]["finite"]
    # Ratios come from windows timed in alternation with their reference.
    assert grid["rows"][1]["raw_sps"] > 0 and result["loop"]["vmapped_sps"] > 0
    assert all(s["first_sps"] > 0 for s in result["scaling"] if s["tasks"] > 1)
    scaling = {(s["mode"], s["tasks"]) for s in result["scaling"]}
    assert scaling == {(m, n) for m in ("same_total_envs", "same_envs_per_task") for n in (1, 2)}

    text = report.read_text()
    assert "python benchmarks/compare.py --tiny" in text and "### Targets" in text
    assert "| vmapped tasks / per-task loop (grid world, Distral A2C) | ≥ 3.0 |" in text
    assert "alternate windows" in text
