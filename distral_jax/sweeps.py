"""Training many variants × settings × seeds with as few compilations as possible.

Configurations that differ only in traced hyperparameters (α, β, the learning rate, the
distillation weight, the column weight: ``Hyperparams``) share one compiled program, so all the
variants of one architecture, a grid of their settings and all their seeds train vmapped in ONE
program. ``train_configs`` groups named configurations by program, trains each group and returns
per-configuration learning curves; ``train_variants`` does so for the preset variants.

Seeds are paired: seed ``s`` of every configuration gets the same PRNG key (the same first
environment states, and the same network initialisation within an architecture), so that
differences between configurations are not differences between draws.
"""

from __future__ import annotations

import dataclasses
import time
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from distral_jax import cli
from distral_jax.configs import VARIANTS, TrainConfig, preset_fixed_defaults
from distral_jax.envs.base import TaskFamily
from distral_jax.train import train

# Evaluation curves kept per variant: name -> metrics key.
CURVE_KEYS = {
    "sampled": "eval/episode_return",
    "greedy": "eval/episode_return_greedy",
    "pi0_sampled": "eval/pi0_episode_return",
    "pi0_greedy": "eval/pi0_episode_return_greedy",
    # Success rates (NaN for families that define no success).
    "success_sampled": "eval/success",
    "success_greedy": "eval/success_greedy",
    "pi0_success_sampled": "eval/pi0_success",
    "pi0_success_greedy": "eval/pi0_success_greedy",
}


@dataclasses.dataclass
class VariantResult:
    """Learning curves of one variant over its seeds.

    Attributes:
      steps: ``[E]`` env steps (all tasks) at each evaluation.
      curves: name in ``CURVE_KEYS`` -> ``[seeds, E, N]`` returns (success rates for the
        ``success_*`` curves).
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


def check_variants(variants: Sequence[str]) -> None:
    """A named error for preset names that do not exist."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"`variants`: unknown {unknown}; choose from {sorted(VARIANTS)}")


_TRACED_FIELDS = ("beta", "learning_rate", "gamma", "lambda_", "value_coef", "distill_coef")


def program_of(config: TrainConfig) -> TrainConfig:
    """The configuration with every traced hyperparameter at its default: configurations with
    the same ``program_of`` compile to the same program."""
    defaults = {name: getattr(TrainConfig, name) for name in _TRACED_FIELDS}
    return config.replace(
        variant="custom",
        architecture=config.resolved.architecture,
        c_kl=TrainConfig.c_kl,
        c_ent=TrainConfig.c_ent,
        distill=True,
        **defaults,
    )


def paired_keys(seed: int, seeds: int, configs: int) -> jax.Array:
    """``[configs * seeds, 2]``: the keys of ``seeds`` runs, repeated for every configuration."""
    return jnp.tile(jax.random.split(jax.random.PRNGKey(seed), seeds), (configs, 1))


def train_variants(
    env: TaskFamily,
    config: TrainConfig,
    variants: Sequence[str],
    seeds: int,
    **kwargs,
) -> dict[str, VariantResult]:
    """``train_configs`` of the preset ``variants`` of ``config``: one program per architecture.

    Args:
      env: the task family.
      config: the shared configuration (its ``variant`` is overridden per variant).
      variants: preset names.
      seeds: runs per variant, paired across variants.
      kwargs: ``train_configs``'s keyword arguments.
    Returns:
      variant -> ``VariantResult``.
    """
    check_variants(variants)
    # A custom ``config``'s costs and architecture are the presets' to fix.
    configs = {v: config.replace(variant=v, **preset_fixed_defaults()) for v in variants}
    return train_configs(env, configs, seeds, **kwargs)


