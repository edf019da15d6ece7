"""PPO on the Distral objective: clipped surrogate on regularised advantages.

Per rollout ``[N, E, T]`` (docs/maths.md §6):
  1. ``targets``: with the parameters that acted, values, the regularised reward R^reg and its
     λ-returns / GAE advantages (truncation-aware, ``losses.regularized_returns``);
  2. ``update``: ``epochs`` passes over ``minibatches`` minibatches of whole trajectories (the
     env axis is shuffled; every minibatch holds all N tasks, so each step updates θ_0 and
     every θ_i; recurrent cores are recomputed along each trajectory from its stored start);
  3. ``minibatch_loss``: ``losses.distral_ppo_loss`` vmapped over envs and tasks — surrogate,
     value loss, regulariser and distillation on the same samples.

Advantages are not centred: the value is the baseline already. Optionally
(``normalize_advantages``) they are divided by one scale κ = 1/σ for every task, σ² the mean
square of the *previous* rollout's advantages pooled over the tasks in the objective
(``advantage_scale``), with the regulariser and distillation scaled by the same κ, so the whole
joint gradient is multiplied by one positive number: β keeps its meaning and every task keeps
the joint objective's weight. Centring by a minibatch mean, or a σ computed from the samples
being differentiated, would correlate the scale with each sample's own advantage and shrink the
policy gradient against the regulariser, as if β were smaller (docs/maths.md §6). As in A2C,
steps are weighted uniformly rather than by γ^t (docs/maths.md §7).

The ratio clip caps the rewards' pull on the policy but not the analytic regulariser's: with
several minibatch steps per rollout the fixed point moves towards more entropy (measured in
docs/maths.md §6). The sampled regulariser lives in the advantages and is clipped with them,
which is why it is PPO's default (``TrainConfig.learner_regularizer``).
"""

from __future__ import annotations

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import optax
from flax import struct

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


@struct.dataclass
class PPOState:
    """What PPO carries from one rollout to the next.

    Attributes:
      mean_square: ``[N]`` each task's mean squared advantage over the last rollout.
      seen: whether ``mean_square`` holds a rollout yet (False before the first update).
    """

    mean_square: jax.Array
    seen: jax.Array


def advantage_scale(mean_square: jax.Array, task_weights: jax.Array | None = None) -> jax.Array:
    """κ = 1/σ with σ² = Σ_i w_i ms_i / Σ_i w_i: one scale pooled over the tasks in the objective.

    A per-task 1/σ_i would weight task i's share of every shared gradient (θ_0, the shared
    network, a 2-column h_θ0) by 1/σ_i, a reweighted objective; a task of weight 0 (not yet in a
    curriculum) changes no one's scale.

    Args:
      mean_square: ``[N]`` mean squared advantages per task (from data the gradient it scales
        does not depend on).
      task_weights: ``[N]`` curriculum weights, None for all tasks.
    Returns:
      a scalar.
    """
    chex.assert_rank(mean_square, 1)
    if task_weights is None:
        variance = jnp.mean(mean_square)
    else:
        total = jnp.sum(task_weights)
        variance = jnp.sum(task_weights * mean_square) / jnp.maximum(total, 1.0)
    return 1.0 / (jnp.sqrt(variance) + 1e-8)


def next_advantage_scale(
    state: PPOState, advantages: jax.Array, task_weights: jax.Array | None = None
) -> tuple[jax.Array, PPOState]:
    """κ for this rollout's updates, from the previous rollout, and the state for the next.

    κ = ``advantage_scale`` of ``state.mean_square`` (the previous rollout's), so that it does
    not depend on the advantages it multiplies; before any rollout was seen, this rollout's.

    Args:
      state: the previous rollout's statistics.
      advantages: ``[N, E, T]`` this rollout's advantages.
      task_weights: ``[N]`` curriculum weights at this update, or None.
    Returns:
      ``(κ, state holding this rollout's mean squares)``.
    """
    chex.assert_rank(advantages, 3)
    mean_square = jnp.mean(advantages**2, axis=(1, 2))
    previous = jnp.where(state.seen, state.mean_square, mean_square)
    scale = advantage_scale(previous, task_weights)
    return scale, PPOState(mean_square=mean_square, seen=jnp.ones((), bool))


