"""Tests of the multitask grid world: layouts, validation, dynamics against the exact model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distral_jax.envs.base import batch_reset, batch_step, task_slice
from distral_jax.envs.gridworld import (
    LAYOUTS,
    GridState,
    GridWorld,
    get_layout,
    parse_layout,
    spread_goals,
)
from distral_jax.envs.wrappers import wrap_for_training


def test_shipped_layouts():
    two = get_layout("two_rooms")
    assert two.num_cells == 51 and two.num_rooms == 2
    assert two.cell_rc[two.doorway].tolist() == [[3, 6]]
    four = get_layout("four_rooms")
    assert four.num_cells == 104 and four.num_rooms == 4
    assert sorted(four.cell_rc[four.doorway].tolist()) == [[3, 6], [6, 2], [7, 9], [10, 6]]
    assert set(LAYOUTS) >= {"two_rooms", "four_rooms"}
    # Moves into walls stay put; the doorway connects the rooms.
    door = two.cell((3, 6))
    assert two.next_cell[door].tolist() == [door, two.cell((3, 7)), door, two.cell((3, 5))]


def test_parse_custom_layout_with_start_cells():
    layout = parse_layout(
        """
        #####
        #S..#
        #.#.#
        #####
        """
    )
    assert layout.shape == (4, 5) and layout.num_cells == 5
    assert layout.start_cells.tolist() == [0]
    env = GridWorld(layout, goals=[(2, 3)])
    d0 = np.asarray(env.tabular_model().d0)
    assert d0[0, 0] == 1.0 and d0.sum() == 1.0


def test_spread_goals_distinct_and_in_rooms():
    layout = get_layout("four_rooms")
    goals = spread_goals(layout, 8, rooms=[1, 3])
    assert len(set(goals)) == 8
    assert set(layout.room[goals].tolist()) == {1, 3}
    assert len(set(spread_goals("two_rooms", 25, rooms=[1]))) == 25


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(layout="#####\n#####"), "no free cell"),
        (dict(layout="#####\n#..#\n#####"), "ragged"),
        (dict(layout="#####\n#.x.#\n#####"), "unknown character"),
        (dict(goals=[(0, 0)]), "goals: .* is a wall"),
        (dict(goals=[(3, 40)]), "goals: .* outside"),
        (dict(goals=[999]), "goals: cell index"),
        (dict(layout="#####\n#.#.#\n#####", goals=[(1, 3)]), "goals: .* unreachable"),
        (dict(slip=1.5), "slip"),
        (dict(slip=[0.1, 0.2, 0.3]), "slip"),
        (dict(obs="pixels"), "obs"),
        (dict(start=[(0, 0)]), "start: .* is a wall"),
        (dict(goals=[(1, 1)], start=[(1, 1)]), "start: task 0 has no start cell"),
        (dict(goal_reward=float("nan")), "goal_reward"),
    ],
)
def test_invalid_configurations_raise(kwargs, match):
    kwargs = {"goals": [(1, 1)], **kwargs}
    with pytest.raises(ValueError, match=match):
        GridWorld(**kwargs)


def test_tabular_model_structure():
    env = GridWorld("two_rooms", goals=[(1, 11), (5, 7)], slip=[0.0, 0.2])
    P, R, d0, terminal = env.tabular_model()
    assert P.shape == (2, 51, 4, 51) and R.shape == (2, 51, 4) and d0.shape == (2, 51)
    rows = np.asarray(P.sum(-1))
    goals = env.goal_cells
    assert np.all(rows[np.arange(2), goals] == 0)  # terminal rows are zero
    mask = np.ones((2, 51), bool)
    mask[np.arange(2), goals] = False
    np.testing.assert_allclose(rows[mask], 1.0, atol=1e-6)
    assert np.asarray(terminal).sum() == 2 and np.all(np.asarray(d0)[np.arange(2), goals] == 0)


def test_sampled_transitions_agree_with_P():
    slip = 0.3
    env = GridWorld("two_rooms", goals=[(3, 8)], slip=slip, goal_reward=2.0, step_reward=-0.1)
    task = task_slice(env.tasks(), 0)
    P, R = np.asarray(env.tabular_model().P[0]), np.asarray(env.tabular_model().R[0])
    S, A, n = env.num_cells, 4, 4000
    cells = jnp.repeat(jnp.arange(S), A * n)
    actions = jnp.tile(jnp.repeat(jnp.arange(A), n), S)
    keys = jax.random.split(jax.random.PRNGKey(0), cells.shape[0])

    @jax.jit
    def one(key, cell, action):
        state = env.reset(key, task)
        state = state.replace(pipeline_state=GridState(cell=cell, rng=state.pipeline_state.rng))
        nxt = env.step(state, action, task)
        return nxt.pipeline_state.cell, nxt.reward, nxt.done

    nxt, reward, done = jax.vmap(one)(keys, cells, actions)
    nxt = np.asarray(nxt).reshape(S, A, n)
    freq = (nxt[..., None] == np.arange(S)).mean(2)  # [S, A, S]
    goal = int(env.goal_cells[0])
    live = np.arange(S) != goal
    # 5 standard deviations of a frequency estimated from n = 4000 draws: 5 * 0.5 / 63 < 0.04.
    np.testing.assert_allclose(freq[live], P[live], atol=0.04)
    mean_reward = np.asarray(reward).reshape(S, A, n).mean(-1)
    np.testing.assert_allclose(mean_reward[live], R[live], atol=0.1)
    done = np.asarray(done).reshape(S, A, n)
    np.testing.assert_array_equal(done[live], (nxt == goal)[live])
    # The goal is absorbing: no reward, done again, stays.
    assert np.all(nxt[goal] == goal) and np.all(done[goal] == 1)
    assert np.all(np.asarray(reward).reshape(S, A, n)[goal] == 0)


def test_reset_follows_start_distribution():
    env = GridWorld("two_rooms", goals=[(1, 1)], start=[(1, 1), (2, 2), (4, 9)])
    task = task_slice(env.tasks(), 0)
    keys = jax.random.split(jax.random.PRNGKey(1), 3000)
    cells = np.asarray(jax.jit(jax.vmap(lambda k: env.reset(k, task).pipeline_state.cell))(keys))
    lay = env.layout
    allowed = {lay.cell((2, 2)), lay.cell((4, 9))}  # the goal (1, 1) is excluded
    assert set(cells.tolist()) == allowed
    assert abs((cells == lay.cell((2, 2))).mean() - 0.5) < 0.05
    # Typed keys work too.
    state = env.reset(jax.random.key(0), task)
    assert state.pipeline_state.rng.dtype == jnp.uint32


@pytest.mark.parametrize("obs, size", [("onehot", 51), ("coords", 2)])
def test_batched_jit_and_training_wrappers(obs, size):
    env = GridWorld("two_rooms", goals=spread_goals("two_rooms", 3), obs=obs, slip=0.1)
    N, E = env.num_tasks, 5
    tasks = env.tasks()
    keys = jax.random.split(jax.random.PRNGKey(0), N * E).reshape(N, E, 2)
    state = jax.jit(lambda k: batch_reset(env, k, tasks))(keys)
    assert state.obs.shape == (N, E, size) and state.reward.dtype == jnp.float32
    action = jnp.ones((N, E), jnp.int32)
    nxt = jax.jit(lambda s, a: batch_step(env, s, a, tasks))(state, action)
    assert nxt.obs.shape == (N, E, size) and nxt.done.shape == (N, E)

    wrapped = wrap_for_training(env, episode_length=20)
    assert wrapped.optimal_returns(20).shape == (N,)  # extras reach through the wrappers
    state = batch_reset(wrapped, keys, tasks)

    def body(carry, key):
        a = jax.random.randint(key, (N, E), 0, 4)
        s = batch_step(wrapped, carry, a, tasks)
        return s, (s.done, s.info["truncation"], s.info["episode_return"])

    _, (done, trunc, ret) = jax.jit(
        lambda s: jax.lax.scan(body, s, jax.random.split(jax.random.PRNGKey(1), 100))
    )(state)
    assert done.sum() > 0 and trunc.sum() > 0
    assert np.all(np.asarray(trunc) <= np.asarray(done))
    # An episode that ended by time-out collected exactly 20 step rewards or reached the goal.
    ended = np.asarray(ret)[np.asarray(trunc) > 0]
    np.testing.assert_allclose(ended, -0.01 * 20, atol=1e-5)


def test_optimal_returns_hand_computed():
    # One start cell next to the goal in a 1-row corridor: only "right" can reach it, a slip
    # still hits "right" with probability 1/4, and every other move bumps into a wall.
    slip, g, c = 0.4, 1.0, -0.1
    env = GridWorld("####\n#S.#\n####", goals=[(1, 2)], slip=slip, goal_reward=g, step_reward=c)
    p = 1 - slip + slip / 4
    one = p * g + (1 - p) * c
    two = p * g + (1 - p) * (c + one)
    got = [float(env.optimal_returns(h)[0]) for h in (0, 1, 2, 50)]
    expect_50 = sum((1 - p) ** k * (p * g + (1 - p) * c) for k in range(50))
    np.testing.assert_allclose(got, [0.0, one, two, expect_50], rtol=1e-5)
    # A deterministic two-room task: the shortest path from every start, averaged.
    env = GridWorld("two_rooms", goals=[(1, 1)], start=[(1, 3), (3, 7)])
    dist = np.array([2, 8])  # Manhattan distances (the second through the doorway)
    expected = np.mean(1.0 - 0.01 * (dist - 1))
    np.testing.assert_allclose(float(env.optimal_returns(50)[0]), expected, rtol=1e-5)
    np.testing.assert_allclose(float(env.optimal_returns(5)[0]), (0.99 - 0.05) / 2, rtol=1e-5)