def train_configs(
    env: TaskFamily,
    configs: Mapping[str, TrainConfig],
    seeds: int,
    *,
    show_progress: bool = True,
    log=print,
    checkpoint_dir: str | Path | None = None,
) -> dict[str, VariantResult]:
    """Trains every named configuration for ``seeds`` paired runs, one program per group of
    configurations that differ only in traced hyperparameters (``program_of``).

    Args:
      env: the task family.
      configs: name -> configuration.
      seeds: runs per configuration; seed ``s`` has the same key in every configuration
        (``paired_keys`` of the group's ``config.seed``).
      show_progress: progress bars.
      log: where to report which group is running.
      checkpoint_dir: checkpoints of each group's program in ``<checkpoint_dir>/<architecture>``
        (``-2``, ``-3``... for further groups of one architecture); a rerun resumes each group
        (a finished one is read back, not trained again).
    Returns:
      name -> ``VariantResult``, in the order of ``configs``.
    """
    if int(seeds) < 1:
        raise ValueError(f"`seeds` must be a positive integer, got {seeds!r}")
    groups: dict[TrainConfig, list[str]] = {}
    for name, config in configs.items():
        groups.setdefault(program_of(config), []).append(name)
    results: dict[str, VariantResult] = {}
    folders: dict[str, int] = {}
    for program, names in groups.items():
        architecture = program.architecture
        folders[architecture] = folders.get(architecture, 0) + 1
        folder = architecture + (f"-{folders[architecture]}" if folders[architecture] > 1 else "")
        log(f"[{folder}] {len(names)} configurations x {seeds} seeds (one program)")
        results.update(
            _train_group(
                env,
                [configs[n] for n in names],
                names,
                seeds,
                show_progress,
                None if checkpoint_dir is None else Path(checkpoint_dir) / folder,
            )
        )
    return {name: results[name] for name in configs}


def _train_group(
    env: TaskFamily,
    configs: list[TrainConfig],
    names: list[str],
    seeds: int,
    show_progress: bool,
    checkpoint_dir: Path | None,
) -> dict[str, VariantResult]:
    per_config = [c.hyperparams() for c in configs]
    hparams = jax.tree_util.tree_map(
        lambda *xs: jnp.repeat(jnp.stack(xs), seeds, axis=0), *per_config
    )
    num_runs = len(configs) * seeds
    # A group that mixes variants without π_0 (a3c) and with it (distral_kl_1col) shares the
    # program that evaluates π_0; a group of the first kind alone skips it.
    program = next((c for c in configs if c.uses_prior), configs[0])
    history: list[tuple[int, dict]] = []
    start = time.perf_counter()
    _, params, _ = train(
        env,
        program,
        num_runs=num_runs,
        hparams=hparams,
        keys=paired_keys(configs[0].seed, seeds, len(configs)),
        progress_fn=lambda step, m, h=history: h.append((step, m)),
        show_progress=show_progress,
        checkpoint_dir=checkpoint_dir,
    )
    wall = time.perf_counter() - start
    if num_runs == 1:  # ``train`` drops the run axis of a single run
        params = jax.tree_util.tree_map(lambda x: x[None], params)
    steps = np.array([s for s, _ in history])
    last = history[-1][1]
    results = {}
    for k, name in enumerate(names):
        rows = slice(k * seeds, (k + 1) * seeds)
        curves = {
            curve: np.stack(
                [np.asarray(m[key]).reshape(-1, env.num_tasks)[rows] for _, m in history], axis=1
            )
            for curve, key in CURVE_KEYS.items()
        }
        if not configs[k].uses_prior:  # π_0 is not part of this variant: no curve of its own
            for curve in ("pi0_sampled", "pi0_greedy", "pi0_success_sampled", "pi0_success_greedy"):
                curves[curve] = np.full_like(curves[curve], np.nan)
        results[name] = VariantResult(
            steps=steps,
            curves=curves,
            sps=float(last["training/sps_all_runs"]),
            compile_time_s=float(last["training/compile_time_s"]),
            wall_s=wall,
            policy_params=jax.tree_util.tree_map(lambda x, r=rows: x[r], params),
        )
    return results


class VariantStudy(typing.Protocol):
    """The flags a study that compares variants shares (``--variants``, ``--seeds``...)."""

    variants: Sequence[str]
    seeds: int
    quiet: bool
    persistence: cli.Persistence


def train_study(
    env: TaskFamily, config: TrainConfig, study: VariantStudy, **kwargs: Any
) -> dict[str, Any]:
    """``train_variants`` of the study's variants and seeds, with progress bars unless
    ``--quiet`` and checkpoints in ``--checkpoint-dir``; ``kwargs`` (``log``, a
    ``checkpoint_dir`` of the study's own) override those.

    Returns:
      variant -> ``VariantResult``.
    """
    options = {
        "show_progress": not study.quiet,
        "checkpoint_dir": study.persistence.checkpoint_dir,
        **kwargs,
    }
    return train_variants(env, config, study.variants, study.seeds, **options)