def ppo_joint_loss(
    dist,
    pi,
    pi0,
    v_tm1: jax.Array,
    action: jax.Array,
    behaviour_log_prob: jax.Array,
    advantages: jax.Array,
    returns: jax.Array,
    scale: jax.Array,
    hp: Hyperparams,
    *,
    clip: float,
    regularizer: Regularizer,
    task_weights: jax.Array | None = None,
) -> tuple[jax.Array, Metrics]:
    """The joint PPO loss of a minibatch ``[N, B, T]`` once the networks have been applied.

    Σ over tasks (``task_weights``) of the mean over trajectories of ``losses.distral_ppo_loss``
    with advantages κ·Â (``scale`` = κ, not centred) and the regulariser and distillation
    scaled by the same κ.

    Args:
      dist: the policies' distribution family.
      pi, pi0: task and distilled policy parameters ``[N, B, T, ...]``.
      v_tm1: ``[N, B, T]`` values, differentiable.
      action, behaviour_log_prob, advantages, returns: ``[N, B, T]`` (actions ``[N, B, T, D]``
        when continuous).
      scale: κ, a scalar independent of this minibatch (``advantage_scale``).
      hp: the traced hyperparameters.
      clip, regularizer: PPO's ε and the regulariser's estimator.
      task_weights: ``[N]`` curriculum weights or None.
    Returns:
      ``(loss, metrics [N])``.
    """
    chex.assert_rank(advantages, 3)
    chex.assert_rank(scale, 0)
    loss_fn = functools.partial(
        losses.distral_ppo_loss,
        dist,
        alpha=hp.alpha,
        beta=hp.beta,
        clip_epsilon=clip,
        regularizer=regularizer,
        value_coef=hp.value_coef,
        distill_coef=hp.distill_coef,
        advantage_scale=scale,
    )
    per_trajectory = jax.vmap(jax.vmap(loss_fn))
    loss, metrics = per_trajectory(
        pi, pi0, action, behaviour_log_prob, advantages * scale, returns, v_tm1
    )
    return joint_loss(loss, metrics, task_weights)


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
      normalize_advantages: scale the policy's loss by κ (``next_advantage_scale``); without
        it κ = 1 and the gradients are in the joint objective's own units, as A2C's.
    """

    networks: DistralNetworks
    optimizer: optax.GradientTransformation
    regularizer: Regularizer
    epochs: int
    minibatches: int
    clip: float
    normalize_advantages: bool = False

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

    def init_state(self, num_tasks: int, params: DistralParams | None = None) -> PPOState:
        """No rollout seen yet."""
        del params
        return PPOState(mean_square=jnp.ones((num_tasks,)), seen=jnp.zeros((), bool))

    def init_opt_state(self, params: DistralParams) -> optax.OptState:
        return self.optimizer.init(params)

    def minibatch_loss(
        self,
        params: DistralParams,
        hp: Hyperparams,
        obs_stats: RunningStats,
        batch: Minibatch,
        scale: jax.Array,
        task_weights: jax.Array | None = None,
    ) -> tuple[jax.Array, Metrics]:
        """Joint PPO loss on a minibatch ``[N, B, T]``: Σ over tasks of the mean over envs."""
        traj, returns, advantages = batch
        pi, pi0, v_tm1, _ = policy_outputs(
            self.networks, params, hp, obs_stats, traj, final_values=False
        )
        return ppo_joint_loss(
            self.networks.dist,
            pi,
            pi0,
            v_tm1,
            traj.action,
            traj.behaviour_log_prob,
            advantages,
            returns,
            scale,
            hp,
            clip=self.clip,
            regularizer=self.regularizer,
            task_weights=task_weights,
        )

    def update(
        self,
        params: DistralParams,
        opt_state: optax.OptState,
        hp: Hyperparams,
        obs_stats: RunningStats,
        traj: Transition,
        key: jax.Array,
        task_weights: jax.Array | None = None,
        learner_state: PPOState | None = None,
    ) -> LearnerOutput:
        """``epochs`` × ``minibatches`` gradient steps on one rollout ``[N, E, T]``.

        With ``normalize_advantages``, κ comes from the previous rollout's advantages
        (``learner_state``); the first update, having none, takes this rollout's.
        """
        returns, advantages = self.targets(params, hp, obs_stats, traj)
        if learner_state is None:
            learner_state = self.init_state(advantages.shape[0])
        scale, learner_state = next_advantage_scale(learner_state, advantages, task_weights)
        if not self.normalize_advantages:
            scale = jnp.ones_like(scale)
        num_envs = traj.reward.shape[1]
        m = self.minibatches

        def split(x):  # [N, E, ...] -> [M, N, E/M, ...]
            x = x.reshape((x.shape[0], m, num_envs // m) + x.shape[2:])
            return jnp.swapaxes(x, 0, 1)

        def minibatch(carry, batch: Minibatch):
            params, opt_state = carry
            loss_fn = lambda p: self.minibatch_loss(p, hp, obs_stats, batch, scale, task_weights)
            out = gradient_step(
                loss_fn, params, opt_state, self.optimizer, hp.learning_rate, task_weights
            )
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
        metrics["advantage_scale"] = jnp.broadcast_to(scale, advantages.shape[:1])
        return LearnerOutput(params, opt_state, metrics, learner_state)
