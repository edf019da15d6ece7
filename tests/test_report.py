"""experiments/report.py: the results page from fake study outputs (no training)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from distral_jax import analysis

ROOT = Path(__file__).resolve().parents[1]
MACHINE = {
    "processor": "Fake CPU 9000",
    "cores": 4,
    "memory_gib": 15.5,
    "backend": "cpu",
    "device": "cpu",
    "devices": 1,
}
TRAIN = {"learner": "a2c", "total_env_steps": 320000, "num_envs": 16, "hidden_sizes": [64],
         "beta": 100.0, "learning_rate": 0.003}  # fmt: skip


@pytest.fixture(scope="module")
def report():
    name = "experiments_report"  # registered first: dataclasses look their module up
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / "report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[name]


def steps(median, q25, q75, reached, runs=8):
    return {"median": median, "q25": q25, "q75": q75, "reached": reached, "runs": runs}


def run_record(command: str) -> dict:
    return {"command": command, "date": "2031-01-02 03:04 UTC", "machine": MACHINE,
            "jax": "0.0.1", "wall_time_s": 754.0}  # fmt: skip


def write_png(path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=20)
    plt.close(fig)


def write_summary(folder: Path, summary: dict, pngs: tuple[str, ...] = ()) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    for name in pngs:
        write_png(folder / name)


def deep_summary() -> dict:
    row = lambda g, s, final: {
        "steps_to_90_greedy": g, "steps_to_90_sampled": s, "final_return_mean": final,
        "final_return_worst_task": final - 0.2, "final_pi0_return_mean": final - 0.1,
        "training_sps_of_its_program": 1e5, "compile_time_s": 10.0,
    }  # fmt: skip
    results = {
        "a3c": row(steps(None, 153600, None, 3), steps(None, None, None, 0), 0.41),
        "distral_klent_2col": row(
            steps(102400, 76800, 128000, 7), steps(64000, 51200, 89600, 8), 0.8
        ),
    }
    ratios = {"distral_klent_2col/a3c (greedy)": None, "distral_klent_2col/a3c (sampled)": None}
    design = {"num_tasks": 8, "episode_length": 60, "optimal_returns": [0.9] * 8,
              "threshold": [0.81] * 8, "results": results, "ratios": ratios,
              "eval_steps": [0, 12800], "median_curves": {}}  # fmt: skip
    ratios_rooms = {
        "distral_klent_2col/a3c (greedy)": 0.625,
        "distral_klent_2col/a3c (sampled)": 1.5,
    }
    rooms = dict(design, num_tasks=4, episode_length=50, ratios=ratios_rooms)
    return {"args": {"designs": ["corridor", "two_rooms"], "seeds": 8, "train": TRAIN},
            "designs": {"corridor": design, "two_rooms": rooms}, "wall_time_s": 754.0,
            "run": run_record("python experiments/gridworld_deep.py --seeds 8")}  # fmt: skip


def brax_summary(command: str) -> dict:
    variant = {"final_return_sampled": [-66.7, -75.2], "final_return_greedy": [-70.2, -62.7],
               "final_pi0_return_greedy": [-114.4, -126.4], "training_sps_of_its_program": 2e5,
               "compile_time_s": 21.0, "wall_s": 21.5, "eval_steps": [0, 3200],
               "median_curve_sampled": [[0, 0], [1, 1]],
               "steps_to_scripted_sampled": steps(None, None, None, 0, 2),
               "steps_to_scripted_greedy": steps(2.5e6, 2e6, 3e6, 2, 2)}  # fmt: skip
    return {"args": {"family": "point_mass", "seeds": 2, "profile": "point_mass",
                     "train": dict(TRAIN, learner="ppo", total_env_steps=307200)},
            "config": {}, "device": "cpu", "random_policy_return": [-132.4, -136.2],
            "scripted_return": [-31.9, -54.8], "variants": {"a3c": variant},
            "wall_time_s": 38.0, "run": run_record(command)}  # fmt: skip


def minigrid_summary() -> dict:
    """An older summary: no "run" record."""
    variant = {"initial_return_sampled": [0.09, 0.087], "final_return_sampled": [0.43, 0.57],
               "final_return_greedy": [0.4, 0.5], "final_pi0_return_sampled": [0.1, 0.6],
               "steps_to_threshold_sampled": steps(179200, 179200, 179200, 1, 1),
               "steps_to_threshold_greedy": steps(None, None, None, 0, 1)}  # fmt: skip
    return {"args": {"seeds": 1, "profile": "small", "train": TRAIN}, "device": "cpu",
            "tasks": ["hold yellow key", "go next to red key"], "threshold": 0.4,
            "variants": {"distral_klent_2col": variant}, "wall_time_s": 588.4}  # fmt: skip


def tabular_summary() -> dict:
    per_seed = {"greedy_mean": [1000, 2000, None, 3000], "greedy_worst": [None] * 4,
                "sampled_mean": [800, 800, 800, 800]}  # fmt: skip
    sampled = {"distral": {"beta": 100.0, "steps_to_90": per_seed,
                           "median_steps_to_90": {}, "final_fraction_of_optimal_median": 0.975,
                           "final_worst_task_fraction_median": 0.911, "seconds": 5.0}}  # fmt: skip
    config = {"layout": "two_rooms", "num_tasks": 8, "alpha": 0.5, "beta": 100.0, "seeds": 4,
              "rounds": 30, "num_updates": 1000, "num_envs": 2, "rollout_length": 10}  # fmt: skip
    exact = {"joint_objective_history": [0.756, 5.0, 5.915], "min_joint_step_change": 7.2e-6,
             "greedy_fraction_of_optimal": [1.0] * 8,
             "pi0_entropy_by_room": {"room0": {"occupancy_weighted": 0.25, "mean": 0.4,
                                               "has_goals": False}}}  # fmt: skip
    run = run_record("python experiments/gridworld_tabular.py")
    return {"config": config, "optimal_returns": [0.9] * 8, "exact": exact, "sampled": sampled,
            "seconds_total": 48.0, "run": run}  # fmt: skip


@pytest.fixture
def page(tmp_path, report):
    runs = tmp_path / "runs"
    write_summary(runs / "gridworld_deep", deep_summary(), ("corridor_curves_greedy.png",))
    brax = runs / "brax_multitask"
    point_mass = brax_summary("python b.py --family point_mass")
    write_summary(brax / "point_mass", point_mass, ("curves.png",))
    write_summary(brax / "point_mass-20300101-120000", brax_summary("python OLD.py"))  # a backup
    write_summary(runs / "minigrid_multitask" / "XLand-MiniGrid-R1-9x9-lstm", minigrid_summary())
    out = tmp_path / "docs" / "results.md"
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\n## 1\n\nWhy one: the reason.\n\n## 3 transfer\n\nWhy three.\n")
    argv = ["--runs", str(runs), "--out", str(out), "--figures", str(tmp_path / "docs" / "results")]
    assert report.main([*argv, "--notes", str(notes)]) == 0
    return tmp_path, out.read_text()


def test_header_tables_and_figures(page):
    root, md = page
    assert "- Command: `python experiments/gridworld_deep.py --seeds 8`" in md
    assert "- Date: 2031-01-02 03:04 UTC; wall time 12.6 min" in md
    assert "320,000 env steps per run (all tasks); seeds: 8" in md
    assert "Fake CPU 9000, 4 cores, 15.5 GiB; JAX 0.0.1 on cpu (cpu ×1)" in md
    assert (
        "| distral_klent_2col | 102k [76.8k, 128k] 7/8 | 64k [51.2k, 89.6k] 8/8 | 0.8 | 0.6 | 0.7 |"
        in md
    )
    assert "| a3c | never (3/8) | never (0/8) | 0.41 |" in md
    assert "| distral_klent_2col / a3c | 0.62 | 1.50 |" in md
    # Figures: copied next to the page and linked relative to it.
    link = "results/gridworld_deep/corridor_curves_greedy.png"
    assert f"![corridor_curves_greedy]({link})" in md
    copied = root / "docs" / link
    original = root / "runs" / "gridworld_deep" / "corridor_curves_greedy.png"
    assert copied.read_bytes() == original.read_bytes()
    # One subsection per folder of a study; backups moved aside by a rerun are skipped.
    assert "### point_mass" in md and "OLD.py" not in md and "point_mass-2030" not in md
    assert "![curves](results/brax_multitask/point_mass/curves.png)" in md
    assert (root / "docs/results/brax_multitask/point_mass/curves.png").is_file()
    assert (
        "| a3c | -66.7, -75.2 | -70.2, -62.7 | -114, -126 | never (0/2) | 2.5M [2M, 3M] 2/2 |" in md
    )
    assert "profile point_mass" in md and "Scripted controller: -31.9, -54.8." in md


def test_missing_outputs_and_older_summaries(page):
    _, md = page
    assert "not run: `python experiments/gridworld_tabular.py`" in md
    assert "not run: `python experiments/robustness.py`" in md
    # The minigrid summary predates the run record.
    section = md.split("## XLand-MiniGrid\n")[1]
    assert "- Command: not recorded" in section
    assert "- Machine: not recorded (device: cpu)" in section
    assert (
        "| distral_klent_2col | 0.09, 0.087 | 0.43, 0.57 | 0.1, 0.6 | 179k [179k, 179k] 1/1 |" in md
    )


def test_claims(page):
    _, md = page
    claims = md.split("## Claims")[1].split("\n## ")[0]
    assert "two_rooms: 1 of 2 measured ratios below 1" in claims
    assert "corridor: 0 of 0 measured ratios below 1 (2 unmeasured" in claims
    assert "not measured yet: run `python experiments/robustness.py`" in claims
    assert "not measured yet: run `python experiments/transfer.py`" in claims
    # The notes' reasons follow their claims; a claim without notes gets none.
    one, two, three = claims.split("\n### ")[1:]
    assert one.endswith("Why one: the reason.\n") and three.endswith("Why three.\n")
    assert "Why" not in two


def test_tabular_quartiles_from_per_seed_steps(tmp_path, report):
    runs = tmp_path / "runs"
    write_summary(runs / "gridworld_tabular", tabular_summary(), ("policies.png",))
    out = tmp_path / "results.md"
    assert (
        report.main(["--runs", str(runs), "--out", str(out), "--figures", str(tmp_path / "f")]) == 0
    )
    md = out.read_text()
    # Seeds [1000, 2000, never, 3000]: median 2500, q25 1750, q75 leans on "never".
    assert "| distral | 100 | 2.5k [1.75k, never] 3/4 | never (0/4) | 800 [800, 800] 4/4 |" in md
    assert "1000 updates × 10 steps × 2 envs × 8 tasks = 160,000 env steps per run" in md
    assert "![policies](f/gridworld_tabular/policies.png)" in md
    assert "not run: `python experiments/gridworld_deep.py`" in md


def test_format_steps():
    assert analysis.format_steps(steps(102400, 76800, 128000, 7)) == "102k [76.8k, 128k] 7/8"
    assert analysis.format_steps(steps(5e5, 4e5, None, 5)) == "500k [400k, never] 5/8"
    assert analysis.format_steps(steps(None, 1e3, None, 3)) == "never (3/8)"
    assert analysis.format_steps(None) == "–"


def test_unreadable_summary_is_an_error(tmp_path, report, capsys):
    (tmp_path / "gridworld_deep").mkdir()
    (tmp_path / "gridworld_deep" / "summary.json").write_text("{not json")
    assert report.main(["--runs", str(tmp_path), "--out", str(tmp_path / "r.md")]) == 2
    assert "gridworld_deep/summary.json" in capsys.readouterr().err


def test_a_report_without_a_study_s_runs_keeps_its_section(page, report, capsys):
    """Run with no study outputs at all (only launcher runs in runs/), the report keeps every
    section and claim it cannot regenerate, and says so (it cut docs/results.md from 733 lines
    to 84, keeping only "not measured yet")."""
    root, md = page
    empty = root / "only_launcher_runs"
    (empty / "two_rooms_distral_klent_2col_a2c").mkdir(parents=True)
    out = root / "docs" / "results.md"
    argv = ["--runs", str(empty), "--out", str(out), "--figures", str(root / "docs" / "results")]
    capsys.readouterr()
    assert report.main(argv) == 0
    printed = capsys.readouterr().out
    assert "0 sections regenerated" in printed and "kept as they were" in printed
    again = out.read_text()
    for title in ("Deep grid world: Distral vs baselines", "Continuous control", "XLand-MiniGrid"):
        section = md.split(f"## {title}\n")[1].split("\n## ")[0]
        assert section in again, title
    claims = md.split("## Claims")[1].split("\n## ")[0]
    assert claims.strip() in again
    assert len(again.splitlines()) == len(md.splitlines())
