"""Episodes of any policy in a task family: the one episode loop of the package.

``run_episodes`` plays one episode per environment of every task with a policy given as a
function ``policy(obs [N, E, O], key) -> action``: the networks' policies (evaluation in
``distral_jax.acting``), a family's scripted controllers (reference returns), uniformly random
actions (``random_policy``, the baseline the studies plot), or a trained policy recorded for
rendering. It is environment code: it needs no networks, so families can use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from distral_jax.envs.base import PyTree, State, TaskFamily, batch_reset, batch_step
from distral_jax.envs.wrappers import EpisodeLimit

Policy = Callable[[jax.Array, jax.Array], jax.Array]
# A policy with memory: ``policy(obs, state, key) -> (action, state)``.
RecurrentPolicy = Callable[[jax.Array, Any, jax.Array], tuple[jax.Array, Any]]


def success_of(state: State) -> jax.Array:
    """The family's ``metrics["success"]``; NaN for families that define no success."""
    if "success" in state.metrics:
        return state.metrics["success"].astype(jnp.float32)
    return jnp.full_like(state.reward, jnp.nan)


class Episodes(NamedTuple):
    """Outcome of ``run_episodes``.

    Attributes:
      returns: ``[N, E]`` undiscounted return of each episode (steps after its end ignored).
      success: ``[N, E]`` 1 where the episode ended in success (NaN if the family defines none).
      pipeline_states: with ``record``, the states after each step, leaves ``[T, N, E, ...]``.
      done: with ``record``, ``[T, N, E]`` 1 where the episode ended at that step.
    """

    returns: jax.Array
    success: jax.Array
    pipeline_states: Any = None
    done: jax.Array | None = None


def run_episodes(
    env: TaskFamily,
    policy: Policy | RecurrentPolicy,
    tasks: PyTree,
    key: jax.Array,
    num_envs: int,
    episode_length: int,
    record: bool = False,
    policy_state: PyTree = None,
) -> Episodes:
    """One episode (at most ``episode_length`` steps) in each of ``num_envs`` envs per task.

    Args:
      env: the unwrapped family (the time limit is added here).
      policy: ``policy(obs [N, E, ...], key) -> action [N, E, ...]`` as the environment takes
        it; with ``policy_state``, a recurrent ``policy(obs, state, key) -> (action, state)``.
      tasks: task parameters, leading axis N.
      key: PRNG key (resets and the policy's keys are split from it).
      num_envs: E, episodes per task.
      episode_length: the time limit.
      record: also return the states after every step (for rendering).
      policy_state: a recurrent policy's state at the start of the episodes (leaves ``[N, E,
        ...]``); default, for a policy with an ``initial_state`` (the recurrent policies of
        ``acting.make_policy`` and ``checkpoint.load_policy``), ``policy.initial_state((N, E))``.
    Returns:
      ``Episodes``.
    """
    limited = EpisodeLimit(env, episode_length)
    reset_key, step_key = jax.random.split(key)
    num_tasks = jax.tree_util.tree_leaves(tasks)[0].shape[0]
    state = batch_reset(limited, jax.random.split(reset_key, (num_tasks, num_envs)), tasks)

    if policy_state is None and hasattr(policy, "initial_state"):  # ``acting.make_policy``'s
        policy_state = policy.initial_state((num_tasks, num_envs))
    recurrent = policy_state is not None

    def step(carry, k):
        state, memory, ret, success, alive = carry
        if recurrent:
            action, memory = policy(state.obs, memory, k)
        else:
            action = policy(state.obs, k)
        nxt = batch_step(limited, state, action, tasks)
        ret = ret + alive * nxt.reward
        success = success + alive * (success_of(nxt) * nxt.done)
        alive = alive * (1.0 - nxt.done)
        trace = (nxt.pipeline_state, nxt.done) if record else None
        return (nxt, memory, ret, success, alive), trace

    zeros = jnp.zeros((num_tasks, num_envs))
    carry = (state, policy_state, zeros, zeros, jnp.ones((num_tasks, num_envs)))
    keys = jax.random.split(step_key, episode_length)
    (_, _, ret, success, _), trace = jax.lax.scan(step, carry, keys)
    if record:
        return Episodes(ret, success, pipeline_states=trace[0], done=trace[1])
    return Episodes(ret, success)


def random_policy(env: TaskFamily) -> Policy:
    """Uniform actions: in ``[-1, 1]^D`` for continuous families, over the actions otherwise."""

    def policy(obs: jax.Array, key: jax.Array) -> jax.Array:
        batch = obs.shape[: obs.ndim - len(env.observation_shape)]
        if env.discrete:
            return jax.random.randint(key, batch, 0, env.action_size)
        return jax.random.uniform(key, batch + (env.action_size,), minval=-1, maxval=1)

    return policy
