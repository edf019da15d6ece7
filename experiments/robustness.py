"""Robustness to hyperparameters: every variant over learning rate × regularisation × seeds.

The paper's second claim is that Distral is more robust to its hyperparameters than its
baselines. Each variant is trained over a grid of learning rates and regularisation strengths:
β for Distral (KL cost α/β, entropy cost (1−α)/β), and for the baselines the entropy cost 1/β of
the same β. At equal β a baseline carries twice the entropy cost of ``distral_klent_*``
(α = 1/2), so every baseline also runs at 2β ("matched entropy", entropy cost 1/(2β), equal to
Distral-klent's) and is reported as a row of its own. Seeds are paired: seed s of every variant
and setting starts from the same environment states and keys (and, within an architecture, the
same networks). Each architecture's variants, settings and seeds train vmapped in ONE compiled
program (``sweeps.train_configs``).

Families:
  * ``two_rooms``, ``corridor``: the grid-world designs (A2C); the bar is 90% of the exact
    optimal return on every task.
  * ``corridor_curriculum``: the corridor's near goals first, the far half entering the
    objective after ``--curriculum-delay`` of the budget (``TrainConfig.task_start_steps``):
    tasks progress out of step, and π_0 can carry what the near tasks learnt to the far ones.
    Also reported: steps after their introduction until the late tasks reach the bar.
  * ``point_mass``: the continuous point-mass goals (PPO); the bar is the scripted go-around
    controller's return on every task.

Per family and variant (``summary.json``, PNG plots): the final score of every setting sorted
(the paper's robustness plot; score = return / optimum, or (return − random) / (scripted −
random)), the fraction of runs and of settings that reach the bar on every task, the env steps
to the bar, and the area under the score curve.

    python experiments/robustness.py --small       # about ten minutes on a 2-core CPU
    python experiments/robustness.py               # the full grid (a GPU, or a long CPU run)
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro

from distral_jax import analysis, cli, presets, sweeps
from distral_jax.configs import VARIANTS, TrainConfig
from distral_jax.envs import gridworld
from distral_jax.envs.point_mass import PointMassGoals

FamilyName = Literal["two_rooms", "corridor", "corridor_curriculum", "point_mass"]
Variant = Literal[tuple(VARIANTS)]
MATCHED = " (matched entropy)"
KLENT_ALPHA = VARIANTS["distral_klent_2col"].alpha

# Per profile: learning rates, β values, seeds, and the fraction of each family's budget.
PROFILES = {
    "tiny": dict(learning_rates=(1e-2,), betas=(100.0,), seeds=2, budget=0.04),
    "small": dict(learning_rates=(3e-3, 1e-2, 3e-2), betas=(30.0, 100.0), seeds=3, budget=0.5),
    "full": dict(
        learning_rates=(1e-3, 3e-3, 1e-2, 3e-2),
        betas=(10.0, 30.0, 100.0, 300.0),
        seeds=8,
        budget=1.0,
    ),
}

# The studies' presets with longer jitted calls and fewer evaluations: a grid of settings
# trains in one program. β and the learning rate are set per setting; the base configs
# (recorded in summary.json) keep TrainConfig's.
GRID = presets.grid_worlds().replace(iterations_per_call=20, eval_every=32_000, eval_envs=4)
POINT_MASS = presets.point_mass_ppo().replace(
    beta=TrainConfig.beta, learning_rate=TrainConfig.learning_rate
)


def make_family(name: str, budget: float, curriculum_delay: float):
    """``(env, base config)`` of a family, its budget scaled by ``budget``."""
    if name == "point_mass":
        env, config = PointMassGoals(num_tasks=4), POINT_MASS
    elif name == "two_rooms":
        env, config = gridworld.two_rooms_design(), GRID.replace(episode_length=50)
    else:
        env, config = gridworld.corridor_design(), GRID.replace(episode_length=60)
    per_call = env.num_tasks * config.num_envs * config.unroll_length * config.iterations_per_call
    calls = max(2, round(budget * config.total_env_steps / per_call))
    config = config.replace(
        total_env_steps=calls * per_call,
        eval_every=per_call * max(1, round(calls * config.eval_every / config.total_env_steps)),
    )
    if name == "corridor_curriculum":
        # The far half of the goals enters the objective after ``curriculum_delay`` of the run.
        late = int(round(curriculum_delay * config.total_env_steps))
        half = env.num_tasks // 2
        config = config.replace(task_start_steps=(0,) * half + (late,) * (env.num_tasks - half))
    return env, config


def settings(variant: str, learning_rates, betas) -> dict[str, list[dict]]:
    """Row name -> its settings; a baseline has a second row at matched entropy (β × 2)."""
    alpha = VARIANTS[variant].alpha
    rows = {variant: [(lr, b) for lr in learning_rates for b in betas]}
    if alpha == 0:
        factor = 1.0 / (1.0 - KLENT_ALPHA)
        rows[variant + MATCHED] = [(lr, b * factor) for lr in learning_rates for b in betas]
    return {
        row: [
            {"learning_rate": lr, "beta": b, "entropy_cost": (1 - alpha) / b, "kl_cost": alpha / b}
            for lr, b in grid
        ]
        for row, grid in rows.items()
    }


def run_family(name: str, args: Study, profile: dict, out: Path) -> dict:
    env, base = make_family(name, profile["budget"], args.curriculum_delay)
    bar = analysis.task_bar(env, base.episode_length)
    rows = {
        row: (variant, grid)
        for variant in args.variants
        for row, grid in settings(variant, profile["learning_rates"], profile["betas"]).items()
    }
    configs = {
        f"{row}|{k}": base.replace(
            variant=variant, learning_rate=s["learning_rate"], beta=s["beta"]
        )
        for row, (variant, grid) in rows.items()
        for k, s in enumerate(grid)
    }
    seeds = profile["seeds"]
    print(f"[{name}] {len(configs)} settings x {seeds} seeds, {base.total_env_steps:,} steps each")
    results = sweeps.train_configs(
        env,
        configs,
        seeds,
        show_progress=not args.quiet,
        log=lambda msg: print(f"[{name}] {msg}", flush=True),
    )
    table = {}
    for row, (_, grid) in rows.items():
        parts = [results[f"{row}|{k}"] for k in range(len(grid))]
        steps = parts[0].steps
        greedy = np.stack([r.curves["greedy"] for r in parts])  # [settings, seeds, E, N]
        table[row] = summarize_row(steps, greedy, grid, bar, base.task_start_steps)
        table[row]["compile_time_s"] = parts[0].compile_time_s
        table[row]["training_sps_of_its_program"] = parts[0].sps
    plot_sorted_scores(out / f"{name}_sorted_final.png", table, bar, name)
    analysis.plot_steps_bars(
        out / f"{name}_steps_to_bar.png",
        {row: t["steps_to_bar"] for row, t in table.items()},
        title=f"{name}: env steps to {bar.describes} on every task, all settings",
    )
    return {
        "num_tasks": env.num_tasks,
        "learner": base.learner,
        "config": cli.to_dict(base),
        "bar": bar.describes,
        "reference_returns": bar.reference,
        "floor_returns": bar.floor,
        "threshold": bar.threshold,
        "eval_steps": steps,
        "task_start_steps": list(base.task_start_steps),
        "variants": table,
    }


def summarize_row(steps, greedy, grid, bar: analysis.TaskBar, task_start_steps) -> dict:
    """Robustness numbers of one row: ``greedy [settings, seeds, E, N]`` returns."""
    num_settings, seeds = greedy.shape[:2]
    runs = greedy.reshape((num_settings * seeds,) + greedy.shape[2:])
    to_bar = analysis.steps_to_threshold(steps, runs, bar.threshold)  # [runs]
    reached = np.isfinite(to_bar).reshape(num_settings, seeds)
    scores = bar.score(runs).mean(axis=-1)  # [runs, E], mean over tasks
    final = scores[:, -1].reshape(num_settings, seeds)
    per_setting = np.median(final, axis=1)
    row = {
        "settings": [
            {**s, "final_score_median": float(per_setting[k]), "reached": int(reached[k].sum())}
            for k, s in enumerate(grid)
        ],
        "sorted_setting_scores": np.sort(per_setting)[::-1],
        "sorted_run_scores": np.sort(final.reshape(-1))[::-1],
        "fraction_of_runs_reaching": float(reached.mean()),
        "fraction_of_settings_reaching": float(np.mean(reached.mean(axis=1) >= 0.5)),
        "steps_to_bar": analysis.summarize_steps(to_bar),
        "area_under_score_curve": analysis.quartiles(analysis.area_under_curve(steps, scores)),
        "runs": int(num_settings * seeds),
    }
    if task_start_steps and max(task_start_steps) > 0:
        starts = np.asarray(task_start_steps)
        late = starts == starts.max()
        late_steps = analysis.steps_to_threshold(steps, runs[..., late], bar.threshold[late])
        row["late_tasks_steps_after_introduction"] = analysis.summarize_steps(
            late_steps - starts.max()
        )
    return row


def plot_sorted_scores(path: Path, table: dict, bar: analysis.TaskBar, title: str) -> None:
    """The paper's robustness plot: each setting's final score, best first, per row."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for row, t in table.items():
        scores = np.asarray(t["sorted_setting_scores"])
        rank = np.linspace(0, 1, scores.size) if scores.size > 1 else np.zeros(1)
        style = "--" if row.endswith(MATCHED) else "-"
        ax.plot(rank, scores, style, marker=".", label=row)
    ax.axhline(bar.fraction, color="k", lw=0.8, ls=":", label=bar.describes)
    ax.set_xlabel("settings, best first (fraction of the grid)")
    ax.set_ylabel("final score, mean over tasks (median over seeds)")
    ax.set_title(f"{title}: final score of every setting")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(name: str, family: dict) -> None:
    print(f"\n== {name} ({family['learner']}): bar = {family['bar']} on every task")
    header = ("variant", "runs", "settings", "steps to bar", "AUC", "best/worst")
    print(
        f"{header[0]:38s} {header[1]:>5s} {header[2]:>8s} {header[3]:>18s} {header[4]:>5s}  "
        f"{header[5]}"
    )
    for row, t in family["variants"].items():
        s = t["steps_to_bar"]
        steps = "never" if s["median"] is None else f"{s['median'] / 1e3:.0f}k"
        steps = f"{steps} {s['reached']}/{s['runs']}"
        scores = t["sorted_setting_scores"]
        print(
            f"{row:38s} {t['fraction_of_runs_reaching']:5.2f} "
            f"{t['fraction_of_settings_reaching']:8.2f} {steps:>18s} "
            f"{t['area_under_score_curve']['median']:5.2f}  {scores[0]:.2f}/{scores[-1]:.2f}"
        )


