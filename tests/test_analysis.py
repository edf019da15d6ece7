"""Steps-to-threshold summaries and result folders."""

import math

import numpy as np
import pytest

from distral_jax import analysis


def test_steps_to_threshold_needs_every_task():
    steps = np.array([0, 10, 20, 30])
    curves = np.array(
        [
            [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]],  # both tasks at step 20
            [[0.0, 0.0], [1.0, 0.5], [1.0, 0.5], [1.0, 0.5]],  # task 1 never
        ]
    )
    got = analysis.steps_to_threshold(steps, curves, np.array([0.9, 0.9]))
    assert got[0] == 20 and math.isinf(got[1])
    with pytest.raises(ValueError, match="curves"):
        analysis.steps_to_threshold(steps, curves[:, :2], np.array([0.9, 0.9]))


def test_summary_median_is_never_when_half_the_runs_never_reach():
    assert analysis.summarize_steps(np.array([10.0, 20.0, 30.0]))["median"] == 20.0
    s = analysis.summarize_steps(np.array([10.0, np.inf, np.inf]))
    assert s["median"] is None and s["reached"] == 1 and s["runs"] == 3
    # A quantile that falls exactly on a finite run is that run, even next to a "never".
    s = analysis.summarize_steps(np.array([10.0, 20.0, np.inf]))
    assert s["median"] == 20.0 and s["q25"] == 15.0 and s["q75"] is None
    assert analysis.summarize_steps(np.array([]))["median"] is None
    assert analysis.ratio({"median": 10.0}, {"median": 20.0}) == 0.5
    assert analysis.ratio({"median": 10.0}, {"median": None}) is None


def test_fresh_output_dir_keeps_earlier_results(tmp_path):
    out = tmp_path / "study"
    analysis.fresh_output_dir(out)
    (out / "summary.json").write_text("{}")
    analysis.fresh_output_dir(out)
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("study-")]
    assert len(moved) == 1 and (moved[0] / "summary.json").read_text() == "{}"
    assert out.is_dir() and not any(out.iterdir())


def test_task_bars_of_a_grid_world_subset_and_of_the_point_mass():
    from distral_jax.envs.gridworld import corridor_design  # noqa: PLC0415
    from distral_jax.envs.point_mass import PointMassGoals  # noqa: PLC0415
    from distral_jax.envs.wrappers import TaskSubset  # noqa: PLC0415

    grid = corridor_design(num_tasks=4)
    full = analysis.task_bar(grid, 30)
    held_out = analysis.task_bar(TaskSubset(grid, [3, 1]), 30)
    np.testing.assert_allclose(held_out.reference, full.reference[[3, 1]])  # by task id
    np.testing.assert_allclose(full.threshold, 0.9 * full.reference)
    np.testing.assert_allclose(full.score(full.reference), 1.0)

    point_mass = analysis.task_bar(PointMassGoals(num_tasks=2), 20)
    assert point_mass.fraction == 1.0
    np.testing.assert_allclose(point_mass.threshold, point_mass.reference)
    assert np.all(point_mass.reference > point_mass.floor)  # scripted beats random
    np.testing.assert_allclose(point_mass.score(point_mass.floor), 0.0)


def test_area_under_curve_and_run_record():
    steps = np.array([0.0, 10.0, 30.0])
    scores = np.array([[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(analysis.area_under_curve(steps, scores), [25 / 30, 1.0])
    record = analysis.run_record(12.0)
    assert record["command"].startswith("python ") and record["wall_time_s"] == 12.0
    assert record["machine"]["cores"] >= 1 and record["machine"]["backend"]
