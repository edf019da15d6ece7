"""Transfer: does the distilled π_0 help to learn new tasks?

The paper's third claim is that π_0 distils behaviour shared by the tasks, so that it transfers.
Per family, the tasks are split at random into N training tasks and M held-out ones
(``wrappers.split_tasks``: new goals). Phase 1 trains ``distral_klent_2col`` and
``a3c_multitask`` on the N tasks. Phase 2 learns the M held-out tasks, with the same budget and
paired seeds (seed s of every method starts from phase 1's seed s and from the same environment
states), by:

  * ``scratch``: independent learners from scratch (``a3c``);
  * ``prior_kl``: task networks from scratch, regularised towards the trained π_0, frozen
    (``distral_klent_1col`` with ``freeze_prior``: KL cost α/β, entropy cost (1−α)/β);
  * ``prior_2col``: the 2-column policy α h_θ0 + f_θi with the trained h_θ0 frozen and new
    columns f_θi (``distral_klent_2col`` with ``freeze_prior``);
  * ``finetune_multitask``: the trained ``a3c_multitask`` network, fine-tuned (a held-out task
    is shown its own, never trained, task id);
  * ``finetune_distral``: the trained 2-column Distral network, h_θ0 trainable and distilled
    anew on the held-out tasks, new columns f_θi.

Reported: env steps (held-out tasks together) until the greedy policies reach the bar on every
held-out task (90% of the optimum in grid worlds, the scripted controller's return on the point
mass), median and quartiles over seeds (0: already at the bar before any update), and the
ratios frozen-prior / scratch and frozen-prior / fine-tune: ratio of medians, and quartiles of
the per-seed (paired) ratios. Ratios count one evaluation interval more than the steps, so that
a zero-shot solution (0 steps) keeps them defined.

The point mass runs without observation normalisation here: a frozen π_0 must see its inputs
as it was trained on them, and the running statistics would drift under it.

    python experiments/transfer.py --small       # about ten minutes on a 2-core CPU
    python experiments/transfer.py               # more seeds and a larger budget
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro

from distral_jax import analysis, cli, presets, sweeps
from distral_jax.configs import TrainConfig
from distral_jax.envs import gridworld
from distral_jax.envs.point_mass import PointMassGoals
from distral_jax.envs.wrappers import split_tasks
from distral_jax.train import train

FamilyName = Literal["corridor", "two_rooms", "point_mass"]
Method = Literal["scratch", "prior_kl", "prior_2col", "finetune_multitask", "finetune_distral"]
TEACHERS = ("distral_klent_2col", "a3c_multitask")

# Method -> (variant, frozen prior, what phase 1 gives it: "prior", "network" or nothing).
METHODS = {
    "scratch": ("a3c", False, None),
    "prior_kl": ("distral_klent_1col", True, "prior"),
    "prior_2col": ("distral_klent_2col", True, "prior"),
    "finetune_multitask": ("a3c_multitask", False, "network"),
    "finetune_distral": ("distral_klent_2col", False, "prior"),
}
assert set(METHODS) == set(Method.__args__)
PRIORS = ("prior_kl", "prior_2col")
BASELINES = ("scratch", "finetune_multitask", "finetune_distral")

# Per profile: seeds, and the budgets of phase 1 and phase 2 as fractions of the base configs'
# (whose budgets are for 8 tasks; both phases keep the budget per task).
PROFILES = {
    "tiny": dict(seeds=2, budget=0.05, heldout_budget=0.05),
    "small": dict(seeds=8, budget=0.5, heldout_budget=1.0),
    "full": dict(seeds=16, budget=1.0, heldout_budget=2.0),
}
# Short jitted calls: evaluations (at whole calls) must resolve the held-out tasks' progress.
GRID = presets.grid_worlds()
# No observation normalisation: a frozen π_0 must see its inputs as it was trained on them.
POINT_MASS = presets.point_mass_ppo().replace(
    normalize_observations=False, iterations_per_call=5, eval_every=12_800
)


def make_family(name: str):
    """``(family of N + M tasks, base config, M)``."""
    if name == "point_mass":
        return PointMassGoals(num_tasks=12), POINT_MASS, 4
    if name == "two_rooms":
        return gridworld.two_rooms_design(num_tasks=12), GRID.replace(episode_length=50), 4
    return gridworld.corridor_design(num_tasks=12), GRID.replace(episode_length=60), 4


def scaled(config: TrainConfig, num_tasks: int, budget: float) -> TrainConfig:
    """``config`` with its budget per task scaled by ``budget`` (whole jitted calls)."""
    per_call = num_tasks * config.num_envs * config.unroll_length * config.iterations_per_call
    per_task_budget = budget * config.total_env_steps / 8  # the base budgets are for 8 tasks
    calls = max(2, round(per_task_budget * num_tasks / per_call))
    eval_calls = max(1, round(config.eval_every / 8 * num_tasks / per_call))
    return config.replace(total_env_steps=calls * per_call, eval_every=eval_calls * per_call)


def run_family(name: str, args: Study, profile: dict, out: Path) -> dict:
    family, base, num_test = make_family(name)
    trained_on, held_out = split_tasks(family, num_test, seed=args.split_seed)
    seeds = profile["seeds"]
    log = lambda msg: print(f"[{name}] {msg}", flush=True)

    phase1 = scaled(base, trained_on.num_tasks, profile["budget"])
    needed = [t for t in TEACHERS if any(teacher_of(m) == t for m in args.methods)]
    log(f"phase 1: {', '.join(needed)} on tasks {trained_on.task_ids.tolist()}, {seeds} seeds")
    teachers = sweeps.train_variants(
        trained_on, phase1, needed, seeds, show_progress=not args.quiet, log=log
    )
    family_bar = analysis.task_bar(family, base.episode_length)  # computed once for both sets
    bar = family_bar.of_tasks(held_out.task_ids)
    phase2 = scaled(base, held_out.num_tasks, profile["heldout_budget"])
    phase2 = phase2.replace(seed=base.seed + 1)
    keys = sweeps.paired_keys(phase2.seed, seeds, 1)
    steps_to_bar, curves = {}, {}
    for method in args.methods:
        variant, frozen, start = METHODS[method]
        log(f"phase 2: {method} on held-out tasks {held_out.task_ids.tolist()}")
        trained = teachers[teacher_of(method)].policy_params.params if start else None
        history = []
        train(
            held_out,
            phase2.replace(variant=variant, freeze_prior=frozen),
            num_runs=seeds,
            keys=keys,
            initial_params=starting_point(start, trained),
            progress_fn=lambda step, m, h=history: h.append((step, m)),
            show_progress=not args.quiet,
        )
        steps = np.array([s for s, _ in history])
        greedy = np.stack(
            [np.asarray(m["eval/episode_return_greedy"]).reshape(seeds, -1) for _, m in history],
            axis=1,
        )
        curves[method] = greedy
        steps_to_bar[method] = analysis.steps_to_threshold(steps, greedy, bar.threshold)

    table = {m: analysis.summarize_steps(steps_to_bar[m]) for m in args.methods}
    # Ratios count the steps up to and including the first evaluation at the bar (steps + one
    # evaluation interval): a task solved zero-shot, at the evaluation before any update,
    # counts one interval instead of 0, so that ratios stay defined.
    interval = float(steps[1] - steps[0])
    counted = {m: steps_to_bar[m] + interval for m in args.methods}
    ratios = {
        f"{p}/{b}": {
            "ratio_of_medians": analysis.ratio(
                analysis.summarize_steps(counted[p]), analysis.summarize_steps(counted[b])
            ),
            "per_seed": paired_ratio_quartiles(counted[p], counted[b]),
        }
        for p in PRIORS
        for b in BASELINES
        if p in table and b in table
    }
    analysis.plot_learning_curves(
        out / f"{name}_heldout_curves.png",
        steps,
        curves,
        optimal=bar.threshold / bar.fraction if bar.fraction else None,
        title=f"{name}: held-out tasks (greedy)",
    )
    analysis.plot_steps_bars(
        out / f"{name}_steps_to_bar.png",
        table,
        title=f"{name}: env steps to {bar.describes} on every held-out task",
    )
    teacher_bar = family_bar.of_tasks(trained_on.task_ids)
    return {
        "seeds": seeds,
        "trained_on": trained_on.task_ids,
        "held_out": held_out.task_ids,
        "phase1_config": cli.to_dict(phase1),
        "phase2_config": cli.to_dict(phase2),
        "bar": bar.describes,
        "threshold": bar.threshold,
        "phase1_final_score": {
            t: analysis.quartiles(teacher_bar.score(r.curves["greedy"][:, -1]).mean(axis=-1))
            for t, r in teachers.items()
        },
        "steps_to_bar": table,
        "ratios": ratios,
        "ratios_count": f"env steps to the bar + one evaluation interval ({interval:,.0f})",
        "eval_steps": steps,
        "median_curves": {m: np.median(c, axis=0) for m, c in curves.items()},
    }


def teacher_of(method: str) -> str | None:
    """The phase-1 variant a method starts from (None: from scratch)."""
    start = METHODS[method][2]
    return None if start is None else "a3c_multitask" if start == "network" else TEACHERS[0]


def starting_point(start: str | None, trained):
    """``initial_params`` of a phase-2 method from a teacher's parameters ``[seeds, ...]``."""
    if start is None:
        return None
    if start == "prior":
        return lambda fresh: fresh.replace(prior=trained.prior)
    return lambda fresh: trained  # the whole multitask network (shapes checked by ``train``)


