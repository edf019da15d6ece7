"""Point-mass goal family: protocol, physics, reward formula, references and argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distral_jax.envs.base import batch_reset, batch_step, task_slice
from distral_jax.envs.point_mass import PointMassGoals, PointMassState
from distral_jax.envs.wrappers import wrap_for_training

NUM_TASKS, NUM_ENVS, EPISODE_LENGTH = 4, 3, 100


@pytest.fixture(scope="module")
def family():
    return PointMassGoals(num_tasks=NUM_TASKS)


@pytest.fixture(scope="module")
def scripted_rollout(family):
    """Wrapped [tasks, envs] rollout of the scripted controller: states [T+1, N, E]."""
    env = wrap_for_training(family, EPISODE_LENGTH)
    tasks = env.tasks()

    @jax.jit
    def rollout(rng):
        state = batch_reset(env, jax.random.split(rng, (NUM_TASKS, NUM_ENVS)), tasks)
        policy = jax.vmap(jax.vmap(family.scripted_policy, in_axes=(0, None)))

        def body(state, _):
            action = policy(state.obs, tasks)
            return batch_step(env, state, action, tasks), (state, action)

        last, (states, actions) = jax.lax.scan(body, state, None, EPISODE_LENGTH)
        states = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b[None]]), states, last)
        return states, actions

    return rollout(jax.random.PRNGKey(0))


def test_shapes_and_keys(family, scripted_rollout):
    states, actions = scripted_rollout
    assert family.discrete is False and family.action_size == 2
    assert states.obs.shape == (EPISODE_LENGTH + 1, NUM_TASKS, NUM_ENVS, family.observation_size)
    assert actions.shape == (EPISODE_LENGTH, NUM_TASKS, NUM_ENVS, 2)
    assert states.reward.dtype == jnp.float32 and states.done.dtype == jnp.float32
    single = family.reset(jax.random.PRNGKey(1), task_slice(family.tasks(), 0))
    stepped = family.step(single, jnp.ones(2), task_slice(family.tasks(), 0))
    assert set(single.metrics) == set(stepped.metrics) == {"distance", "success"}
    assert np.all(np.abs(np.asarray(states.obs)) <= 1.0 + 1e-6)


def test_scripted_controller_reaches_every_goal(scripted_rollout):
    states, _ = scripted_rollout
    success = np.asarray(states.metrics["success"])  # [T+1, N, E]
    # Every env of every task reaches its goal within the first episode...
    assert np.all(success.max(axis=0) == 1.0)
    # ...and the episode ended by termination, not by the time limit.
    first = np.argmax(success, axis=0)
    assert np.all(first < EPISODE_LENGTH)
    truncated = np.asarray(states.info["truncation"])
    assert np.all(np.take_along_axis(truncated, first[None], 0) == 0.0)


def test_reward_formula(family, scripted_rollout):
    states, actions = scripted_rollout
    goal = np.asarray(family.tasks().goal)[None, :, None]  # [1, N, 1, 2]
    pos = np.asarray(states.pipeline_state.pos[1:])
    distance = np.linalg.norm(pos - goal, axis=-1)
    a = np.clip(np.asarray(actions), -1, 1)
    expected = -distance / family.arena_size - family.ctrl_cost * np.sum(a**2, axis=-1)
    # Compare only transitions not replaced by an auto-reset (their pos is the next episode's).
    valid = np.asarray(states.done[1:]) == 0
    np.testing.assert_allclose(np.asarray(states.reward[1:])[valid], expected[valid], atol=1e-5)


def test_success_bonus_and_termination_radius():
    env = PointMassGoals(num_tasks=1, success_radius=0.5, success_bonus=3.0, ctrl_cost=0.0)
    task = task_slice(env.tasks(), 0)
    state = env.reset(jax.random.PRNGKey(0), task)
    near = task.goal - jnp.array([0.0, 0.3])
    state = state.replace(pipeline_state=PointMassState(pos=near, vel=jnp.zeros(2)))
    state = env.step(state, jnp.zeros(2), task)
    assert float(state.done) == 1.0
    np.testing.assert_allclose(float(state.reward), -0.3 / env.arena_size + 3.0, atol=1e-5)


def test_wall_is_solid():
    env = PointMassGoals(num_tasks=1)
    w, h = env.wall_half_extent
    # Full speed straight up into the middle of the wall, from just below it.
    physics = PointMassState(pos=jnp.array([0.0, -h - 0.01]), vel=jnp.array([0.0, env.max_speed]))
    for _ in range(20):
        physics = env.dynamics(physics, jnp.array([0.3, 1.0]))
        assert not (abs(float(physics.pos[0])) < w and abs(float(physics.pos[1])) < h)
    assert float(physics.pos[1]) == pytest.approx(-h)  # pressed against the bottom face
    assert float(physics.pos[0]) > 0.0  # ...while sliding along it


def test_reference_returns_are_ordered(family):
    scripted = family.reference_returns("scripted", num_episodes=4)
    greedy = family.reference_returns("greedy", num_episodes=4)
    random = family.reference_returns("random", num_episodes=4)
    assert scripted.shape == (NUM_TASKS,)
    assert np.all(scripted > random + 50.0)
    assert np.all(scripted >= greedy - 1.0)
    # The central goals are where going round the wall matters.
    assert np.all(scripted[1:3] > greedy[1:3] + 10.0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_tasks": 0}, "num_tasks"),
        ({"num_tasks": 2.5}, "num_tasks"),
        ({"arena_size": -1.0}, "arena_size"),
        ({"success_radius": 0.0}, "success_radius"),
        ({"success_radius": 5.0}, "success_radius"),
        ({"goal_arc_degrees": (0.0, 90.0)}, "goal_arc_degrees"),
        ({"goal_arc_degrees": (120.0, 60.0)}, "goal_arc_degrees"),
        ({"ctrl_cost": -0.1}, "ctrl_cost"),
        ({"start_noise": 0.5}, "start_noise"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PointMassGoals(**kwargs)


def test_bad_reference_policy(family):
    with pytest.raises(ValueError, match="policy"):
        family.reference_returns("oracle")
