"""Cue recall: the smallest task family that needs memory.

An episode is ``delay + 2`` steps. The first observation shows one of K cues; then ``delay``
blank observations; then a "decide" observation, where the action is scored: task i pays 1 for
the action ``(cue + shift_i) mod K`` and 0 otherwise, and the episode terminates. Actions before
the decision are ignored.

The decide observation is the same whatever the cue, so a feed-forward policy can do no better
than chance (expected return 1/K), while a policy that carries the cue in its state can reach
1. The tasks share the memory problem and differ in the mapping from cue to action, so π_0 can
distil the memory but not the answer.

Observations are one-hot vectors over ``[cue_0, ..., cue_{K-1}, blank, decide]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from distral_jax.envs.base import State, TaskFamily


@struct.dataclass
class CueRecallTask:
    """shift: int32 scalar (stacked: ``[N]``), the task's cue-to-action offset."""

    shift: jax.Array


@struct.dataclass
class CueRecallState:
    """step: float32 steps taken in the episode; cue: int32 cue shown at the start."""

    step: jax.Array
    cue: jax.Array


class CueRecall(TaskFamily):
    """N cue-recall tasks over K cues and K actions.

    Args:
      num_tasks: N; task i answers cue c with action ``(c + i) mod K``.
      num_cues: K >= 2, the cues and the actions.
      delay: blank steps between the cue and the decision (>= 0).
    """

    def __init__(self, num_tasks: int = 2, num_cues: int = 2, delay: int = 2):
        for name, value, low in (("num_tasks", num_tasks, 1), ("num_cues", num_cues, 2)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}")
        if isinstance(delay, bool) or not isinstance(delay, (int, np.integer)) or delay < 0:
            raise ValueError(f"`delay` must be an integer >= 0, got {delay!r}")
        self._num_tasks, self.num_cues, self.delay = int(num_tasks), int(num_cues), int(delay)

    @property
    def num_tasks(self) -> int:
        return self._num_tasks

    @property
    def observation_size(self) -> int:
        return self.num_cues + 2

    @property
    def action_size(self) -> int:
        return self.num_cues

    @property
    def discrete(self) -> bool:
        return True

    @property
    def one_hot_observations(self) -> bool:
        return True

    @property
    def episode_length(self) -> int:
        """Steps of every episode (it terminates at the decision)."""
        return self.delay + 2

    def tasks(self) -> CueRecallTask:
        return CueRecallTask(shift=jnp.arange(self._num_tasks, dtype=jnp.int32) % self.num_cues)

    def _obs(self, index: jax.Array) -> jax.Array:
        return jax.nn.one_hot(index, self.observation_size, dtype=jnp.float32)

    def reset(self, rng: jax.Array, task: CueRecallTask) -> State:
        del task
        cue = jax.random.randint(rng, (), 0, self.num_cues)
        zero = jnp.zeros((), jnp.float32)
        return State(
            pipeline_state=CueRecallState(step=zero, cue=cue),
            obs=self._obs(cue),
            reward=zero,
            done=zero,
            metrics={"success": zero},
        )

    def step(self, state: State, action: jax.Array, task: CueRecallTask) -> State:
        inner = state.pipeline_state
        deciding = inner.step >= self.delay + 1
        correct = jnp.asarray(action, jnp.int32) == (inner.cue + task.shift) % self.num_cues
        reward = jnp.where(deciding & correct, 1.0, 0.0).astype(jnp.float32)
        step = inner.step + 1.0
        blank, decide = self.num_cues, self.num_cues + 1
        obs = self._obs(jnp.where(step >= self.delay + 1, decide, blank))
        return state.replace(
            pipeline_state=inner.replace(step=step),
            obs=obs,
            reward=reward,
            done=deciding.astype(jnp.float32),
            metrics={"success": reward},
        )
