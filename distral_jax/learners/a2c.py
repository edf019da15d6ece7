"""Advantage actor-critic on the Distral objective (the paper's learner, synchronous).

One gradient step per rollout on the joint loss Σ_i mean_e L_i(trajectory e of task i), with
``losses.distral_actor_critic_loss`` vmapped over environments and tasks. Steps are weighted
uniformly, not by γ^t: π_0 is fitted to the tasks' per-step visitation (docs/maths.md §7).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
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


@dataclasses.dataclass(frozen=True)
class A2C:
    """Synchronous advantage actor-critic; its fields are static (they shape the program).

    Attributes:
      networks: the policies and values.
      optimizer: the gradient transformation (``learners.make_optimizer``).
      regularizer: ``"analytic"`` or ``"sampled"`` estimator of the KL and entropy terms.
    """

    networks: DistralNetworks
    optimizer: optax.GradientTransformation
    regularizer: Regularizer

    def loss(
        self,
        params: DistralParams,
        hp: Hyperparams,
        obs_stats: RunningStats,
        traj: Transition,
        task_weights: jax.Array | None = None,
    ) -> tuple[jax.Array, Metrics]:
        """The joint loss on trajectories ``[N, E, T]``; metrics averaged to ``[N]``."""
        pi, pi0, v_tm1, v_t = policy_outputs(self.networks, params, hp, obs_stats, traj)
        loss_fn = functools.partial(
            losses.distral_actor_critic_loss,
            self.networks.dist,
            alpha=hp.alpha,
            beta=hp.beta,
            lambda_=hp.lambda_,
            regularizer=self.regularizer,
            value_coef=hp.value_coef,
            distill_coef=hp.distill_coef,
        )
        per_trajectory = map_trajectories(loss_fn, pi, pi0, v_tm1, v_t, traj)
        return joint_loss(*per_trajectory, task_weights)

    def init_state(self, num_tasks: int, params: DistralParams | None = None) -> tuple:
        """A2C carries nothing between updates."""
        del num_tasks, params
        return ()

    def init_opt_state(self, params: DistralParams) -> optax.OptState:
        return self.optimizer.init(params)

    def update(
        self,
        params: DistralParams,
        opt_state: optax.OptState,
        hp: Hyperparams,
        obs_stats: RunningStats,
        traj: Transition,
        key: jax.Array,
        task_weights: jax.Array | None = None,
        learner_state: tuple = (),
    ) -> LearnerOutput:
        """One gradient step on a batch of trajectories ``[N, E, T]`` (``key`` is unused)."""
        del key
        loss_fn = lambda p: self.loss(p, hp, obs_stats, traj, task_weights)
        return gradient_step(
            loss_fn, params, opt_state, self.optimizer, hp.learning_rate, task_weights
        )._replace(learner_state=learner_state)
