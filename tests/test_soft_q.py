"""Tests of the sample-based tabular Distral learner (soft Q-learning with a count-based π0)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distral_jax import tabular
from distral_jax.envs.gridworld import GridWorld, spread_goals
from distral_jax.learners import soft_q

CORRIDOR = """
#######
#.....#
#######
"""


def test_sampled_distral_learns_and_baselines_run():
    env = GridWorld("two_rooms", goals=spread_goals("two_rooms", 4, rooms=[1]))
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    kw = dict(num_updates=240, num_envs=4, eval_every=40, beta=100.0, alpha=0.5)
    out = {m: soft_q.sampled_distral(env, keys, method=m, **kw) for m in soft_q.METHODS}
    res = out["distral"]
    assert res.greedy_returns.shape == (2, 7, 4) and res.env_steps.shape == (7,)
    assert res.sampled_returns.shape == (2, 7, 4)
    assert int(res.env_steps[-1]) == 240 * 4 * 4 * 10
    assert res.Q.shape == (2, 4, 51, 4) and res.log_pi0.shape == (2, 51, 4)
    np.testing.assert_allclose(res.optimal_returns, env.optimal_returns(50), rtol=1e-6)
    # Distral's greedy AND sampling policies reach 90% of the optimum on every task and seed.
    for returns in (res.greedy_returns, res.sampled_returns):
        frac = np.asarray(returns[:, -1] / res.optimal_returns)
        assert frac.min() > 0.9, frac
    np.testing.assert_allclose(jnp.exp(res.log_pi0).sum(-1), 1.0, atol=1e-5)
    # Returns never exceed the optimum.
    for r in out.values():
        assert np.all(np.asarray(r.greedy_returns) <= np.asarray(r.optimal_returns) + 1e-5)
        assert np.all(np.asarray(r.sampled_returns) <= np.asarray(r.optimal_returns) + 1e-5)
    # One table for all tasks in the shared baseline.
    np.testing.assert_array_equal(out["shared"].Q[:, 0], out["shared"].Q[:, 3])
    # One seed (no leading axis) works too, with raw or typed keys alike.
    single = soft_q.sampled_distral(env, keys[0], method="independent", **kw)
    assert single.greedy_returns.shape == (7, 4) and single.Q.shape == (4, 51, 4)
    typed = soft_q.sampled_distral(
        env, jax.random.wrap_key_data(keys[0]), method="independent", **kw
    )
    np.testing.assert_array_equal(typed.Q, single.Q)


def test_independent_soft_q_converges_to_soft_value_iteration_with_time_limits():
    """α = 0 on a deterministic corridor: the sample update's fixed point is exact soft Q.

    Episodes of 3 steps (starts anywhere) are cut by the time limit far more often than they
    reach the goal: treating truncation as termination, or bootstrapping from the next
    episode's first state, moves Q away from the soft-VI solution (by 0.36 and 0.05; the
    correct update converges to about 1e-6).
    """
    env = GridWorld(CORRIDOR, goals=[0, 4])
    # Small β and γ keep every action likely enough to be tried (at β = 3, γ = 0.5 the least
    # likely has probability 0.11): the check covers the whole table.
    beta, gamma = 3.0, 0.5
    res = soft_q.sampled_distral(
        env, jax.random.PRNGKey(1), method="independent", beta=beta, gamma=gamma,
        num_updates=300, num_envs=8, rollout_length=10, episode_length=3, learning_rate=0.5,
        eval_every=100,
    )  # fmt: skip
    m = env.tabular_model()
    uniform = jnp.full((env.num_cells, 4), -np.log(4.0))
    svi = jax.vmap(tabular.soft_value_iteration, in_axes=(0, 0, None, None, None, None))
    Q_exact, _, _ = svi(m.P, m.R, uniform, 0.0, beta, gamma)
    np.testing.assert_allclose(res.Q, Q_exact, atol=1e-4)


def test_needs_one_hot_observations_and_a_known_method():
    keys = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match=r"env: .*one-hot observations"):
        soft_q.sampled_distral(GridWorld("two_rooms", obs="coords"), keys, num_updates=10)
    with pytest.raises(ValueError, match="method"):
        soft_q.sampled_distral(GridWorld("two_rooms"), keys, method="a3c")
