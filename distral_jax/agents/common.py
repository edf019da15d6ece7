"""Pieces shared by the learners: the transition record, the optimiser, gradient application."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from distral_jax.configs import Hyperparams, TrainConfig
from distral_jax.networks import DistralNetworks, DistralParams
from distral_jax.normalization import RunningStats


@struct.dataclass
class Transition:
    """One step of every environment; stacked to ``[N, E, T, ...]`` for the learners.

    Attributes:
      obs: observation the action was taken in.
      action: action taken (pre-squash for tanh-Gaussian policies).
      reward: reward received.
      discount: γ, or 0 where the episode terminated (not where it was truncated).
      done: 1 where the episode ended on this step, for any reason.
      final_obs: the observation reached (before any auto-reset), for bootstrapping.
      behaviour_log_prob: log π_i(action) under the acting policy (PPO's ratio denominator).
      episode_return: return of the episode ending here (valid where ``done``).
      success: 1 where the episode ended in success (valid where ``done``; NaN for families
        whose ``metrics`` define no ``"success"``).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    done: jax.Array
    final_obs: jax.Array
    behaviour_log_prob: jax.Array
    episode_return: jax.Array
    success: jax.Array


class LearnerOutput(NamedTuple):
    params: DistralParams
    opt_state: optax.OptState
    metrics: dict[str, jax.Array]


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Gradient clipping and Adam's scaling; the (traced) learning rate is applied afterwards.

    Keeping the learning rate out of the optax chain lets it be a traced hyperparameter, so a
    training run can be vmapped over learning rates without recompiling.
    """
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.scale_by_adam())


def apply_gradients(
    params: DistralParams,
    opt_state: optax.OptState,
    optimizer: optax.GradientTransformation,
    grads: DistralParams,
    hp: Hyperparams,
) -> tuple[DistralParams, optax.OptState, jax.Array]:
    grad_norm = optax.tree_utils.tree_norm(grads)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    updates = jax.tree_util.tree_map(lambda u: -hp.learning_rate * u, updates)
    return optax.apply_updates(params, updates), opt_state, grad_norm


def observations(obs_stats: RunningStats, obs: jax.Array, config: TrainConfig) -> jax.Array:
    """What the networks see: normalised observations when the config asks for it."""
    return obs_stats.normalize(obs) if config.normalize_observations else obs


def policy_outputs(
    params: DistralParams,
    networks: DistralNetworks,
    hp: Hyperparams,
    obs_stats: RunningStats,
    traj: Transition,
    config: TrainConfig,
) -> tuple[Any, Any, jax.Array, jax.Array]:
    """``(pi, pi0, v_tm1, v_t)`` on trajectories ``[N, E, T]``.

    ``v_tm1`` = V(obs_t) and ``v_t`` = V(final_obs_t), the value of the state each step reached
    (the true last state where an episode ended), which is what returns bootstrap from.
    """
    pi, pi0, v_tm1 = networks.apply(
        params, observations(obs_stats, traj.obs, config), hp.column_alpha
    )
    v_t = networks.value(params, observations(obs_stats, traj.final_obs, config))
    return pi, pi0, v_tm1, v_t


def map_trajectories(fn, pi, pi0, v_tm1: jax.Array, v_t: jax.Array, traj: Transition):
    """``fn(pi_t, pi0_t, a_t, r_t, discount_t, done_t, v_tm1, v_t)`` on every trajectory.

    The per-trajectory losses of ``distral_jax.losses`` take their arguments in this order; this
    vmaps one over the environment axis and then the task axis of ``[N, E, T]`` batches.
    """
    batched = jax.vmap(jax.vmap(fn))
    return batched(pi, pi0, traj.action, traj.reward, traj.discount, traj.done, v_tm1, v_t)


def joint_loss(loss: jax.Array, metrics: dict[str, jax.Array]):
    """Per-trajectory losses ``[N, E]`` -> the joint objective's loss and metrics ``[N]``.

    Σ over tasks (the joint objective of eq. 1 sums the tasks' J_i), mean over each task's
    environments (a Monte-Carlo average).
    """
    total = jnp.sum(jnp.mean(loss, axis=1))
    return total, jax.tree_util.tree_map(lambda m: jnp.mean(m, axis=1), metrics)


def gradient_step(
    loss_fn, params: DistralParams, opt_state: optax.OptState, optimizer, hp: Hyperparams, *args
) -> tuple[DistralParams, optax.OptState, dict[str, jax.Array]]:
    """One optimiser step on ``loss_fn(params, *args) -> (loss, metrics [N])``."""
    grads, metrics = jax.grad(loss_fn, has_aux=True)(params, *args)
    params, opt_state, grad_norm = apply_gradients(params, opt_state, optimizer, grads, hp)
    metrics["grad_norm"] = jnp.broadcast_to(grad_norm, metrics["loss"].shape)
    return params, opt_state, metrics