@dataclasses.dataclass(frozen=True)
class Study:
    """Every variant over learning rate × regularisation strength × paired seeds."""

    families: tuple[FamilyName, ...] = (
        "two_rooms",
        "corridor",
        "corridor_curriculum",
        "point_mass",
    )
    """task families (grid worlds with A2C, the point mass with PPO)"""
    variants: tuple[Variant, ...] = tuple(VARIANTS)
    """the variants compared"""
    size: Annotated[cli.StudySize, tyro.conf.OmitArgPrefixes] = cli.StudySize()
    """--tiny, --small (about ten minutes on a 2-core CPU) or --profile"""
    learning_rates: tuple[float, ...] = ()
    """learning rates of the grid (default: the profile's)"""
    betas: tuple[float, ...] = ()
    """β values of the grid (default: the profile's); baselines also run at 2β"""
    seeds: int = 0
    """paired runs per setting (default: the profile's)"""
    curriculum_delay: float = 0.25
    """corridor_curriculum: the fraction of the budget after which the far goals start"""
    out: str = ""
    """output folder (default: runs/robustness/<profile>; an earlier one is moved aside)"""
    quiet: bool = False
    """no progress bars"""

    def __post_init__(self):
        if self.seeds < 0:
            raise ValueError(f"`seeds` must be >= 1 (0: the profile's), got {self.seeds}")
        if any(lr <= 0 for lr in self.learning_rates) or any(b <= 0 for b in self.betas):
            raise ValueError("`learning_rates` and `betas` must be > 0")
        if not 0 <= self.curriculum_delay < 1:
            raise ValueError(f"`curriculum_delay` must be in [0, 1), got {self.curriculum_delay}")

    def resolved_profile(self) -> tuple[str, dict]:
        return self.size.resolve(
            PROFILES, learning_rates=self.learning_rates, betas=self.betas, seeds=self.seeds
        )


def main(argv: list[str] | None = None) -> int:
    args = cli.parse(Study, argv)
    cli.enable_compilation_cache()
    name, profile = args.resolved_profile()
    out = analysis.fresh_output_dir(args.out or f"runs/robustness/{name}")
    analysis.run_families(
        args.families,
        lambda family: run_family(family, args, profile, out),
        print_table,
        out,
        {"args": cli.to_dict(args), "profile": name, "grid": profile},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
