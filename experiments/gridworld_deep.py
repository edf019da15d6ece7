"""The paper's comparison of Distral and its A3C baselines, on multitask grid worlds.

For each task design and each of the seven variants, ``--seeds`` independent runs are trained
with the on-device trainer. Variants that share an architecture differ only in traced
hyperparameters (α, the distillation weight, the column weight), so they and all their seeds
run vmapped in ONE compiled program: three programs per design.

Reported per variant: learning curves (mean over tasks and worst task), and the environment
steps (all tasks together) each run needs until the policy's return is at least 90% of the
optimal return on EVERY task — the optimum computed exactly by the tabular solver — for the
sampled and the greedy policy. Median and quartiles over seeds, and the ratios
Distral / a3c, Distral / a3c_multitask, Distral / a3c_2col.

Designs:
  * ``two_rooms``: two rooms joined by a doorway, 8 goals spread over both rooms, random starts.
  * ``corridor``: a winding one-cell corridor with the start at one end and 8 goals at growing
    distances along it. Tasks share the way forward and differ in difficulty: the near goals are
    found quickly, and a distilled policy that has learned "go forward" is what the far tasks
    can exploit (docs/maths.md §1, reward scale and β).

Writes ``runs/gridworld_deep/summary.json`` and PNG plots (``--out`` to change).

    python experiments/gridworld_deep.py                       # defaults: a few minutes on CPU
    python experiments/gridworld_deep.py --designs corridor --variants a3c distral_klent_2col
    python experiments/gridworld_deep.py --checkpoint-dir ckpt/deep   # rerun it to resume
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro

from distral_jax import analysis, cli, presets, sweeps
from distral_jax.checkpoint import CheckpointError
from distral_jax.configs import VARIANTS, TrainConfig
from distral_jax.envs import gridworld

Variant = Literal[tuple(VARIANTS)]  # the preset names, as a type the command line checks
DISTRAL = ("distral_klent_2col", "distral_kl_2col", "distral_klent_1col", "distral_kl_1col")
BASELINES = ("a3c", "a3c_multitask", "a3c_2col")


# Design -> (task family, episode length).
DESIGNS = {
    "two_rooms": (gridworld.two_rooms_design, 50),
    "corridor": (gridworld.corridor_design, 60),
}


def make_design(name: str) -> tuple[gridworld.GridWorld, int]:
    """The task family of a design and its episode length."""
    build, episode_length = DESIGNS[name]
    return build(), episode_length


def run_design(name: str, args: Study) -> dict:
    env, episode_length = make_design(name)
    optimal = np.asarray(env.optimal_returns(episode_length))
    threshold = 0.9 * optimal
    config = args.train.replace(episode_length=episode_length)
    results = sweeps.train_study(
        env,
        config,
        args,
        log=lambda msg: print(f"[{name}] {msg}", flush=True),
        checkpoint_dir=args.persistence.checkpoint_dir
        and Path(args.persistence.checkpoint_dir) / name,
    )

    table: dict[str, dict] = {}
    for v in args.variants:
        r = results[v].curves
        steps = results[v].steps
        table[v] = {
            "steps_to_90_greedy": analysis.summarize_steps(
                analysis.steps_to_threshold(steps, r["greedy"], threshold)
            ),
            "steps_to_90_sampled": analysis.summarize_steps(
                analysis.steps_to_threshold(steps, r["sampled"], threshold)
            ),
            "final_return_mean": float(np.mean(r["greedy"][:, -1])),
            "final_return_worst_task": float(np.median(np.min(r["greedy"][:, -1], axis=-1))),
            "final_pi0_return_mean": float(np.mean(r["pi0_greedy"][:, -1])),
            "training_sps_of_its_program": results[v].sps,
            "compile_time_s": results[v].compile_time_s,
        }
    ratios = {}
    for d in DISTRAL:
        for b in BASELINES:
            if d in table and b in table:
                for mode in ("greedy", "sampled"):
                    key = f"steps_to_90_{mode}"
                    ratios[f"{d}/{b} ({mode})"] = analysis.ratio(table[d][key], table[b][key])

    out_dir = Path(args.out)
    for mode in ("greedy", "sampled"):
        analysis.plot_learning_curves(
            out_dir / f"{name}_curves_{mode}.png",
            results[args.variants[0]].steps,
            {v: results[v].curves[mode] for v in args.variants},
            optimal=optimal,
            title=f"{name} ({mode} policy)",
        )
        analysis.plot_steps_bars(
            out_dir / f"{name}_steps_to_90_{mode}.png",
            {v: table[v][f"steps_to_90_{mode}"] for v in args.variants},
            title=f"{name}: steps to 90% of optimal on every task ({mode})",
        )
    curves = {
        v: {m: np.median(results[v].curves[m], axis=0) for m in ("greedy", "sampled")}
        for v in args.variants
    }
    return {
        "num_tasks": env.num_tasks,
        "episode_length": episode_length,
        "optimal_returns": optimal,
        "threshold": threshold,
        "results": table,
        "ratios": ratios,
        "eval_steps": results[args.variants[0]].steps,
        "median_curves": curves,
    }


def print_table(name: str, design: dict) -> None:
    print(f"\n== {name}: env steps (all tasks) to 90% of optimal on every task, median [q25, q75]")
    print(f"{'variant':22s} {'greedy':>26s} {'sampled':>26s} {'final':>7s} {'worst':>7s}")
    for v, row in design["results"].items():
        cells = []
        for mode in ("greedy", "sampled"):
            s = row[f"steps_to_90_{mode}"]
            if s["median"] is None:
                cells.append(f"never ({s['reached']}/{s['runs']})")
            else:
                cells.append(
                    f"{s['median'] / 1e3:.0f}k [{(s['q25'] or 0) / 1e3:.0f}, "
                    f"{(s['q75'] or float('inf')) / 1e3:.0f}] {s['reached']}/{s['runs']}"
                )
        print(
            f"{v:22s} {cells[0]:>26s} {cells[1]:>26s} {row['final_return_mean']:7.3f} "
            f"{row['final_return_worst_task']:7.3f}"
        )
    for k, r in design["ratios"].items():
        if "greedy" in k and r is not None:
            print(f"  ratio {k}: {r:.2f}")


@dataclasses.dataclass(frozen=True)
class Study:
    """Distral and its baselines on the grid-world designs (flags from these fields)."""

    designs: tuple[Literal["two_rooms", "corridor"], ...] = ("two_rooms", "corridor")
    """task families to study"""
    variants: tuple[Variant, ...] = tuple(VARIANTS)
    """the variants compared"""
    seeds: int = 8
    """runs per variant (vmapped)"""
    train: Annotated[TrainConfig, tyro.conf.OmitArgPrefixes] = presets.grid_worlds()
    """shared by every variant; the variant and the episode length (50 for two_rooms, 60 for
    corridor) are set per run"""
    out: str = "runs/gridworld_deep"
    """output folder (an earlier one is moved aside)"""
    quiet: bool = False
    """no progress bars"""
    persistence: Annotated[cli.Persistence, tyro.conf.OmitArgPrefixes] = cli.Persistence()
    """checkpoints (one folder per design and architecture) and the compilation cache"""

    def __post_init__(self):
        if self.seeds < 1:
            raise ValueError(f"`seeds` must be >= 1, got {self.seeds}")
        cli.check_shared_train(
            self.train,
            episode_length="is set per design (two_rooms 50, corridor 60); it cannot "
            "be changed here",
        )


def main(argv: list[str] | None = None) -> int:
    args = cli.parse(Study, argv)
    args.persistence.apply()
    start = time.perf_counter()
    summary = {"args": cli.to_dict(args), "designs": {}}
    for name in args.designs:
        make_design(name)  # fail fast on a bad name
    analysis.fresh_output_dir(args.out)
    for name in args.designs:
        try:
            summary["designs"][name] = run_design(name, args)
        except CheckpointError as error:
            print(f"gridworld_deep.py: error: {error}", file=sys.stderr)
            return 2
        print_table(name, summary["designs"][name])
    analysis.write_summary(args.out, summary, start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
