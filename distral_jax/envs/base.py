"""The multitask environment protocol.

A *task family* is one environment whose reset and step also take a task: a pytree of task
parameters (a goal cell, a target velocity, a mass scale, ...). The family exposes all of its
tasks as one pytree with a leading axis of size ``num_tasks``; trainers ``vmap`` over that axis
alongside the environment state, so no Python loop over tasks is ever needed.

The state is Brax's: ``obs``, ``reward``, ``done``, ``metrics``, ``info`` and an opaque
``pipeline_state``. Wrappers only touch those fields, so a Brax ``State`` flows through them
unchanged and a Brax ``Env`` becomes a family by wrapping it (see ``distral_jax.envs.brax_tasks``).

Conventions (shared with Brax):
  * ``done`` is 1.0 when the episode ended on this step, by termination or by truncation;
  * ``info["truncation"]`` is 1.0 when it ended only because of the time limit, in which case
    the learner bootstraps from the value of the final observation;
  * scalars are float32 so that the state is a homogeneous pytree under ``vmap``.
"""

from __future__ import annotations

import abc
from typing import Any

import jax
import numpy as np
from flax import struct

PyTree = Any


@struct.dataclass
class State:
    """Environment state of one environment of one task (Brax-compatible field names).

    Attributes:
      pipeline_state: environment-specific dynamics state.
      obs: observation, shape ``observation_shape`` (``[observation_size]`` when flat).
      reward: scalar float32 reward of the last transition.
      done: scalar float32, 1.0 if the last transition ended the episode.
      metrics: dict of scalar diagnostics.
      info: dict of auxiliary values (``truncation``, ``steps``, ``rng`` ...).
    """

    pipeline_state: PyTree
    obs: jax.Array
    reward: jax.Array
    done: jax.Array
    metrics: dict[str, jax.Array] = struct.field(default_factory=dict)
    info: dict[str, Any] = struct.field(default_factory=dict)


class TaskFamily(abc.ABC):
    """A family of tasks sharing observation and action spaces.

    Subclasses implement ``reset``/``step`` for ONE environment and ONE task; batching over
    environments and tasks is done by the caller with ``jax.vmap`` (see ``batch_reset`` and
    ``batch_step``).
    """

    @property
    @abc.abstractmethod
    def num_tasks(self) -> int:
        """Number of tasks N."""

    @property
    @abc.abstractmethod
    def observation_size(self) -> int:
        """Length of the flat observation vector."""

    @property
    @abc.abstractmethod
    def action_size(self) -> int:
        """Number of discrete actions, or the dimension of a continuous action."""

    @property
    @abc.abstractmethod
    def discrete(self) -> bool:
        """True for categorical actions (int32 scalars), False for continuous in [-1, 1]."""

    @abc.abstractmethod
    def tasks(self) -> PyTree:
        """All task parameters as one pytree whose leaves have a leading axis of size N."""

    @abc.abstractmethod
    def reset(self, rng: jax.Array, task: PyTree) -> State:
        """Starts an episode of one task (``task`` is one slice of ``tasks()``)."""

    @abc.abstractmethod
    def step(self, state: State, action: jax.Array, task: PyTree) -> State:
        """Advances one environment of one task by one step."""

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """Shape of one observation: ``(observation_size,)`` for flat vectors (the default),
        ``(H, W, C)`` for image-like observations, which networks read through a conv torso."""
        return (self.observation_size,)

    @property
    def observation_vocabulary(self) -> int | None:
        """For ``(H, W, C)`` observations of integer ids (a grid's tile and colour per cell):
        one more than the largest id, so that networks embed each channel's ids; ``None`` for
        observations that are numbers (the default)."""
        return None

    @property
    def one_hot_observations(self) -> bool:
        """True if every observation is a one-hot vector (networks may then embed it)."""
        return False

    @property
    def fresh_starts(self) -> bool:
        """How training restarts an environment whose episode ended (``wrappers.AutoReset``):
        from a new start drawn by ``reset`` (True, the default), or from that environment's first
        start state (False: Brax's convention, for families whose ``reset`` is costly to compile
        into every training step)."""
        return True

    @property
    def host_simulated(self) -> bool:
        """True for a family whose simulator lives outside JAX (``envs.envpool_tasks``): it
        restarts its own episodes, at termination and at its ``episode_length`` (the only time
        limit it accepts), so ``AutoReset`` never calls its ``reset`` inside a step; its state
        cannot be restored from a checkpoint (a resumed run restarts its episodes) nor split
        over a device mesh. False (the default) for families written in JAX."""
        return False

    @property
    def task_ids(self) -> np.ndarray:
        """``[N]`` each task's index in the family its tasks were drawn from: ``arange(N)``, or
        the original indices for a subset (``wrappers.TaskSubset``)."""
        return np.arange(self.num_tasks)

    @property
    def num_task_ids(self) -> int:
        """Size of the task-id space (``task_ids`` are below it). A network that reads a task id
        (the shared architecture's one-hot) is sized for it, so that one trained on some tasks
        of a family can be fine-tuned on others, each keeping its own id."""
        return self.num_tasks

    @property
    def unwrapped(self) -> TaskFamily:
        return self


def task_slice(tasks: PyTree, i: int) -> PyTree:
    """Task ``i`` of a stacked task pytree."""
    return jax.tree_util.tree_map(lambda x: x[i], tasks)


def batch_reset(env: TaskFamily, rng: jax.Array, tasks: PyTree) -> State:
    """Resets ``[N, E]`` environments: ``rng`` has shape ``[N, E, 2]`` (or typed ``[N, E]``)."""
    per_task = jax.vmap(env.reset, in_axes=(0, None))
    return jax.vmap(per_task, in_axes=(0, 0))(rng, tasks)


def batch_step(env: TaskFamily, state: State, action: jax.Array, tasks: PyTree) -> State:
    """Steps ``[N, E]`` environments; ``action`` has leading axes ``[N, E]``."""
    per_task = jax.vmap(env.step, in_axes=(0, 0, None))
    return jax.vmap(per_task, in_axes=(0, 0, 0))(state, action, tasks)
