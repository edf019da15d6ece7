"""Soft actor-critic on the Distral objective: off-policy, from a replay buffer per task.

Each task's optimum under the joint objective J is π_i ∝ π_0^α exp(β Q_i), with Q_i the soft
action value of the regularised reward (docs/maths.md §11); SAC learns Q_i from replayed
transitions and moves π_i towards that optimum. Per iteration (``update``):

  1. the rollout's ``[N, E, T]`` transitions go into each task's ring buffer (``replay``);
  2. ``grad_updates`` gradient steps, each on ``batch_size`` transitions per task sampled
     uniformly from that task's buffer, of
       * the twin critics: ``losses.twin_critic_loss`` to ``losses.soft_bellman_target`` (the
         target critics, the current policies at s');
       * the policies: ``losses.sac_policy_loss`` (π_i's part of J), and π_0's distillation
         ``(α/β) CE(sg π_i, π_0)`` on the same replayed states (θ_0's part of J);
       * with ``auto_temperature``, each task's temperature ``losses.temperature_loss``;
     then a Polyak step of the target critics;
  3. nothing learns before ``warmup_steps`` env steps per task, whose actions are uniformly
     random (``acts_randomly``).

Every loss is Σ_i w_i (mean over task i's batch), the joint objective's weighting: one term per
task, whatever its reward scale; a task of weight 0 (a curriculum) moves no parameter, no Adam
count and no temperature. The critics, the policies (with θ_0) and the temperatures have their
own optimiser states (``SACOptState``): each loss's gradients reach its own parameters only.

The learner's fields are static (they shape the program); the numbers that may vary between
vmapped runs (α, β, γ, the learning rate, the distillation weight) are ``Hyperparams``. The
replay, the target critics and the temperatures are the learner's state (``SACState``), part of
the training state and of its checkpoints.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.sharding import Mesh

from distral_jax import losses, replay, sharding
from distral_jax.acting import Transition
from distral_jax.configs import Hyperparams
from distral_jax.learners.base import LearnerOutput, Metrics
from distral_jax.learners.optimizer import scale_by_task_adam
from distral_jax.networks import DistralNetworks, DistralParams
from distral_jax.normalization import RunningStats

PyTree = Any


class SACOptState(NamedTuple):
    """Optimiser states of SAC's three losses, each over its own parameters (``DistralParams``
    with the others' fields empty): the policies (θ_0 and θ_i), the critics, the temperatures."""

    policy: optax.OptState
    critic: optax.OptState
    temperature: optax.OptState


@struct.dataclass
class SACState:
    """What SAC carries between updates.

    Attributes:
      replay: every task's buffer (``distral_jax.replay``), leaves ``[N, 1, capacity, ...]``.
      target: the target critics, shaped like ``DistralParams.value``.
      log_temperature_scale: ``[N]`` log of each task's temperature over the configured 1/β
        (β_i = β · exp(−scale_i)); learnt with ``auto_temperature``, else 0.
      env_steps: env steps per task stored so far (int32; warm-up and learning start).
    """

    replay: replay.BufferState
    target: PyTree
    log_temperature_scale: jax.Array
    env_steps: jax.Array


def _actor(params: DistralParams) -> DistralParams:
    return DistralParams(prior=params.prior, task=params.task, value=())


def _critic(value: PyTree) -> DistralParams:
    return DistralParams(prior=(), task=(), value=value)


def _temperature(scale: jax.Array) -> DistralParams:
    return DistralParams(prior=(), task=scale, value=())


def _weighted(per_task: jax.Array, task_weights: jax.Array | None) -> jax.Array:
    """Σ_i w_i L_i (every w_i = 1 without a curriculum)."""
    return jnp.sum(per_task if task_weights is None else task_weights * per_task)


def _step(optimizer, grads, opt_state, params, learning_rate, task_weights):
    updates, opt_state = optimizer.update(grads, opt_state, params, task_weights=task_weights)
    updates = jax.tree_util.tree_map(lambda u: -learning_rate * u, updates)
    return optax.apply_updates(params, updates), opt_state


