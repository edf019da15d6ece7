"""Acting: the episode loop (returns cut at episode ends, recording) and the random policy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from distral_jax import acting
from distral_jax.envs.bandit import MultiTaskBandit
from distral_jax.envs.gridworld import GridWorld

CORRIDOR = """
#######
#.....#
#######
"""


def test_run_episodes_counts_each_episode_once_and_records_states():
    # Goals at the right end and one cell before it; "always right" from the left end takes
    # 4 and 3 steps. Steps after the goal (absorbing, reward 0) must not count.
    env = GridWorld(CORRIDOR, goals=[(1, 5), (1, 4)], start=[(1, 1)], step_reward=-0.1)
    right = lambda obs, key: jnp.ones(obs.shape[:-1], jnp.int32)
    episodes = jax.jit(
        lambda k: acting.run_episodes(env, right, env.tasks(), k, 3, 8, record=True)
    )(jax.random.PRNGKey(0))
    np.testing.assert_allclose(episodes.returns[0], [1.0 - 0.3] * 3, rtol=1e-6)
    np.testing.assert_allclose(episodes.returns[1], [1.0 - 0.2] * 3, rtol=1e-6)
    np.testing.assert_allclose(episodes.success, np.ones((2, 3)))
    assert episodes.done.shape == (8, 2, 3)
    np.testing.assert_allclose(episodes.done[3, 0], 1.0)  # the fourth step reaches goal 0
    np.testing.assert_array_equal(episodes.pipeline_states.cell[3, 0], env.goal_cells[0])


def test_time_limit_cuts_episodes():
    env = GridWorld(CORRIDOR, goals=[(1, 5)], start=[(1, 1)], step_reward=-0.1)
    left = lambda obs, key: jnp.full(obs.shape[:-1], 3, jnp.int32)
    episodes = acting.run_episodes(env, left, env.tasks(), jax.random.PRNGKey(0), 2, 6)
    np.testing.assert_allclose(episodes.returns, np.full((1, 2), -0.6), rtol=1e-6)
    np.testing.assert_allclose(episodes.success, np.zeros((1, 2)))


def test_random_policy_covers_the_actions():
    env = MultiTaskBandit(np.array([[1.0, 0.0, 0.5]]))
    actions = acting.random_policy(env)(jnp.ones((1, 3000, 1)), jax.random.PRNGKey(1))
    assert actions.shape == (1, 3000)
    np.testing.assert_allclose(
        np.bincount(np.asarray(actions).ravel()) / 3000, [1 / 3] * 3, atol=0.03
    )
