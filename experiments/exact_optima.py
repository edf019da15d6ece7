"""How far a learner ends from the exact optimum of the joint objective, on one-state problems.

    python experiments/exact_optima.py --task bandit --learner ppo --learning-rate 2e-3 \
        --total-env-steps 1536000 --seeds 16
    python experiments/exact_optima.py --task quadratic --learner ppo --ppo-epochs 1 \
        --max-grad-norm inf --learning-rate 3e-3 --total-env-steps 1024000 --seeds 8
    python experiments/exact_optima.py --learner sac --variant distral_kl_2col \
        --total-env-steps 51200 --seeds 3
    python experiments/exact_optima.py --task quadratic --learner sac --no-action-squash \
        --learning-rate 1e-3 --total-env-steps 128000 --seeds 4 --hidden 64

Two tasks, α = 1/2, β = 3, one-step episodes of one state (docs/maths.md §8):
  * ``bandit``: rewards [[1, 0, 0.5], [0, 0.1, 0.05]]; the optimum is the fixed point of
    π_i ∝ π_0^α exp(β r_i), π_0 = mean_i π_i (``envs.bandit.distral_fixed_point``);
  * ``quadratic``: r_i(a) = −(a − g_i)², g = (−0.5, 0.4), tanh-Gaussian policies; the optimum
    over that family by quadrature (``envs.quadratic_bandit.tanh_gaussian_optimum``); with
    ``--no-action-squash`` plain Gaussians, whose optimum is closed-form (``gaussian_optimum``).

Any variant (``--variant``: its α, π_0 or not; the bandit's optimum at that α) and learner
(``--learner sac``: one gradient step of 64 replayed transitions per task per update, no
warm-up, ``SAC_ONE_STATE``).

``--seeds`` runs are vmapped in one program; their policies at the one state are averaged and
compared with the optimum. Prints, and writes to ``--out`` as JSON: the errors, the per-seed
spread, and for the bandit the errors against the optimum at β ± 6 % (what a 6 % error of β
would look like). docs/maths.md §6 reports the figures of these commands.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from distral_jax import analysis, cli
from distral_jax.configs import TrainConfig, VariantName
from distral_jax.envs.bandit import MultiTaskBandit, distral_fixed_point
from distral_jax.envs.quadratic_bandit import (
    QuadraticBandit,
    gaussian_optimum,
    tanh_gaussian_optimum,
)
from distral_jax.train import train
from distral_jax.trainer import Trainer

BANDIT_REWARDS = np.array([[1.0, 0.0, 0.5], [0.0, 0.1, 0.05]])
QUADRATIC_TARGETS = [[-0.5], [0.4]]
ALPHA, BETA = 0.5, 3.0
# SAC on the one-state problems: one gradient step of 64 replayed transitions per task per
# update (64 environments per task: a replay ratio of 1), no warm-up, no gradient clipping.
SAC_ONE_STATE = dict(
    replay_capacity=4096,
    sac_batch_size=64,
    sac_grad_updates=1,
    sac_warmup_steps=0,
    max_grad_norm=1e9,
)


@dataclasses.dataclass(frozen=True)
class Study:
    """One learner's distance from the optimum of a one-state problem."""

    task: Literal["bandit", "quadratic"] = "bandit"
    """the one-state problem"""
    learner: Literal["a2c", "ppo", "sac"] = "a2c"
    """the learner"""
    variant: VariantName = "distral_klent_1col"
    """the variant (its α; the bandit's optimum at that α)"""
    action_squash: bool = True
    """quadratic: tanh-Gaussian policies (False: plain Gaussians, the closed-form optimum)"""
    hidden: int = 8
    """width of the networks' one hidden layer"""
    regularizer: Literal["analytic", "sampled"] | None = None
    """estimator of the KL and entropy terms (None: the learner's default)"""
    seeds: int = 16
    """runs, averaged"""
    total_env_steps: int = 512_000
    """budget of each run (both tasks, 64 environments each)"""
    learning_rate: float = 1e-2
    """Adam's step size"""
    ppo_epochs: int = 4
    """PPO's epochs per rollout"""
    ppo_minibatches: int = 4
    """PPO's minibatches per epoch"""
    ppo_clip: float = 0.2
    """PPO's ratio clip ε"""
    ppo_normalize_advantages: bool = False
    """PPO's advantage scale (docs/maths.md §6)"""
    max_grad_norm: float | None = None
    """global gradient-norm clip (inf: none; default: 1.0, and none for SAC)"""
    out: str = ""
    """JSON output file (default: runs/exact_optima/<task>_<learner>_<regularizer>.json)"""

    def __post_init__(self):
        if self.seeds < 1:
            raise ValueError(f"`seeds` must be >= 1, got {self.seeds}")

    def config(self) -> TrainConfig:
        sac = dict(SAC_ONE_STATE) if self.learner == "sac" else {"max_grad_norm": 1.0}
        if self.max_grad_norm is not None:
            sac["max_grad_norm"] = self.max_grad_norm
        return one_state_config(
            variant=self.variant,
            action_squash=self.action_squash,
            hidden_sizes=(self.hidden,),
            learner=self.learner,
            regularizer=self.regularizer,
            total_env_steps=self.total_env_steps,
            learning_rate=self.learning_rate,
            ppo_epochs=self.ppo_epochs,
            ppo_minibatches=self.ppo_minibatches,
            ppo_clip=self.ppo_clip,
            ppo_normalize_advantages=self.ppo_normalize_advantages,
            **sac,
        )


