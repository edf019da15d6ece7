"""What every learner shares: the learner protocol, the optimiser and one gradient step.

A learner is built once from the networks, the optimiser and its static settings, and then
called as ``learner.update(params, opt_state, hparams, obs_stats, trajectories, key,
task_weights, learner_state)`` on the trajectories ``[N, E, T]`` that
``distral_jax.acting.rollout`` collects (with ``task_weights [N]`` in a curriculum: tasks of
weight 0 are not yet in the objective). ``learner_state`` is whatever the learner carries from
one update to the next besides parameters and optimiser state (``init_state``; PPO: the previous
rollout's advantage statistics; SAC: its replay, target critics and temperatures), part of the
training state and of its checkpoints.

Optional, for an off-policy learner (``learners.sac``): ``acts_randomly(learner_state)`` (the
next rollout explores with uniformly random actions), ``learned_state(learner_state)`` (the part
the non-finite check reads) and ``state_shardings(mesh, learner_state, per_task_params)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import optax

from distral_jax.acting import Transition
from distral_jax.configs import Hyperparams, TrainConfig
from distral_jax.learners.optimizer import scale_by_task_adam
from distral_jax.networks import DistralNetworks, DistralParams
from distral_jax.normalization import RunningStats

Metrics = dict[str, Any]  # per-task arrays [N] in the program; numpy on the host


class LearnerOutput(NamedTuple):
    """Parameters, optimiser and learner state after an update, and per-task metrics ``[N]``."""

    params: DistralParams
    opt_state: optax.OptState
    metrics: Metrics
    learner_state: Any = ()


class Learner(Protocol):
    """One update of all parameters from one batch of trajectories."""

    def init_state(self, num_tasks: int, params: DistralParams | None = None) -> Any:
        """The learner's own state before the first update (a pytree, ``()`` if none)."""
        ...

    def init_opt_state(self, params: DistralParams) -> optax.OptState:
        """The optimiser state(s) before the first update."""
        ...

    def update(
        self,
        params: DistralParams,
        opt_state: optax.OptState,
        hp: Hyperparams,
        obs_stats: RunningStats,
        traj: Transition,
        key: jax.Array,
        task_weights: jax.Array | None = None,
        learner_state: Any = (),
    ) -> LearnerOutput: ...


def make_optimizer(config: TrainConfig) -> optax.GradientTransformationExtraArgs:
    """Gradient clipping and Adam's scaling; the (traced) learning rate is applied afterwards.

    Keeping the learning rate out of the optax chain lets it be a traced hyperparameter, so a
    training run can be vmapped over learning rates without recompiling. The clipping is global
    over every task's parameters: one factor for all, so it never reweights the tasks (a task
    out of the objective has zero gradient and adds nothing to the norm). Adam counts steps per
    task (``optimizer.scale_by_task_adam``): its ``update`` takes ``task_weights``.
    """
    stacked = config.resolved.architecture != "shared"
    chain = [optax.clip_by_global_norm(config.max_grad_norm), scale_by_task_adam(stacked)]
    if config.freeze_prior:
        # θ_0's gradient is dropped before clipping, so the clipping factor is the one the
        # trained parameters alone give.
        chain.insert(0, _zero_prior_updates())
    return optax.chain(*chain)


def _zero_prior_updates() -> optax.GradientTransformation:
    """Sets θ_0's updates to zero (``TrainConfig.freeze_prior``)."""

    def update(updates: DistralParams, state, params=None):
        del params
        prior = jax.tree_util.tree_map(jnp.zeros_like, updates.prior)
        return updates.replace(prior=prior), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def gradient_step(
    loss_fn: Callable[[DistralParams], tuple[jax.Array, Metrics]],
    params: DistralParams,
    opt_state: optax.OptState,
    optimizer: optax.GradientTransformationExtraArgs,
    learning_rate: jax.Array,
    task_weights: jax.Array | None = None,
) -> LearnerOutput:
    """One optimiser step on ``loss_fn(params) -> (loss, metrics [N])``; adds ``grad_norm``.

    ``task_weights`` reach the optimiser: a task out of the objective takes no Adam step.
    """
    grads, metrics = jax.grad(loss_fn, has_aux=True)(params)
    grad_norm = optax.tree_utils.tree_norm(grads)
    updates, opt_state = optimizer.update(grads, opt_state, params, task_weights=task_weights)
    updates = jax.tree_util.tree_map(lambda u: -learning_rate * u, updates)
    metrics["grad_norm"] = jnp.broadcast_to(grad_norm, metrics["loss"].shape)
    return LearnerOutput(optax.apply_updates(params, updates), opt_state, metrics)


def policy_outputs(
    networks: DistralNetworks,
    params: DistralParams,
    hp: Hyperparams,
    obs_stats: RunningStats,
    traj: Transition,
    final_values: bool = True,
) -> tuple[Any, Any, jax.Array, jax.Array | None]:
    """``(pi, pi0, v_tm1, v_t)`` on trajectories ``[N, E, T]``.

    ``v_tm1`` = V(obs_t) and ``v_t`` = V(final_obs_t), the value of the state each step reached
    (the true last state where an episode ended), which is what returns bootstrap from (None
    without ``final_values``). Recurrent cores are recomputed along each trajectory from the
    state the rollout acted from at its first step.
    """
    start = jax.tree_util.tree_map(lambda x: x[:, :, 0], traj.core_state)
    out = networks.unroll(
        params,
        obs_stats,
        traj.obs,
        start,
        traj.done,
        hp.column_alpha,
        final_obs=traj.final_obs if final_values else None,
    )
    return out.pi, out.pi0, out.value, out.final_value


def map_trajectories(fn, pi, pi0, v_tm1: jax.Array, v_t: jax.Array, traj: Transition):
    """``fn(pi_t, pi0_t, a_t, r_t, discount_t, done_t, v_tm1, v_t)`` on every trajectory.

    The per-trajectory losses of ``distral_jax.losses`` take their arguments in this order; this
    vmaps one over the environment axis and then the task axis of ``[N, E, T]`` batches.
    """
    batched = jax.vmap(jax.vmap(fn))
    return batched(pi, pi0, traj.action, traj.reward, traj.discount, traj.done, v_tm1, v_t)


def joint_loss(
    loss: jax.Array, metrics: Metrics, task_weights: jax.Array | None = None
) -> tuple[jax.Array, Metrics]:
    """Per-trajectory losses ``[N, E]`` -> the joint objective's loss and metrics ``[N]``.

    Σ over tasks (the joint objective sums the tasks' J_i, docs/maths.md §1), mean over each
    task's environments (a Monte-Carlo average). Every task has the same weight, or, in a
    curriculum, ``task_weights [N]``: 1 for the tasks in the objective so far, 0 for the others.
    """
    per_task = jnp.mean(loss, axis=1)
    total = jnp.sum(per_task if task_weights is None else task_weights * per_task)
    return total, jax.tree_util.tree_map(lambda m: jnp.mean(m, axis=1), metrics)
