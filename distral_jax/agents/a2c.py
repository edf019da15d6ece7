"""Advantage actor-critic on the Distral objective (the paper's learner, synchronous).

One gradient step per rollout on the joint loss Σ_i mean_e L_i(trajectory e of task i), with
``losses.distral_actor_critic_loss`` vmapped over environments and tasks.
"""

from __future__ import annotations

import functools

import jax
import optax

from distral_jax import losses
from distral_jax.agents.common import (
    LearnerOutput,
    Transition,
    gradient_step,
    joint_loss,
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
    return joint_loss(*map_trajectories(loss_fn, pi, pi0, v_tm1, v_t, traj))


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
    params, opt_state, metrics = gradient_step(
        a2c_loss, params, opt_state, optimizer, hp, networks, hp, obs_stats, traj, config
    )
    return LearnerOutput(params=params, opt_state=opt_state, metrics=metrics)
