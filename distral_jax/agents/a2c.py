"""Advantage actor-critic on the Distral objective (the paper's learner, synchronous).

One gradient step per rollout on the joint loss Σ_i mean_e L_i(trajectory e of task i), with
``losses.distral_actor_critic_loss`` vmapped over environments and tasks.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from distral_jax import losses
from distral_jax.agents.common import (
    LearnerOutput,
    Transition,
    apply_gradients,
    map_trajectories,
    policy_outputs,
)
from distral_jax.configs import Hyperparams, TrainConfig
from distral_jax.networks import DistralNetworks, DistralParams
from distral_jax.normalization import RunningStats


def a2c_loss(
    params: DistralParams,
    networks: DistralNetworks,
    hp: Hyperparams,
    obs_stats: RunningStats,
    traj: Transition,
    config: TrainConfig,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The joint loss on trajectories ``[N, E, T]``; returns metrics averaged to ``[N]``."""
    pi, pi0, v_tm1, v_t = policy_outputs(params, networks, hp, obs_stats, traj, config)

    loss_fn = functools.partial(
        losses.distral_actor_critic_loss,
        networks.dist,
        alpha=hp.alpha,
        beta=hp.beta,
        lambda_=hp.lambda_,
        regularizer=config.regularizer,
        value_coef=hp.value_coef,
        distill_coef=hp.distill_coef,
    )
    loss, metrics = map_trajectories(loss_fn, pi, pi0, v_tm1, v_t, traj)
    # Σ over tasks (the joint objective), mean over each task's environments.
    total = jnp.sum(jnp.mean(loss, axis=1))
    return total, jax.tree_util.tree_map(lambda m: jnp.mean(m, axis=1), metrics)


def a2c_update(
    params: DistralParams,
    opt_state: optax.OptState,
    optimizer: optax.GradientTransformation,
    networks: DistralNetworks,
    hp: Hyperparams,
    obs_stats: RunningStats,
    traj: Transition,
    key: jax.Array,
    config: TrainConfig,
) -> LearnerOutput:
    """One synchronous actor-critic step on a batch of trajectories ``[N, E, T]``."""
    del key
    grads, metrics = jax.grad(a2c_loss, has_aux=True)(params, networks, hp, obs_stats, traj, config)
    params, opt_state, grad_norm = apply_gradients(params, opt_state, optimizer, grads, hp)
    metrics["grad_norm"] = jnp.broadcast_to(grad_norm, metrics["loss"].shape)
    return LearnerOutput(params=params, opt_state=opt_state, metrics=metrics)