@dataclasses.dataclass(frozen=True)
class SAC:
    """Soft actor-critic; its fields are static (they shape the program).

    Attributes:
      networks: policies and twin critics (``critic="twin_q"``).
      optimizer: the gradient transformation of the policies and of the critics
        (``learners.make_optimizer``: global clipping over every task's gradients, per-task Adam).
      num_tasks: N.
      capacity: transitions kept per task (``TrainConfig.replay_capacity``).
      items_per_iteration: transitions per task per update (num_envs × unroll_length).
      batch_size: transitions sampled per task per gradient step.
      grad_updates: gradient steps per update.
      warmup_steps: env steps per task, of uniformly random actions, before learning.
      tau: the target critics' Polyak factor per gradient step.
      auto_temperature: learn each task's β towards ``target_entropy``.
      target_entropy: H̄ of ``losses.temperature_loss``; None: ``default_target_entropy``.
    """

    networks: DistralNetworks
    optimizer: optax.GradientTransformationExtraArgs
    num_tasks: int
    capacity: int
    items_per_iteration: int
    batch_size: int
    grad_updates: int
    warmup_steps: int
    tau: float
    auto_temperature: bool
    target_entropy: float | None = None

    @property
    def buffer(self) -> replay.Buffer:
        return replay.make_buffer(self.capacity, self.batch_size, self.items_per_iteration)

    @property
    def temperature_optimizer(self) -> optax.GradientTransformationExtraArgs:
        # Per-task step counts whatever the architecture: every temperature is its task's own.
        return scale_by_task_adam(stacked=True)

    @property
    def transition_bytes(self) -> int:
        n = self.networks
        return replay.transition_bytes(n.observation_shape, n.action_size, n.discrete)

    # ------------------------------------------------------------------------- state

    def init_opt_state(self, params: DistralParams) -> SACOptState:
        return SACOptState(
            policy=self.optimizer.init(_actor(params)),
            critic=self.optimizer.init(_critic(params.value)),
            temperature=self.temperature_optimizer.init(
                _temperature(jnp.zeros((self.num_tasks,), jnp.float32))
            ),
        )

    def init_state(self, num_tasks: int, params: DistralParams) -> SACState:
        """Empty buffers, target critics equal to the critics, the configured temperatures."""
        n = self.networks
        item = replay.empty_item(n.observation_shape, n.action_size, n.discrete)
        return SACState(
            replay=replay.init(self.buffer, item, num_tasks),
            target=params.value,
            log_temperature_scale=jnp.zeros((num_tasks,), jnp.float32),
            env_steps=jnp.zeros((), jnp.int32),
        )

    def acts_randomly(self, state: SACState) -> jax.Array:
        """Whether the next rollout's actions are uniformly random (still warming up)."""
        return state.env_steps < self.warmup_steps

    def learned_state(self, state: SACState) -> PyTree:
        """The learnt part of the state (what a non-finite check looks at): not the replay,
        which holds the environments' data and is the bulk of the memory."""
        return (state.target, state.log_temperature_scale)

    def state_shardings(self, mesh: Mesh, state: SACState, per_task_params: bool) -> SACState:
        """The buffers and temperatures split over ``tasks`` like the environments; the target
        critics like the critics."""
        return SACState(
            replay=sharding.tree_sharding(mesh, state.replay, per_task=True),
            target=sharding.tree_sharding(mesh, state.target, per_task_params),
            log_temperature_scale=sharding.leaf_sharding(mesh, per_task=True),
            env_steps=sharding.leaf_sharding(mesh, per_task=False),
        )

    def betas(self, hp: Hyperparams, state: SACState) -> jax.Array:
        """``[N]`` each task's inverse temperature β_i."""
        return hp.beta * jnp.exp(-state.log_temperature_scale)

    # ------------------------------------------------------------------------- losses

    def _q_taken(self, value: PyTree, obs_stats: RunningStats, batch: replay.Item) -> jax.Array:
        """``[N, B, K]`` the critics at the stored actions."""
        if self.networks.discrete:
            q = self.networks.q_values(value, obs_stats, batch.obs)  # [N, B, K, A]
            index = jnp.broadcast_to(batch.action[:, :, None, None], q.shape[:-1] + (1,))
            return jnp.take_along_axis(q, index, axis=-1)[..., 0]
        return self.networks.q_values(value, obs_stats, batch.obs, batch.action)

    def _q_policy(self, value, obs_stats, obs, pi, key):
        """``(q, a)``: the critics at actions of π_i, and the actions: every action's value and
        None for discrete policies; a reparameterised sample (pre-squash) otherwise."""
        dist = self.networks.dist
        if dist.discrete:
            return self.networks.q_values(value, obs_stats, obs), None
        a = dist.sample(key, pi)
        return self.networks.q_values(value, obs_stats, obs, dist.postprocess(a)), a

    def targets(self, params, state, hp, obs_stats, batch, key) -> jax.Array:
        """``[N, B]`` the soft Bellman targets of a batch (no gradient)."""
        params = jax.lax.stop_gradient(params)
        pi, pi0, _ = self.networks.policies(params, obs_stats, batch.next_obs, hp.column_alpha)
        q, a = self._q_policy(state.target, obs_stats, batch.next_obs, pi, key)
        target = functools.partial(losses.soft_bellman_target, self.networks.dist)
        return jax.vmap(target, in_axes=(0, 0, 0, 0, 0, 0, None, 0))(
            batch.reward, batch.discount, q, pi, pi0, a, hp.alpha, self.betas(hp, state)
        )

    def critic_loss(self, value, params, state, hp, obs_stats, batch, key, task_weights):
        """Σ_i w_i (task i's twin critic loss); metrics ``[N]``."""
        y = self.targets(params, state, hp, obs_stats, batch, key)
        q = self._q_taken(value, obs_stats, batch)
        per_task = jax.vmap(losses.twin_critic_loss)(q, y)
        metrics = {
            "critic_loss": per_task,
            "q": jnp.mean(jnp.min(q, axis=-1), axis=1),
            "target_q": jnp.mean(y, axis=1),
        }
        return _weighted(per_task, task_weights), metrics

    def policy_loss(self, actor, params, state, hp, obs_stats, batch, key, task_weights):
        """Σ_i w_i (π_i's loss + distill_coef · (α/β_i) CE(sg π_i, π_0)) on replayed states;
        metrics ``[N]``, with ``regularized_entropy`` for the temperatures."""
        dist = self.networks.dist
        full = DistralParams(prior=actor.prior, task=actor.task, value=params.value)
        pi, pi0, _ = self.networks.policies(full, obs_stats, batch.obs, hp.column_alpha)
        value = jax.lax.stop_gradient(params.value)
        q, a = self._q_policy(value, obs_stats, batch.obs, pi, key)
        beta = self.betas(hp, state)
        policy = jax.vmap(
            functools.partial(losses.sac_policy_loss, dist), in_axes=(0, 0, 0, 0, None, 0)
        )(pi, pi0, q, a, hp.alpha, beta)
        ones = jnp.ones(batch.reward.shape[1:], jnp.float32)
        cross_entropy = jax.vmap(lambda p, p0: losses.distillation_loss(p, p0, ones, dist))(pi, pi0)
        distill = (hp.alpha / beta) * cross_entropy
        per_task = policy + hp.distill_coef * distill
        metrics = {
            "policy_loss": policy,
            "distill_loss": distill,
            "entropy": jnp.mean(dist.entropy(pi), axis=1),
            "entropy_pi0": jnp.mean(dist.entropy(pi0), axis=1),
            "kl": jnp.mean(dist.kl(pi, pi0), axis=1),
            "regularized_entropy": self._regularized_entropy(pi, pi0, a, hp.alpha),
        }
        return _weighted(per_task, task_weights), jax.lax.stop_gradient(metrics)

    def _regularized_entropy(self, pi, pi0, a, alpha) -> jax.Array:
        """``[N, B]`` H_t = E_{π_i}[−log π_i + α log π_0] at each state (exact for categoricals,
        at the sampled action otherwise)."""
        dist = self.networks.dist
        if dist.discrete:
            log_pi = jax.nn.log_softmax(pi, axis=-1)
            log_pi0 = losses.scaled_log_prior(jax.nn.log_softmax(pi0, axis=-1), alpha)
            return jnp.sum(jnp.exp(log_pi) * (log_pi0 - log_pi), axis=-1)
        return losses.scaled_log_prior(dist.log_prob(pi0, a), alpha) - dist.log_prob(pi, a)

    # ------------------------------------------------------------------------- steps

    def gradient_step(self, carry, key, hp, obs_stats, replay_state, task_weights):
        """One step of the critics, the policies, the temperatures and the target critics, all
        from the same parameters; ``carry = (params, opt_state, state)``."""
        params, opt_state, state = carry
        k_batch, k_next, k_pi = jax.random.split(key, 3)
        batch = replay.sample(self.buffer, replay_state, k_batch)
        args = (params, state, hp, obs_stats, batch)
        critic_grads, critic_metrics = jax.grad(self.critic_loss, has_aux=True)(
            params.value, *args, k_next, task_weights
        )
        actor = _actor(params)
        actor_grads, policy_metrics = jax.grad(self.policy_loss, has_aux=True)(
            actor, *args, k_pi, task_weights
        )
        lr = hp.learning_rate
        actor, policy_opt = _step(
            self.optimizer, actor_grads, opt_state.policy, actor, lr, task_weights
        )
        critic, critic_opt = _step(
            self.optimizer, _critic(critic_grads), opt_state.critic, _critic(params.value), lr,
            task_weights,
        )  # fmt: skip
        scale, temperature_opt = state.log_temperature_scale, opt_state.temperature
        if self.auto_temperature:
            scale, temperature_opt = self._temperature_step(
                scale, hp, policy_metrics["regularized_entropy"], temperature_opt, task_weights
            )
        # target + τ (critic − target): exactly the target where the critic did not move.
        target = jax.tree_util.tree_map(
            lambda t, c: t + self.tau * (c - t), state.target, critic.value
        )
        params = DistralParams(prior=actor.prior, task=actor.task, value=critic.value)
        state = state.replace(target=target, log_temperature_scale=scale)
        metrics = {**critic_metrics, **policy_metrics}
        metrics["regularized_entropy"] = jnp.mean(metrics["regularized_entropy"], axis=1)
        metrics["grad_norm"] = jnp.broadcast_to(
            optax.tree_utils.tree_norm((actor_grads, critic_grads)), (self.num_tasks,)
        )
        return (params, SACOptState(policy_opt, critic_opt, temperature_opt), state), metrics

    def default_target_entropy(self, alpha: jax.Array) -> jax.Array:
        """−D for D continuous action dimensions; ½ (1 − α) log A for A actions, half the most
        that H_t = (1 − α) H(π_i) − α KL(π_i‖π_0) can be (docs/maths.md §11), so that every α
        has a reachable target (½ log A would push the temperature up without end for α ≥ ½)."""
        if self.networks.discrete:
            return 0.5 * (1.0 - alpha) * jnp.log(float(self.networks.action_size))
        return jnp.asarray(-float(self.networks.action_size))

    def _temperature_step(self, scale, hp, regularized_entropy, opt_state, task_weights):
        log_temperature = -jnp.log(hp.beta)
        target_entropy = self.target_entropy
        if target_entropy is None:
            target_entropy = self.default_target_entropy(hp.alpha)

        def loss(s: DistralParams) -> jax.Array:
            per_task = jax.vmap(losses.temperature_loss, in_axes=(0, 0, None))(
                log_temperature + s.task, regularized_entropy, target_entropy
            )
            return _weighted(per_task, task_weights)

        grads = jax.grad(loss)(_temperature(scale))
        new, opt_state = _step(
            self.temperature_optimizer, grads, opt_state, _temperature(scale), hp.learning_rate,
            task_weights,
        )  # fmt: skip
        return new.task, opt_state

    def update(
        self,
        params: DistralParams,
        opt_state: SACOptState,
        hp: Hyperparams,
        obs_stats: RunningStats,
        traj: Transition,
        key: jax.Array,
        task_weights: jax.Array | None = None,
        learner_state: SACState | None = None,
    ) -> LearnerOutput:
        """Stores the rollout ``[N, E, T]``, then ``grad_updates`` gradient steps once the
        warm-up is over (before it, only the buffers change)."""
        state = learner_state
        new_items = replay.items(traj, self.networks.dist.postprocess)
        replay_state = replay.add(self.buffer, state.replay, new_items)
        state = state.replace(replay=(), env_steps=state.env_steps + self.items_per_iteration)
        step = functools.partial(
            self.gradient_step,
            hp=hp,
            obs_stats=obs_stats,
            replay_state=replay_state,
            task_weights=task_weights,
        )
        keys = jax.random.split(key, self.grad_updates)
        (new_params, new_opt, new_state), per_step = jax.lax.scan(
            step, (params, opt_state, state), keys
        )
        # Before the warm-up ends nothing moves; the replay stays out of this select (a copy of
        # the whole buffer per iteration).
        learn = state.env_steps >= self.warmup_steps
        keep = lambda new, old: jax.tree_util.tree_map(
            lambda a, b: jnp.where(learn, a, b), new, old
        )
        params, opt_state, state = keep(
            (new_params, new_opt, new_state), (params, opt_state, state)
        )
        metrics: Metrics = jax.tree_util.tree_map(lambda m: jnp.mean(m, axis=0), per_step)
        metrics["loss"] = metrics["critic_loss"] + metrics["policy_loss"]
        metrics["temperature"] = 1.0 / self.betas(hp, state)
        metrics["replay_fill"] = replay.filled(replay_state) / self.capacity
        return LearnerOutput(params, opt_state, metrics, state.replace(replay=replay_state))
