"""Distral vs its baselines on a multitask XLand-MiniGrid family, with recurrent policies.

    python experiments/minigrid_multitask.py --small              # CPU, about ten minutes
    python experiments/minigrid_multitask.py                      # sized for one GPU
    python experiments/minigrid_multitask.py --small --core mlp   # feed-forward, to compare
    python experiments/minigrid_multitask.py --variants distral_klent_2col a3c --num-tasks 8
    python experiments/minigrid_multitask.py --checkpoint-dir ckpt/minigrid   # rerun to resume

The tasks are generated XLand rulesets in one grid world ("hold the yellow key", "go next to
the brown square", ...): the agent sees a small egocentric window, so every task needs the same
search of the room and differs only in the object to find and what to do with it — the shared
behaviour that Distral's distilled policy π_0 can carry from task to task. Policies are
recurrent (``--core lstm`` by default) since one window does not show the whole room.

For each variant (default: Distral's 2-column and 1-column variants and the baselines ``a3c``,
``a3c_2col`` and ``a3c_multitask``) and seed, trains on the family's tasks, then writes to
``--out`` (default ``runs/minigrid_multitask/<env id>-<core>/``):

  * ``curves.png``: per-task learning curves of every variant (median over seeds, sampled
    policy), π_0's own return for the Distral variants, and the threshold;
  * ``curves_mean_worst.png``: mean over tasks and worst task, with interquartile bands;
  * ``summary.json``: per variant the return per task at the start and at the end (sampled and
    greedy, π_i and π_0), the env steps until the return reaches ``--threshold`` on every task
    (median and quartiles over seeds), env steps per second and compile time;
  * ``rollout_task<i>.png``: a strip of frames of the first Distral variant's greedy policy
    (seed 0) in one episode of task i.

xminigrid pays ``1 - 0.9 * t / max_steps`` for reaching the goal at step t and nothing
otherwise, so a return of 0.5 means, e.g., solving every episode in about half the time limit.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

import jax
import numpy as np
import tyro

from distral_jax import acting, analysis, cli, sweeps
from distral_jax.checkpoint import CheckpointError
from distral_jax.configs import VARIANTS, TrainConfig
from distral_jax.envs.base import State
from distral_jax.envs.xminigrid_tasks import XLandMiniGridFamily
from distral_jax.networks import make_networks

Variant = Literal[tuple(VARIANTS)]
ALL_VARIANTS = ("distral_klent_2col", "distral_klent_1col", "a3c", "a3c_2col", "a3c_multitask")

# What every profile shares: A2C with an LSTM core over 20-step unrolls. The goal pays at most
# 1 once per episode, while the baselines' entropy bonus pays about log(6) / β every step: with
# β = 100 that is ~0.6 over the discounted horizon, and a3c did not learn the small profile's
# tasks at all (Distral, which pays half of it, did). β = 1000 let both learn. A step size of
# 3e-3 learned there; 1e-3 was far slower.
_A2C = TrainConfig(
    beta=1000.0, gamma=0.97, lambda_=0.95, core="lstm", unroll_length=20, learning_rate=3e-3
)


@dataclasses.dataclass(frozen=True)
class Study:
    """Distral vs its baselines on XLand-MiniGrid rulesets (flags from these fields).

    The profile (``gpu`` by default, ``small`` with ``--small``, ``tiny`` with ``--tiny``) sets
    the defaults of every flag; flags given override it.
    """

    env_id: str = "XLand-MiniGrid-R1-9x9"
    """the xminigrid world (an XLand-MiniGrid-* id: tasks are generated rulesets)"""
    num_tasks: int = 8
    """rulesets"""
    task_seed: int = 0
    """seed of the ruleset generator"""
    num_rules: int = 0
    """production rules chained before each goal"""
    num_distractors: int = 2
    """objects placed that the goal does not need"""
    max_steps: int | None = None
    """time limit of an episode, also the training episode length (default: xminigrid's)"""
    variants: tuple[Variant, ...] = ALL_VARIANTS
    """the variants compared"""
    small: bool = False
    """the CPU profile (about ten minutes): same as --profile small"""
    tiny: bool = False
    """a smoke test of a minute, mostly compilation: same as --profile tiny"""
    profile: Literal["gpu", "small", "tiny"] | None = None
    """sizes and budget (default: small with --small, tiny with --tiny, else gpu)"""
    seeds: int = 3
    """runs per variant (vmapped)"""
    train: Annotated[TrainConfig, tyro.conf.OmitArgPrefixes] = _A2C
    """the configuration shared by every variant; the episode length is --max-steps"""
    threshold: float = 0.5
    """return that every task must reach (sampled policy) to count as learned"""
    strip_frames: int = 12
    """frames per rollout picture (every k-th step of the episode, and its last)"""
    tile_size: int = 24
    """pixels per grid cell in the rollout pictures"""
    out: str = ""
    """output folder (default: runs/minigrid_multitask/<env id>-<core>; an earlier one is moved
    aside)"""
    quiet: bool = False
    """no progress bars"""
    persistence: Annotated[cli.Persistence, tyro.conf.OmitArgPrefixes] = cli.Persistence()
    """checkpoints (one folder per architecture) and the compilation cache"""

    def __post_init__(self):
        if self.seeds < 1:
            raise ValueError(f"`seeds` must be >= 1, got {self.seeds}")
        if self.strip_frames < 2:
            raise ValueError(f"`strip_frames` must be >= 2, got {self.strip_frames}")
        cli.check_shared_train(
            self.train, episode_length="is the family's time limit here: set it with --max-steps"
        )


# Each profile's training sizes over _A2C, one row each so that they read side by side.
_SIZE_FIELDS = (
    "num_envs",
    "unroll_length",
    "total_env_steps",
    "eval_every",
    "eval_envs",
    "hidden_sizes",
    "iterations_per_call",
)
# fmt: off
_TRAIN = cli.config_table(_A2C, _SIZE_FIELDS, {
    #        envs unroll  env steps    eval every  eval envs  hidden  updates per call
    "gpu":   (512, 20,    100_000_000, 5_000_000,  64,        (128,), 20),
    "small": (16,  20,    179_200,     25_600,     32,        (32,),  20),
    "tiny":  (2,   4,     64,          32,         2,         (8,),   2),
})
# fmt: on

# Profile -> the study's defaults. Flags override any field.
PROFILES: dict[str, Study] = {
    # One GPU: thousands of environments per update, xminigrid's own time limit (243 steps).
    "gpu": Study(num_tasks=8, seeds=3, train=_TRAIN["gpu"], threshold=0.6),
    # A 2-core CPU: short episodes, few environments, one seed; about ten minutes in all.
    "small": Study(num_tasks=4, max_steps=40, seeds=1, train=_TRAIN["small"], threshold=0.4),
    # The CI smoke test: one variant, a few updates; compilation is nearly all of it.
    "tiny": Study(
        num_tasks=2,
        max_steps=12,
        variants=("distral_klent_2col",),
        seeds=1,
        train=_TRAIN["tiny"],
        strip_frames=4,
        tile_size=8,
    ),
}


def profile_defaults(argv: list[str]) -> Study:
    """The study's defaults for the profile that ``--small``/``--tiny``/``--profile`` pick."""
    name = cli.chosen_profile(argv, PROFILES, shortcuts=("small", "tiny")) or "gpu"
    return dataclasses.replace(PROFILES[name], profile=name)


def make_family(args: Study) -> XLandMiniGridFamily:
    """The study's task family (``num_tasks`` generated rulesets in ``env_id``)."""
    return XLandMiniGridFamily(
        args.env_id,
        num_tasks=args.num_tasks,
        task_seed=args.task_seed,
        num_rules=args.num_rules,
        num_distractors=args.num_distractors,
        max_steps=args.max_steps,
    )


def frame_indices(length: int, max_frames: int) -> list[int]:
    """Every k-th step of an episode of ``length`` steps, its last step included, at most
    ``max_frames`` of them."""
    stride = max(1, math.ceil((length - 1) / (max_frames - 1)))
    picks = list(range(0, length - 1, stride))[: max_frames - 1]
    return picks + [length - 1]


def write_rollout_strips(
    env: XLandMiniGridFamily,
    policy,
    policy_state,
    out: Path,
    key: jax.Array,
    max_frames: int,
    tile_size: int,
    label: str,
) -> list[dict]:
    """One greedy episode per task, drawn as a row of frames in ``rollout_task<i>.png``.

    Args:
      env: the family.
      policy: the greedy policy, recurrent (``policy_state`` given) or not.
      policy_state: the recurrent policy's state at the start, ``[N, 1]``; ``None`` otherwise.
      out: the output folder.
      key: PRNG key of the episodes' resets.
      max_frames, tile_size: frames per strip, pixels per cell.
      label: who acts, for the titles.
    Returns:
      Per task: file name, return, episode length and the steps drawn.
    """
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    steps = env.episode_length
    run = lambda k: acting.run_episodes(
        env, policy, env.tasks(), k, 1, steps, record=True, policy_state=policy_state
    )
    episodes = jax.device_get(jax.jit(run)(key))
    rows = []
    for i in range(env.num_tasks):
        ended = np.flatnonzero(episodes.done[:, i, 0] > 0)
        length = int(ended[0]) + 1 if ended.size else steps
        picks = frame_indices(length, max_frames)
        fig, axes = plt.subplots(1, len(picks), figsize=(1.6 * len(picks), 2.2), squeeze=False)
        for ax, t in zip(axes[0], picks, strict=True):
            grid_state = jax.tree_util.tree_map(lambda x, t=t: x[t, i, 0], episodes.pipeline_states)
            # render_rgb reads a family State; the recorded states are its pipeline_state.
            state = State(pipeline_state=grid_state, obs=np.zeros(()), reward=0.0, done=0.0)
            ax.imshow(env.render_rgb(state, tile_size=tile_size))
            ax.set_title(f"step {t + 1}", fontsize=7)
            ax.axis("off")
        ret = float(episodes.returns[i, 0])
        fig.suptitle(
            f"task {i}: {env.describe_task(i)} — {label}, return {ret:.2f} in {length} steps",
            fontsize=8,
        )
        fig.tight_layout()
        name = f"rollout_task{i}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        rows.append({"file": name, "return": ret, "length": length, "steps_drawn": picks})
    return rows


def summarize(results: dict[str, sweeps.VariantResult], threshold: float) -> dict[str, dict]:
    """Per variant: start and end returns per task, steps to the threshold, speed."""
    table = {}
    for name, r in results.items():
        med = lambda key, e: np.median(r.curves[key][:, e], axis=0)
        bar = np.full(r.curves["sampled"].shape[-1], threshold)
        table[name] = {
            "initial_return_sampled": med("sampled", 0),
            "final_return_sampled": med("sampled", -1),
            "final_return_greedy": med("greedy", -1),
            "final_pi0_return_sampled": med("pi0_sampled", -1),
            "final_pi0_return_greedy": med("pi0_greedy", -1),
            "final_return_mean_sampled": float(np.mean(med("sampled", -1))),
            "steps_to_threshold_sampled": analysis.summarize_steps(
                analysis.steps_to_threshold(r.steps, r.curves["sampled"], bar)
            ),
            "steps_to_threshold_greedy": analysis.summarize_steps(
                analysis.steps_to_threshold(r.steps, r.curves["greedy"], bar)
            ),
            "training_sps_of_its_program": r.sps,
            "compile_time_s": r.compile_time_s,
            "wall_s": r.wall_s,
            "eval_steps": r.steps,
            "median_curve_sampled": np.median(r.curves["sampled"], axis=0),
            "median_curve_pi0_sampled": np.median(r.curves["pi0_sampled"], axis=0),
        }
    return table


def print_table(table: dict[str, dict], threshold: float) -> None:
    print(f"\n{'variant':20s} {'return per task: start -> end (sampled)':48s} steps to {threshold}")
    for name, row in table.items():
        start = np.round(np.asarray(row["initial_return_sampled"], float), 2).tolist()
        end = np.round(np.asarray(row["final_return_sampled"], float), 2).tolist()
        s = row["steps_to_threshold_sampled"]
        reached = "never" if s["median"] is None else f"{s['median']:,.0f}"
        print(
            f"{name:20s} {str(start):>22s} -> {str(end):22s} {reached} ({s['reached']}/"
            f"{s['runs']}) | {row['training_sps_of_its_program']:,.0f} steps/s | compile "
            f"{row['compile_time_s']:.0f}s"
        )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = cli.parse(Study, argv, default=profile_defaults(argv))
    args.persistence.apply()
    start = time.perf_counter()
    try:
        env = make_family(args)
    except ValueError as error:
        print(f"minigrid_multitask.py: error: {error}", file=sys.stderr)
        return 2
    config = args.train.replace(episode_length=env.episode_length)
    out = analysis.fresh_output_dir(
        args.out or f"runs/minigrid_multitask/{args.env_id}-{config.core}"
    )
    titles = [env.describe_task(i) for i in range(env.num_tasks)]
    print(
        f"{args.env_id}: {env.num_tasks} tasks, view {env.observation_shape}, episodes of "
        f"{env.episode_length} steps, core {config.core}, {jax.devices()[0].device_kind}",
        flush=True,
    )
    for i, title in enumerate(titles):
        print(f"  task {i}: {title}")
    try:
        results = sweeps.train_study(env, config, args)
    except CheckpointError as error:
        print(f"minigrid_multitask.py: error: {error}", file=sys.stderr)
        return 2

    analysis.plot_variants_per_task(
        out / "curves.png",
        results,
        [f"task {i}: {t}" for i, t in enumerate(titles)],
        with_prior=[v for v in results if VARIANTS[v].distill],
        bar=args.threshold,
        ylim=(-0.02, 1.0),
    )
    analysis.plot_learning_curves(
        out / "curves_mean_worst.png",
        results[args.variants[0]].steps,
        {name: r.curves["sampled"] for name, r in results.items()},
        title=f"{args.env_id} ({config.core})",
    )
    table = summarize(results, args.threshold)
    print_table(table, args.threshold)

    # The pictures: the first Distral variant's greedy policy (else the first variant's).
    shown = next((v for v in args.variants if VARIANTS[v].distill), args.variants[0])
    networks = make_networks(env, config.replace(variant=shown))
    params = jax.tree_util.tree_map(lambda x: x[0], results[shown].policy_params)
    policy = acting.make_policy(networks, params, deterministic=True)
    start_state = networks.initial_state((env.num_tasks, 1)) if networks.recurrent else None
    rollouts = write_rollout_strips(
        env,
        policy,
        start_state,
        out,
        jax.random.PRNGKey(config.seed + 1),
        args.strip_frames,
        args.tile_size,
        f"{shown} greedy",
    )

    summary = {
        "args": cli.to_dict(args),
        "config": cli.to_dict(config),
        "device": jax.devices()[0].device_kind,
        "tasks": titles,
        "threshold": args.threshold,
        "threshold_means": (
            "steps_to_threshold: first evaluation at which the return is >= threshold on every "
            "task, per seed; median and quartiles over seeds"
        ),
        "variants": table,
        "rollouts": {"variant": shown, "mode": "greedy", "seed": 0, "tasks": rollouts},
    }
    analysis.write_summary(out, summary, start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
