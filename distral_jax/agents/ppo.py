"""PPO on the Distral objective: clipped surrogate on regularised advantages.

Per rollout ``[N, E, T]``:
  1. with the parameters that acted, compute values, the regularised reward R^reg and its
     λ-returns / GAE advantages (truncation-aware, ``losses.regularized_returns``);
  2. ``ppo_epochs`` passes over ``ppo_minibatches`` minibatches of whole trajectories (the env
     axis is shuffled; every minibatch holds all N tasks, so each step updates θ_0 and every θ_i);
  3. per minibatch, ``losses.distral_ppo_loss`` vmapped over envs and tasks: surrogate, value loss,
     analytic regulariser and distillation on the same samples.

Advantages are centred per task and divided by one standard deviation pooled over every task of
the minibatch; the regulariser and distillation are scaled by the same factor so that β keeps
its meaning and every task keeps the joint objective's weight (see ``distral_ppo_loss``).
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
    gradient_step,
    joint_loss,
    map_trajectories,
    observations,
    policy_outputs,
)
from distral_jax.configs import Hyperparams, TrainConfig
from distral_jax.networks import DistralNetworks, DistralParams
from distral_jax.normalization import RunningStats


def compute_targets(
    params: DistralParams,
    networks: DistralNetworks,
    hp: Hyperparams,
    obs_stats: RunningStats,
    traj: Transition,
    config: TrainConfig,
) -> tuple[jax.Array, jax.Array]:
    """Returns and advantages ``[N, E, T]`` of the regularised reward."""
    pi, pi0, v_tm1, v_t = policy_outputs(params, networks, hp, obs_stats, traj, config)

    returns_fn = functools.partial(
        losses.regularized_returns,
        networks.dist,
        alpha=hp.alpha,
        beta=hp.beta,
        lambda_=hp.lambda_,
        regularizer=config.regularizer,
    )
    return map_trajectories(returns_fn, pi, pi0, v_tm1, v_t, traj)


def ppo_minibatch_loss(
    params: DistralParams,
    networks: DistralNetworks,
    hp: Hyperparams,
    obs_stats: RunningStats,
    batch: tuple[Transition, jax.Array, jax.Array],
    config: TrainConfig,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Joint PPO loss on a minibatch ``[N, B, T]``: Σ over tasks of the mean over trajectories."""
    traj, returns, advantages = batch
    # Centred per task, scaled by ONE standard deviation pooled over all tasks: a per-task
    # 1/σ_i would weight task i's share of every shared gradient (θ_0, the shared network) by
    # 1/σ_i and so optimise a reweighted objective. The same scale multiplies the regulariser
    # and distillation below, so the whole joint gradient is scaled alike.
    centred = advantages - jnp.mean(advantages, axis=(1, 2), keepdims=True)
    scale = 1.0 / (jnp.sqrt(jnp.mean(centred**2)) + 1e-8)
    normalized = centred * scale
    pi, pi0, v_tm1 = networks.apply(
        params, observations(obs_stats, traj.obs, config), hp.column_alpha
    )

    def one(pi_t, pi0_t, a_t, mu_t, adv_t, ret_t, v_t, scale_):
        return losses.distral_ppo_loss(
            networks.dist,
            pi_t,
            pi0_t,
            a_t,
            mu_t,
            adv_t,
            ret_t,
            v_t,
            hp.alpha,
            hp.beta,
            clip_epsilon=config.ppo_clip,
            regularizer=config.regularizer,
            value_coef=hp.value_coef,
            distill_coef=hp.distill_coef,
            advantage_scale=scale_,
        )

    per_env = jax.vmap(one, in_axes=(0, 0, 0, 0, 0, 0, 0, None))
    loss, metrics = jax.vmap(per_env, in_axes=(0, 0, 0, 0, 0, 0, 0, None))(
        pi, pi0, traj.action, traj.behaviour_log_prob, normalized, returns, v_tm1, scale
    )
    return joint_loss(loss, metrics)


def ppo_update(
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
    """``ppo_epochs`` × ``ppo_minibatches`` gradient steps on one rollout ``[N, E, T]``."""
    returns, advantages = compute_targets(params, networks, hp, obs_stats, traj, config)
    num_envs = traj.reward.shape[1]
    m = config.ppo_minibatches

    def split(x):  # [N, E, ...] -> [M, N, E/M, ...]
        x = x.reshape((x.shape[0], m, num_envs // m) + x.shape[2:])
        return jnp.swapaxes(x, 0, 1)

    def epoch(carry, epoch_key):
        params, opt_state = carry
        perm = jax.random.permutation(epoch_key, num_envs)
        shuffled = jax.tree_util.tree_map(lambda x: split(x[:, perm]), (traj, returns, advantages))

        def minibatch(carry, batch):
            params, opt_state = carry
            params, opt_state, metrics = gradient_step(
                ppo_minibatch_loss,
                params,
                opt_state,
                optimizer,
                hp,
                networks,
                hp,
                obs_stats,
                batch,
                config,
            )
            return (params, opt_state), metrics

        return jax.lax.scan(minibatch, (params, opt_state), shuffled)

    keys = jax.random.split(key, config.ppo_epochs)
    (params, opt_state), metrics = jax.lax.scan(epoch, (params, opt_state), keys)
    metrics = jax.tree_util.tree_map(lambda x: jnp.mean(x, axis=(0, 1)), metrics)
    return LearnerOutput(params=params, opt_state=opt_state, metrics=metrics)