def one_state_config(**settings) -> TrainConfig:
    """Distral (α = 1/2, β = 3) on one-step episodes of one state, 64 environments per task,
    500 updates per jitted call; ``settings`` override any field."""
    base = dict(
        variant="distral_klent_1col",
        beta=BETA,
        num_envs=64,
        unroll_length=1,
        iterations_per_call=500,
        episode_length=1,
        eval_every=10**9,
        hidden_sizes=(8,),
    )
    return TrainConfig(**{**base, **settings})


def policies_at_the_one_state(env, config: TrainConfig, policy_params):
    """``(pi [runs, N, ...], pi0 [runs, ...])``: the distributions' parameters at obs = 1.

    ``policy_params`` as ``train`` returns them: with a leading run axis, or without one for a
    single run (then ``runs`` is 1 here)."""
    networks = Trainer(env, config).networks
    if np.ndim(policy_params.hparams.alpha) == 0:  # one run: train dropped the run axis
        policy_params = jax.tree_util.tree_map(lambda x: x[None], policy_params)

    def one(p):
        pi, pi0, _ = networks.policies(
            p.params, p.obs_stats, jnp.ones((env.num_tasks, 1)), p.hparams.column_alpha
        )
        return pi, jax.tree_util.tree_map(lambda x: x[0], pi0)

    return jax.vmap(one)(policy_params)


def bandit_errors(
    pi: np.ndarray, pi0: np.ndarray, alpha: float = ALPHA, distill: bool = True
) -> dict:
    """Seed-averaged π ``[runs, N, A]`` and π_0 ``[runs, A]`` against the fixed point at α
    (π_i alone for a variant without π_0)."""

    def error(beta):
        want_pi, want_pi0 = distral_fixed_point(BANDIT_REWARDS, alpha=alpha, beta=beta)
        pi0_error = float(np.abs(pi0.mean(0) - want_pi0).max()) if distill else 0.0
        return max(float(np.abs(pi.mean(0) - want_pi).max()), pi0_error)

    return {
        "max_error": error(BETA),
        "per_seed_std": float(pi.std(0).max()),
        "max_error_vs_beta_minus_6pc": error(BETA * 0.94),
        "max_error_vs_beta_plus_6pc": error(BETA * 1.06),
        "pi": pi.mean(0),
        "pi0": pi0.mean(0),
    }


def quadratic_errors(loc, scale, loc_0, scale_0, alpha: float = ALPHA, squash: bool = True) -> dict:
    """Seed-averaged (pre-squash) means and standard deviations against the optimum over
    tanh-Gaussians (``squash``) or plain Gaussians."""
    optimum = tanh_gaussian_optimum if squash else gaussian_optimum
    want = optimum(QUADRATIC_TARGETS, curvature=1.0, alpha=alpha, beta=BETA)
    mean = lambda x: np.asarray(x).mean(axis=0)
    return {
        "scale_error": (mean(scale) - want["scale"]).ravel(),
        "scale_relative_error": (mean(scale) / want["scale"] - 1).ravel(),
        "loc_error": (mean(loc) - want["loc"]).ravel(),
        "scale_0_error": (mean(scale_0) - want["scale_0"]).ravel(),
        "loc_0_error": (mean(loc_0) - want["loc_0"]).ravel(),
        "per_seed_scale_std": np.asarray(scale).std(axis=0).ravel(),
        "optimum": want,
    }


def main(argv: list[str] | None = None) -> int:
    study = cli.parse(Study, argv)
    cli.enable_compilation_cache()
    config = study.config()
    if study.task == "bandit":
        env = MultiTaskBandit(BANDIT_REWARDS)
    else:
        env = QuadraticBandit(QUADRATIC_TARGETS)
    start = time.perf_counter()
    _, policy_params, _ = train(env, config, num_runs=study.seeds, show_progress=False)
    pi, pi0 = policies_at_the_one_state(env, config, policy_params)
    alpha, distill = config.resolved.alpha, config.resolved.distill
    if study.task == "bandit":
        result = bandit_errors(
            np.asarray(jax.nn.softmax(pi)), np.asarray(jax.nn.softmax(pi0)), alpha, distill
        )
    else:
        result = quadratic_errors(*pi, *pi0, alpha=alpha, squash=study.action_squash)
    result["wall_s"] = time.perf_counter() - start
    for key, value in result.items():
        if key not in ("optimum", "pi", "pi0"):
            print(f"{key:30s} {np.round(value, 4)}")
    name = f"{study.task}_{study.learner}_{config.learner_regularizer}.json"
    if study.learner == "sac":
        name = f"{study.task}_sac_{study.variant}{'' if study.action_squash else '_gaussian'}.json"
    out = Path(study.out or f"runs/exact_optima/{name}")
    analysis.write_json(out, {"study": cli.to_dict(study), **result})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
