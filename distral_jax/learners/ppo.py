"""PPO on the Distral objective: clipped surrogate on regularised advantages.

Per rollout ``[N, E, T]`` (docs/maths.md §6):
  1. ``targets``: with the parameters that acted, values, the regularised reward R^reg and its
     λ-returns / GAE advantages (truncation-aware, ``losses.regularized_returns``);
  2. ``update``: ``epochs`` passes over ``minibatches`` minibatches of whole trajectories (the
     env axis is shuffled; every minibatch holds all N tasks, so each step updates θ_0 and
     every θ_i; recurrent cores are recomputed along each trajectory from its stored start);
  3. ``minibatch_loss``: ``losses.distral_ppo_loss`` vmapped over envs and tasks — surrogate,
     value loss, regulariser and distillation on the same samples.

Advantages are centred per task and divided by one standard deviation pooled over every task of
the minibatch; the regulariser and distillation are scaled by the same factor so that β keeps
its meaning and every task keeps the joint objective's weight (see ``distral_ppo_loss``). As in
A2C, steps are weighted uniformly rather than by γ^t (docs/maths.md §7).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from distral_jax import losses
from distral_jax.acting import Transition
from distral_jax.configs import Hyperparams
from distral_jax.learners.base import (
    LearnerOutput,
    Metrics,
    gradient_step,
    joint_loss,
    map_trajectories,
    policy_outputs,
)
from distral_jax.losses import Regularizer
from distral_jax.networks import DistralNetworks, DistralParams
from distral_jax.normalization import RunningStats

Minibatch = tuple[Transition, jax.Array, jax.Array]  # trajectories, returns, advantages


@dataclasses.dataclass(frozen=True)
class PPO:
    """PPO with whole-trajectory minibatches; its fields are static (they shape the program).

    Attributes:
      networks: the policies and values.
      optimizer: the gradient transformation (``learners.make_optimizer``).
      regularizer: ``"analytic"`` or ``"sampled"``.
      epochs: passes over each rollout.
      minibatches: minibatches per pass (a divisor of the environments per task).
      clip: PPO's ε.
    """

    networks: DistralNetworks
    optimizer: optax.GradientTransformation
    regularizer: Regularizer
    epochs: int
    minibatches: int
    clip: float

    def targets(
        self, params: DistralParams, hp: Hyperparams, obs_stats: RunningStats, traj: Transition
    ) -> tuple[jax.Array, jax.Array]:
        """Returns and advantages ``[N, E, T]`` of the regularised reward."""
        pi, pi0, v_tm1, v_t = policy_outputs(self.networks, params, hp, obs_stats, traj)
        returns_fn = functools.partial(
            losses.regularized_returns,
            self.networks.dist,
            alpha=hp.alpha,
            beta=hp.beta,
            lambda_=hp.lambda_,
            regularizer=self.regularizer,
        )
        return map_trajectories(returns_fn, pi, pi0, v_tm1, v_t, traj)

    def minibatch_loss(
        self,
        params: DistralParams,
        hp: Hyperparams,
        obs_stats: RunningStats,
        batch: Minibatch,
        task_weights: jax.Array | None = None,
    ) -> tuple[jax.Array, Metrics]:
        """Joint PPO loss on a minibatch ``[N, B, T]``: Σ over tasks of the mean over envs."""
        traj, returns, advantages = batch
        # Centred per task, scaled by ONE standard deviation pooled over all tasks: a per-task
        # 1/σ_i would weight task i's share of every shared gradient (θ_0, the shared network)
        # by 1/σ_i and so optimise a reweighted objective. The same scale multiplies the
        # regulariser and distillation, so the whole joint gradient is scaled alike. In a
        # curriculum the pool holds the tasks in the objective so far.
        centred = advantages - jnp.mean(advantages, axis=(1, 2), keepdims=True)
        if task_weights is None:
            variance = jnp.mean(centred**2)
        else:
            per_task = jnp.mean(centred**2, axis=(1, 2))
            variance = jnp.sum(task_weights * per_task) / jnp.maximum(jnp.sum(task_weights), 1.0)
        scale = 1.0 / (jnp.sqrt(variance) + 1e-8)
        pi, pi0, v_tm1, _ = policy_outputs(
            self.networks, params, hp, obs_stats, traj, final_values=False
        )
        loss_fn = functools.partial(
            losses.distral_ppo_loss,
            self.networks.dist,
            alpha=hp.alpha,
            beta=hp.beta,
            clip_epsilon=self.clip,
            regularizer=self.regularizer,
            value_coef=hp.value_coef,
            distill_coef=hp.distill_coef,
            advantage_scale=scale,
        )
        per_trajectory = jax.vmap(jax.vmap(loss_fn))
        loss, metrics = per_trajectory(
            pi, pi0, traj.action, traj.behaviour_log_prob, centred * scale, returns, v_tm1
        )
        return joint_loss(loss, metrics, task_weights)

    def update(
        self,
        params: DistralParams,
        opt_state: optax.OptState,
        hp: Hyperparams,
        obs_stats: RunningStats,
        traj: Transition,
        key: jax.Array,
        task_weights: jax.Array | None = None,
    ) -> LearnerOutput:
        """``epochs`` × ``minibatches`` gradient steps on one rollout ``[N, E, T]``."""
        returns, advantages = self.targets(params, hp, obs_stats, traj)
        num_envs = traj.reward.shape[1]
        m = self.minibatches

        def split(x):  # [N, E, ...] -> [M, N, E/M, ...]
            x = x.reshape((x.shape[0], m, num_envs // m) + x.shape[2:])
            return jnp.swapaxes(x, 0, 1)

        def minibatch(carry, batch: Minibatch):
            params, opt_state = carry
            loss_fn = lambda p: self.minibatch_loss(p, hp, obs_stats, batch, task_weights)
            out = gradient_step(loss_fn, params, opt_state, self.optimizer, hp.learning_rate)
            return (out.params, out.opt_state), out.metrics

        def epoch(carry, epoch_key):
            perm = jax.random.permutation(epoch_key, num_envs)
            batches = jax.tree_util.tree_map(
                lambda x: split(x[:, perm]), (traj, returns, advantages)
            )
            return jax.lax.scan(minibatch, carry, batches)

        keys = jax.random.split(key, self.epochs)
        (params, opt_state), metrics = jax.lax.scan(epoch, (params, opt_state), keys)
        metrics = jax.tree_util.tree_map(lambda x: jnp.mean(x, axis=(0, 1)), metrics)
        return LearnerOutput(params=params, opt_state=opt_state, metrics=metrics)
