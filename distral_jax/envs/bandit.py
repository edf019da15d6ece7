"""A one-state multitask bandit: the smallest task family, with a known Distral fixed point.

Every episode is one step: the agent sees a constant observation, picks one of A arms, gets
``rewards[i, a]`` in task i and the episode terminates. With one state visited once per episode,
the joint objective's optimum is the fixed point of

    π_i ∝ π_0^α exp(β r_i),        π_0 = (1/N) Σ_i π_i,

which ``distral_fixed_point`` computes by alternating the two equations (each step increases
the joint objective, as in the tabular case).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from distral_jax.envs.base import State, TaskFamily


@struct.dataclass
class BanditTask:
    """rewards: float32 ``[A]`` (stacked: ``[N, A]``), the arms' deterministic rewards."""

    rewards: jax.Array


class MultiTaskBandit(TaskFamily):
    """N bandit tasks over the same A arms.

    Args:
      rewards: ``[N, A]`` reward of each arm in each task (finite).
    """

    def __init__(self, rewards):
        rewards = np.asarray(rewards, np.float32)
        if rewards.ndim != 2 or rewards.shape[0] < 1 or rewards.shape[1] < 2:
            raise ValueError(
                f"`rewards` must have shape [num_tasks >= 1, num_arms >= 2], got {rewards.shape}"
            )
        if not np.isfinite(rewards).all():
            raise ValueError("`rewards` must be finite")
        self._rewards = rewards

    @property
    def num_tasks(self) -> int:
        return self._rewards.shape[0]

    @property
    def observation_size(self) -> int:
        return 1

    @property
    def action_size(self) -> int:
        return self._rewards.shape[1]

    @property
    def discrete(self) -> bool:
        return True

    def tasks(self) -> BanditTask:
        return BanditTask(rewards=jnp.asarray(self._rewards))

    def reset(self, rng: jax.Array, task: BanditTask) -> State:
        del rng, task
        zero = jnp.zeros((), jnp.float32)
        return State(pipeline_state=zero, obs=jnp.ones((1,), jnp.float32), reward=zero, done=zero)

    def step(self, state: State, action: jax.Array, task: BanditTask) -> State:
        reward = task.rewards[jnp.asarray(action, jnp.int32)]
        return state.replace(reward=reward, done=jnp.ones((), jnp.float32))


def distral_fixed_point(
    rewards: np.ndarray, alpha: float, beta: float, iterations: int = 10_000
) -> tuple[np.ndarray, np.ndarray]:
    """The optimal ``(pi [N, A], pi0 [A])`` of the one-state Distral objective (float64).

    Iterates π_i ∝ π_0^α exp(β r_i), π_0 = mean_i π_i to convergence (docs/maths.md §8). Plain
    numpy on purpose: the tests hold the learners to this oracle, which shares no code with them.
    """
    rewards = np.asarray(rewards, np.float64)
    log_pi0 = np.full(rewards.shape[1], -np.log(rewards.shape[1]))
    for _ in range(iterations):
        logits = alpha * log_pi0 + beta * rewards
        pi = np.exp(logits - logits.max(axis=1, keepdims=True))
        pi /= pi.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore"):  # α = 1 can drive arms to exactly 0
            new = np.log(pi.mean(axis=0))
        if np.allclose(new, log_pi0, rtol=0.0, atol=1e-13, equal_nan=True):
            break
        log_pi0 = new
    return pi, np.exp(log_pi0)
