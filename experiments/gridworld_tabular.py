"""The paper's grid-world study with tabular Distral (Teh et al. 2017, §4.1, Figure 2).

1. Exact Distral (float64): alternate soft value iteration and distillation; plot the
   distilled policy π0 (greedy arrows over an entropy heatmap) next to a few task policies,
   and the joint objective over the half-steps (it never decreases).
2. Sample-based tabular learning, several seeds vmapped: Distral vs independent soft
   Q-learning (α = 0) vs one shared soft-Q table, plus independent soft-Q at β / (1 − α),
   whose entropy weight c_Ent = (1 − α)/β equals Distral's (at equal β Distral has less
   entropy regularisation, which alone speeds it up). Reported: the environment steps (all
   tasks together) before the greedy policies reach 90% of the optimal return, averaged over
   tasks ("mean") and on every task ("worst"), median over seeds (a seed that never gets
   there counts as infinite; the median is null when half of them never do).

Writes ``policies.png``, ``learning_curves.png`` and ``summary.json`` under ``--out``.

    python experiments/gridworld_tabular.py                # two rooms, 8 goals in the far room
    python experiments/gridworld_tabular.py --layout four_rooms --goal-rooms all
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Literal

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

from distral_jax import analysis, cli, tabular
from distral_jax.envs.gridworld import ACTION_DELTAS, GridWorld, get_layout, spread_goals
from distral_jax.learners.soft_q import METHODS, sampled_distral

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

THRESHOLD = 0.9


@dataclasses.dataclass(frozen=True)
class Study:
    """Exact and sample-based tabular Distral on a grid world (flags from these fields)."""

    layout: Literal["two_rooms", "four_rooms"] = "two_rooms"
    """the map"""
    num_tasks: int = 8
    """goals, one per task"""
    goal_rooms: Literal["far", "all"] = "far"
    """far: every room but the first; all: every room"""
    alpha: float = 0.5
    """α = c_KL / (c_KL + c_Ent)"""
    beta: float = 100.0
    """β = 1 / (c_KL + c_Ent)"""
    gamma: float = 0.95
    """discount"""
    slip: float = 0.0
    """probability of a uniformly random action"""
    seeds: int = 8
    """sampled runs per method (vmapped)"""
    rounds: int = 30
    """exact Distral alternations"""
    num_updates: int = 1000
    """sampled: table updates per run"""
    num_envs: int = 2
    """sampled: environments per task"""
    rollout_length: int = 10
    """sampled: steps per environment per update"""
    episode_length: int = 50
    """time limit, also the horizon of the exact returns"""
    learning_rate: float = 0.5
    """sampled: step size of the soft-Q tables"""
    compilation_cache: bool = True
    """reuse compiled programs across launches (JAX's persistent cache; see --help of
    experiments/train.py). No checkpoints: the whole study takes under a minute"""
    eval_every: int = 5
    """sampled: updates between evaluations"""
    out: str = "runs/gridworld_tabular"
    """output folder (an earlier one is moved aside)"""


def entropy(log_p: np.ndarray) -> np.ndarray:
    return -(np.exp(log_p) * log_p).sum(-1)


def draw_policy(ax, env: GridWorld, log_p: np.ndarray, background=None, goal=None, title=""):
    """Greedy arrows (length ∝ probability of the greedy action) over a per-cell heatmap."""
    lay = env.layout
    grid = np.full(lay.shape, np.nan)
    if background is not None:
        grid[lay.free] = background
    else:
        grid[lay.free] = 0.0
    cmap = matplotlib.colormaps["viridis" if background is not None else "Greys"].copy()
    cmap.set_bad("0.25")
    vmax = np.log(4) if background is not None else 1.0
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=vmax)
    p = np.exp(log_p)
    best = p.argmax(-1)
    length = 0.8 * p.max(-1)
    rows, cols = lay.cell_rc[:, 0], lay.cell_rc[:, 1]
    keep = np.ones(lay.num_cells, bool) if goal is None else np.arange(lay.num_cells) != goal
    d = ACTION_DELTAS[best] * length[:, None]
    ax.quiver(
        cols[keep] - d[keep, 1] / 2, rows[keep] - d[keep, 0] / 2, d[keep, 1], d[keep, 0],
        angles="xy", scale_units="xy", scale=1.0, color="white" if background is not None
        else "tab:blue", width=0.012, headwidth=3.5,
    )  # fmt: skip
    if goal is not None:
        r, c = lay.cell_rc[goal]
        ax.plot(c, r, marker="*", color="tab:red", markersize=14)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    return im


def main(argv=None) -> dict:
    args = cli.parse(Study, argv)
    if args.compilation_cache:
        cli.enable_compilation_cache()
    analysis.fresh_output_dir(args.out)
    t_start = time.perf_counter()

    layout = get_layout(args.layout)
    rooms = None if args.goal_rooms == "all" else list(range(1, layout.num_rooms))
    if args.goal_rooms not in ("far", "all") or rooms == []:
        raise ValueError(f"--goal-rooms: 'far' (needs 2+ rooms) or 'all', got {args.goal_rooms!r}")
    goals = spread_goals(layout, args.num_tasks, rooms=rooms)
    env = GridWorld(args.layout, goals=goals, slip=args.slip)
    lay = env.layout
    print(
        f"[setup] {lay.name}: {lay.num_cells} cells, {lay.num_rooms} rooms, {env.num_tasks} tasks"
    )

    # ------------------------------------------------------------------ exact Distral
    t0 = time.perf_counter()
    with jax.enable_x64(True):
        P, R, d0, terminal = env.tabular_model()
        exact = tabular.distral(P, R, d0, args.alpha, args.beta, args.gamma, args.rounds)
        pi = jnp.exp(exact.log_pi)
        occ = jax.vmap(tabular.discounted_occupancy, (0, 0, 0, None))(P, pi, d0, args.gamma)
        occ = np.asarray(jnp.where(terminal, 0.0, occ).sum(0))
        greedy = jax.nn.one_hot(exact.log_pi.argmax(-1), 4)
        exact_greedy_returns = np.asarray(env.policy_returns(greedy, args.episode_length))
        optimal = np.asarray(env.optimal_returns(args.episode_length))
        exact = jax.tree_util.tree_map(np.asarray, exact)
    joint = exact.objective_history.sum(-1)
    h0 = entropy(exact.log_pi0)
    room_entropy = {}
    for r in range(lay.num_rooms):
        m = lay.room == r
        room_entropy[f"room{r}"] = {
            "occupancy_weighted": float((h0 * occ)[m].sum() / max(occ[m].sum(), 1e-300)),
            "mean": float(h0[m].mean()),
            "has_goals": bool(np.isin(np.flatnonzero(m), env.goal_cells).any()),
        }
    print(
        f"[exact] {args.rounds} rounds in {time.perf_counter() - t0:.1f}s: joint J "
        f"{joint[0]:.3f} -> {joint[-1]:.3f}, min step change {np.diff(joint).min():+.1e}; "
        f"π0 entropy by room (occupancy-weighted): "
        + ", ".join(f"{k} {v['occupancy_weighted']:.2f}" for k, v in room_entropy.items())
    )

    # ------------------------------------------------------------------ sampled learning
    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
    sampled = {}
    curves = {}
    # Besides the three methods at the same β, independent soft-Q at β / (1 − α): the same
    # entropy weight c_Ent = (1 − α) / β as Distral, so that only the KL to π0 differs.
    runs = [(m, m, args.beta) for m in METHODS]
    if args.alpha < 1:
        runs.insert(2, ("independent_same_c_ent", "independent", args.beta / (1 - args.alpha)))
    for method, algo, beta in runs:
        t0 = time.perf_counter()
        res = sampled_distral(
            env, keys, method=algo, alpha=args.alpha, beta=beta, gamma=args.gamma,
            num_updates=args.num_updates, num_envs=args.num_envs,
            rollout_length=args.rollout_length, episode_length=args.episode_length,
            learning_rate=args.learning_rate, eval_every=args.eval_every,
        )  # fmt: skip
        res = jax.tree_util.tree_map(np.asarray, res)
        ratio = res.greedy_returns / res.optimal_returns  # [seeds, K, N]
        ratio_soft = res.sampled_returns / res.optimal_returns
        curves[method] = (res.env_steps, ratio.mean(-1), ratio.min(-1), ratio_soft.mean(-1))
        # Per seed, the first step at which the fraction of optimal reaches THRESHOLD (inf if
        # never): for "mean" the task average as one column, for "worst" every task's own.
        first = functools.partial(analysis.steps_to_threshold, res.env_steps)
        steps = {
            "greedy_mean": first(ratio.mean(-1, keepdims=True), [THRESHOLD]),
            "greedy_worst": first(ratio, np.full(env.num_tasks, THRESHOLD)),
            "sampled_mean": first(ratio_soft.mean(-1, keepdims=True), [THRESHOLD]),
        }
        sampled[method] = {
            "beta": beta,
            "steps_to_90": {
                k: [int(s) if np.isfinite(s) else None for s in v] for k, v in steps.items()
            },
            # Median over seeds, a seed that never reached the threshold counting as infinite.
            "median_steps_to_90": {
                k: analysis.summarize_steps(v)["median"] for k, v in steps.items()
            },
            "final_fraction_of_optimal_median": float(np.median(ratio[:, -1].mean(-1))),
            "final_worst_task_fraction_median": float(np.median(ratio[:, -1].min(-1))),
            "seconds": time.perf_counter() - t0,
        }
        if method == "distral":
            sampled_pi0 = res.log_pi0[0]
        med = sampled[method]["median_steps_to_90"]
        print(
            f"[sampled] {method} (β={beta:g}) {time.perf_counter() - t0:.1f}s: steps to 90% "
            f"(median of {args.seeds}): mean {med['greedy_mean']}, worst task "
            f"{med['greedy_worst']}, sampling policy {med['sampled_mean']}; final "
            f"{sampled[method]['final_fraction_of_optimal_median']:.3f} of optimal"
        )

    # ------------------------------------------------------------------ figures
    t0 = time.perf_counter()
    shown = np.linspace(0, env.num_tasks - 1, min(3, env.num_tasks)).round().astype(int)
    fig, axes = plt.subplots(2, 3, figsize=(12.5, 6.6), layout="constrained")
    im = draw_policy(axes[0, 0], env, exact.log_pi0, h0, title="exact π0: greedy move, entropy")
    fig.colorbar(im, ax=list(axes[0, :2]), shrink=0.8, label="π0 entropy (nats)")
    draw_policy(
        axes[0, 1], env, sampled_pi0, entropy(sampled_pi0), title="sampled π0 (Distral, seed 0)"
    )
    for ax, i in zip(axes[1], shown, strict=False):
        draw_policy(
            ax,
            env,
            exact.log_pi[i],
            goal=env.goal_cells[i],
            title=f"exact π_{i + 1} (task {i + 1} of {env.num_tasks})",
        )
    ax = axes[0, 2]
    # Half-step 0 (uniform policies) is far below the rest; it is given in the title.
    ax.plot(np.arange(1, len(joint)) / 2, joint[1:], marker=".")
    ax.set_xlabel("round (half-steps: soft VI, then distill)")
    ax.set_ylabel("joint objective (sum of J_i)")
    ax.set_title(
        f"exact Distral α={args.alpha}, β={args.beta:g} (uniform start: {joint[0]:.2f})",
        fontsize=9,
    )
    fig.savefig(os.path.join(args.out, "policies.png"), dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    colors = {
        "distral": "tab:blue",
        "independent": "tab:orange",
        "independent_same_c_ent": "tab:red",
        "shared": "tab:green",
    }
    for method, (steps, mean, worst, _) in curves.items():
        for ax, y in zip(axes, (mean, worst), strict=True):
            lo, mid, hi = np.percentile(y, [25, 50, 75], axis=0)
            label = f"{method} (β={sampled[method]['beta']:g})"
            ax.plot(steps, mid, color=colors[method], label=label)
            ax.fill_between(steps, lo, hi, color=colors[method], alpha=0.2)
    for ax, what in zip(axes, ("mean over tasks", "worst task"), strict=True):
        ax.axhline(THRESHOLD, color="k", lw=0.8, ls="--")
        ax.set_xlabel("environment steps, all tasks (thousands)")
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}")
        ax.set_title(f"greedy policies, {what}", fontsize=10)
        ax.set_ylim(-0.6, 1.05)
    axes[0].set_ylabel(f"return / optimal (median, IQR of {args.seeds} seeds)")
    axes[0].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "learning_curves.png"), dpi=110)
    plt.close(fig)
    print(f"[plots] {time.perf_counter() - t0:.1f}s -> {args.out}")

    summary = {
        "config": cli.to_dict(args),
        "goals_rc": [[int(v) for v in lay.cell_rc[g]] for g in env.goal_cells],
        "optimal_returns": optimal.tolist(),
        "exact": {
            "joint_objective_history": joint.tolist(),
            "min_joint_step_change": float(np.diff(joint).min()),
            "greedy_fraction_of_optimal": (exact_greedy_returns / optimal).tolist(),
            "pi0_entropy_by_room": room_entropy,
        },
        "sampled": sampled,
        "seconds_total": time.perf_counter() - t_start,
    }
    summary["run"] = analysis.run_record(summary["seconds_total"])
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"[done] {summary['seconds_total']:.1f}s")
    return summary


if __name__ == "__main__":
    main()
