"""Training many variants × seeds with as few compilations as possible.

Variants that share an architecture differ only in traced hyperparameters (α, the distillation
weight, the column weight), so all of them and all their seeds train vmapped in ONE compiled
program. ``train_variants`` groups the requested variants by architecture, trains each group,
and returns per-variant learning curves.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from distral_jax.configs import VARIANTS, TrainConfig
from distral_jax.envs.base import TaskFamily
from distral_jax.train import train

# Evaluation curves kept per variant: name -> metrics key.
CURVE_KEYS = {
    "sampled": "eval/episode_return",
    "greedy": "eval/episode_return_greedy",
    "pi0_sampled": "eval/pi0_episode_return",
    "pi0_greedy": "eval/pi0_episode_return_greedy",
}


@dataclasses.dataclass
class VariantResult:
    """Learning curves of one variant over its seeds.

    Attributes:
      steps: ``[E]`` env steps (all tasks) at each evaluation.
      curves: name in ``CURVE_KEYS`` -> ``[seeds, E, N]`` returns.
      sps: training env steps per second of the group's program, all its runs together.
      compile_time_s: compilation time of the group's program.
      wall_s: wall time of the group's training, compilation and evaluations included.
      policy_params: final ``PolicyParams`` with a leading seed axis.
    """

    steps: np.ndarray
    curves: dict[str, np.ndarray]
    sps: float
    compile_time_s: float
    wall_s: float
    policy_params: object = None


def group_by_architecture(variants: Sequence[str]) -> dict[str, list[str]]:
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"`variants`: unknown {unknown}; choose from {sorted(VARIANTS)}")
    groups: dict[str, list[str]] = {}
    for v in variants:
        groups.setdefault(VARIANTS[v].architecture, []).append(v)
    return groups


def train_variants(
    env: TaskFamily,
    config: TrainConfig,
    variants: Sequence[str],
    seeds: int,
    *,
    show_progress: bool = True,
    log=print,
    checkpoint_dir: str | Path | None = None,
) -> dict[str, VariantResult]:
    """Trains every variant for ``seeds`` runs; one compiled program per architecture.

    Args:
      env: the task family.
      config: the shared configuration (its ``variant`` is overridden per variant).
      variants: preset names.
      seeds: runs per variant.
      show_progress: progress bars.
      log: where to report which group is running.
      checkpoint_dir: checkpoints of each group's program in ``<checkpoint_dir>/<architecture>``;
        a rerun resumes each group (a finished one is read back, not trained again).
    Returns:
      variant -> ``VariantResult``.
    """
    if int(seeds) < 1:
        raise ValueError(f"`seeds` must be a positive integer, got {seeds!r}")
    results: dict[str, VariantResult] = {}
    for architecture, group in group_by_architecture(variants).items():
        log(f"[{architecture}] {', '.join(group)} x {seeds} seeds (one program)")
        per_variant = [config.replace(variant=v).hyperparams() for v in group]
        hparams = jax.tree_util.tree_map(
            lambda *xs: jnp.repeat(jnp.stack(xs), seeds, axis=0), *per_variant
        )
        history: list[tuple[int, dict]] = []
        start = time.perf_counter()
        _, params, _ = train(
            env,
            config.replace(variant=group[0]),
            num_runs=len(group) * seeds,
            hparams=hparams,
            progress_fn=lambda step, m, h=history: h.append((step, m)),
            show_progress=show_progress,
            checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir) / architecture,
        )
        wall = time.perf_counter() - start
        if len(group) * seeds == 1:  # ``train`` drops the run axis of a single run
            params = jax.tree_util.tree_map(lambda x: x[None], params)
        steps = np.array([s for s, _ in history])
        last = history[-1][1]
        for k, variant in enumerate(group):
            rows = slice(k * seeds, (k + 1) * seeds)
            curves = {
                name: np.stack(
                    [np.asarray(m[key]).reshape(-1, env.num_tasks)[rows] for _, m in history],
                    axis=1,
                )
                for name, key in CURVE_KEYS.items()
            }
            results[variant] = VariantResult(
                steps=steps,
                curves=curves,
                sps=float(last["training/sps_all_runs"]),
                compile_time_s=float(last["training/compile_time_s"]),
                wall_s=wall,
                policy_params=jax.tree_util.tree_map(lambda x, r=rows: x[r], params),
            )
    return results