def paired_ratio_quartiles(a: np.ndarray, b: np.ndarray) -> dict:
    """Quartiles over seeds of ``a_s / b_s`` (paired seeds): a seed where only ``a`` never
    reached the bar counts as ∞ (``None``), where only ``b`` never did as 0; seeds where
    neither did are left out."""
    both_never = ~np.isfinite(a) & ~np.isfinite(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(np.isfinite(b), a / b, 0.0)[~both_never]
    return analysis.summarize_steps(r)


def print_table(name: str, family: dict) -> None:
    print(f"\n== {name}: env steps to {family['bar']} on every held-out task (greedy)")
    for method, s in family["steps_to_bar"].items():
        print(f"{method:20s} {analysis.format_steps(s)}")
    for pair, r in family["ratios"].items():
        print(f"  {pair:32s} {format_ratio(r)}")


def format_ratio(r: dict) -> str:
    """A ratio entry as text, e.g. "ratio of medians 0.52; per seed 0.50 [0.31, 0.80] (8 seeds)";
    n/a where undefined (a median never reached), ∞ where the prior's run never got there."""
    q = r["per_seed"]
    if q["runs"] == 0:
        return "n/a (neither reached the bar on any seed)"
    fmt = lambda x: "∞" if x is None else f"{x:.2f}"
    medians = "n/a" if r["ratio_of_medians"] is None else f"{r['ratio_of_medians']:.2f}"
    return (
        f"ratio of medians {medians}; per seed {fmt(q['median'])} [{fmt(q['q25'])}, "
        f"{fmt(q['q75'])}] ({q['runs']} seeds)"
    )


@dataclasses.dataclass(frozen=True)
class Study:
    """Train on N tasks, then learn M held-out tasks with and without the distilled π_0."""

    families: tuple[FamilyName, ...] = ("corridor", "two_rooms", "point_mass")
    """task families (grid worlds with A2C, the point mass with PPO)"""
    size: Annotated[cli.StudySize, tyro.conf.OmitArgPrefixes] = cli.StudySize()
    """--tiny, --small (about ten minutes on a 2-core CPU) or --profile"""
    seeds: int = 0
    """paired runs per method (default: the profile's)"""
    methods: tuple[Method, ...] = tuple(METHODS)
    """phase-2 methods compared (each is one compiled program)"""
    split_seed: int = 0
    """which tasks are held out"""
    out: str = ""
    """output folder (default: runs/transfer/<profile>; an earlier one is moved aside)"""
    quiet: bool = False
    """no progress bars"""

    def __post_init__(self):
        if self.seeds < 0:
            raise ValueError(f"`seeds` must be >= 1 (0: the profile's), got {self.seeds}")

    def resolved_profile(self) -> tuple[str, dict]:
        return self.size.resolve(PROFILES, seeds=self.seeds)


def main(argv: list[str] | None = None) -> int:
    args = cli.parse(Study, argv)
    cli.enable_compilation_cache()
    name, profile = args.resolved_profile()
    out = analysis.fresh_output_dir(args.out or f"runs/transfer/{name}")
    analysis.run_families(
        args.families,
        lambda family: run_family(family, args, profile, out),
        print_table,
        out,
        {"args": cli.to_dict(args), "profile": name},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
