"""Brax task families: jit/vmap over tasks x envs through the training wrappers, reward formulas
checked against positions read from the pipeline state, and per-task dynamics.

Compiling a Brax step takes 10-40 s on a small CPU, so each family is compiled exactly once (a
module-scoped rollout of reset + a few wrapped steps, shared by all its tests), with XLA's
backend optimisations off: that halves compile time and these tests run only a few steps.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distral_jax.envs import brax_tasks, registry
from distral_jax.envs.base import batch_reset, batch_step
from distral_jax.envs.point_mass import PointMassGoals
from distral_jax.envs.wrappers import wrap_for_training

NUM_TASKS, NUM_ENVS, NUM_STEPS, EPISODE_LENGTH = 2, 2, 5, 3
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _rollout(family):
    """States ``[T+1, N, E]`` and actions ``[T, N, E, A]`` of a wrapped rollout.

    Every task gets the same reset keys and the same (random) actions, so trajectories can only
    differ between tasks through the tasks' dynamics. The time limit (3) is shorter than the
    rollout (5), so an auto-reset happens at step 3.
    """
    env = wrap_for_training(family, EPISODE_LENGTH)
    tasks = env.tasks()
    shape = (NUM_STEPS, NUM_ENVS, env.action_size)
    actions = jax.random.uniform(jax.random.PRNGKey(1), shape, jnp.float32, -1.0, 1.0)
    actions = jnp.broadcast_to(actions[:, None], (NUM_STEPS, NUM_TASKS) + shape[1:])

    def rollout(rng, actions):
        keys = jnp.broadcast_to(jax.random.split(rng, NUM_ENVS), (NUM_TASKS, NUM_ENVS, 2))
        state = batch_reset(env, keys, tasks)

        def body(state, action):
            next_state = batch_step(env, state, action, tasks)
            return next_state, next_state

        _, states = jax.lax.scan(body, state, actions)
        return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), state, states)

    states = jax.jit(rollout, compiler_options=FAST_COMPILE)(jax.random.PRNGKey(0), actions)
    return states, np.asarray(actions)


def _torso(states):
    """Torso xyz after each step and before it, ``[T, N, E, 3]`` each."""
    pos = np.asarray(states.pipeline_state.x.pos[:, :, :, 0])
    return pos[1:], pos[:-1]


def _torso_velocity(family, states):
    """Torso velocity over each step, ``[T, N, E, 3]``: the one the reward formulas read."""
    after, before = _torso(states)
    return (after - before) / family.dt


def _check_transitions(states, expected):
    """Rewards equal ``expected`` on transitions not replaced by an auto-reset."""
    valid = np.asarray(states.done[1:]) == 0.0
    assert valid.sum() >= NUM_STEPS - 1
    np.testing.assert_allclose(np.asarray(states.reward[1:])[valid], expected[valid], atol=2e-4)


def _check_protocol(family, states, actions):
    n, e = NUM_TASKS, NUM_ENVS
    assert family.num_tasks == n and family.discrete is False
    assert states.obs.shape == (NUM_STEPS + 1, n, e, family.observation_size)
    assert actions.shape[-1] == family.action_size
    assert states.reward.shape == states.done.shape == (NUM_STEPS + 1, n, e)
    assert states.reward.dtype == states.done.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(states.obs)))
    assert "env_reward" in states.metrics
    # The time limit truncated step 3 and the next episode started afresh.
    np.testing.assert_array_equal(np.asarray(states.info["truncation"][EPISODE_LENGTH]), 1.0)
    np.testing.assert_array_equal(np.asarray(states.info["steps"][EPISODE_LENGTH + 1]), 1.0)


@pytest.fixture(scope="module")
def cheetah_vel():
    family = brax_tasks.halfcheetah_vel(num_tasks=NUM_TASKS)
    return family, *_rollout(family)


@pytest.fixture(scope="module")
def ant_dir():
    family = brax_tasks.ant_dir(num_tasks=NUM_TASKS)
    return family, *_rollout(family)


@pytest.fixture(scope="module")
def ant_goal():
    family = brax_tasks.ant_goal(num_tasks=NUM_TASKS, radius=3.0)
    return family, *_rollout(family)


@pytest.fixture(scope="module")
def cheetah_mass():
    family = brax_tasks.halfcheetah_mass(mass_scales=[0.5, 2.0])
    return family, *_rollout(family)


@pytest.mark.slow
def test_halfcheetah_vel(cheetah_vel):
    family, states, actions = cheetah_vel
    _check_protocol(family, states, actions)
    v_x = _torso_velocity(family, states)[..., 0]
    target = np.asarray(family.tasks().target_velocity)[None, :, None]
    expected = -np.abs(v_x - target) - 0.05 * np.sum(actions**2, axis=-1)
    _check_transitions(states, expected)
    # HalfCheetah never terminates: after the truncation, done is clear again.
    np.testing.assert_array_equal(np.asarray(states.done[EPISODE_LENGTH + 1]), 0.0)
    # No per-task dynamics: same keys and actions give the same physics for every task.
    q = np.asarray(states.pipeline_state.q)
    np.testing.assert_allclose(q[:, 0], q[:, 1], atol=1e-6)
    # Brax families restart an environment from its first state (no reset in the step).
    assert family.fresh_starts is False
    np.testing.assert_array_equal(q[EPISODE_LENGTH], q[0])
    np.testing.assert_array_equal(np.asarray(states.obs[EPISODE_LENGTH]), np.asarray(states.obs[0]))


@pytest.mark.slow
def test_ant_dir(ant_dir):
    family, states, actions = ant_dir
    _check_protocol(family, states, actions)
    velocity = _torso_velocity(family, states)[..., :2]
    direction = np.asarray(family.tasks().direction)[None, :, None]  # [1, N, 1, 2]
    np.testing.assert_allclose(np.linalg.norm(direction, axis=-1), 1.0, rtol=1e-6)
    forward = np.sum(velocity * direction, axis=-1)
    expected = forward + 1.0 - 0.5 * np.sum(actions**2, axis=-1)
    _check_transitions(states, expected)
    # Termination is Ant's: the torso height left [0.2, 1.0].
    z = _torso(states)[0][..., 2]
    unhealthy = ((z < 0.2) | (z > 1.0)).astype(np.float32)
    not_truncated = np.asarray(states.info["truncation"][1:]) == 0.0
    np.testing.assert_array_equal(
        np.asarray(states.done[1:])[not_truncated], unhealthy[not_truncated]
    )


@pytest.mark.slow
def test_ant_goal(ant_goal):
    family, states, actions = ant_goal
    _check_protocol(family, states, actions)
    # Goals on the circle of radius 3; the observation starts with the torso's x, y.
    goal = np.asarray(family.tasks().goal)
    np.testing.assert_allclose(np.linalg.norm(goal, axis=-1), 3.0, rtol=1e-6)
    xy = np.asarray(states.pipeline_state.x.pos[:, :, :, 0, :2])
    np.testing.assert_allclose(np.asarray(states.obs[..., :2]), xy, atol=1e-6)
    after, _ = _torso(states)
    distance = np.linalg.norm(after[..., :2] - goal[None, :, None], axis=-1)
    expected = -distance - 0.05 * np.sum(actions**2, axis=-1)
    _check_transitions(states, expected)


@pytest.mark.slow
def test_halfcheetah_mass_dynamics_differ(cheetah_mass):
    family, states, actions = cheetah_mass
    _check_protocol(family, states, actions)
    v_x = _torso_velocity(family, states)[..., 0]
    expected = v_x - 0.1 * np.sum(actions**2, axis=-1)
    _check_transitions(states, expected)
    # Same start and same actions, different masses: different trajectories.
    q = np.asarray(states.pipeline_state.q)
    np.testing.assert_allclose(q[0, 0], q[0, 1], atol=1e-6)
    assert np.abs(q[1 : EPISODE_LENGTH + 1, 0] - q[1 : EPISODE_LENGTH + 1, 1]).max() > 1e-2


def test_mass_friction_sys_fn_scales_what_the_backend_simulates():
    env = brax_tasks.brax_envs.get_environment("halfcheetah", backend="spring")
    sys = env.sys
    task = brax_tasks.DynamicsTask(mass_scale=jnp.float32(2.0), friction_scale=jnp.float32(0.5))
    edited = brax_tasks.mass_friction_sys_fn(sys, "spring")(sys, task)
    k = float(sys.spring_mass_scale)
    simulated = lambda s: np.asarray(s.link.inertia.mass) ** (1.0 - k)
    np.testing.assert_allclose(simulated(edited), 2.0 * simulated(sys), rtol=1e-4)
    np.testing.assert_allclose(edited.body_mass, 2.0 * np.asarray(sys.body_mass), rtol=1e-6)
    np.testing.assert_allclose(edited.geom_friction[:, 0], 0.5 * sys.geom_friction[:, 0])
    np.testing.assert_allclose(edited.geom_friction[:, 1:], sys.geom_friction[:, 1:])


def test_mass_edit_rejected_where_backend_ignores_mass():
    ant = brax_tasks.brax_envs.get_environment("ant", backend="spring")
    with pytest.raises(ValueError, match="spring_mass_scale"):
        brax_tasks.mass_friction_sys_fn(ant.sys, "spring")


def test_registry():
    assert set(registry.FAMILIES) >= {
        "point_mass",
        "halfcheetah_vel",
        "ant_dir",
        "ant_goal",
        "halfcheetah_mass",
    }
    family = registry.make_family("point_mass", num_tasks=3)
    assert isinstance(family, PointMassGoals) and family.num_tasks == 3
    assert registry.make_family("halfcheetah_vel", num_tasks=2).num_tasks == 2
    with pytest.raises(ValueError, match="allowed names.*ant_dir"):
        registry.make_family("ant_maze")


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_tasks"):
        brax_tasks.halfcheetah_vel(num_tasks=0)
    with pytest.raises(ValueError, match="radius"):
        brax_tasks.ant_goal(radius=-1.0)
    with pytest.raises(ValueError, match="same length"):
        brax_tasks.halfcheetah_mass(mass_scales=[1.0, 2.0], friction_scales=[1.0])
    with pytest.raises(ValueError, match="leading axis"):
        tasks = {"a": jnp.zeros(2), "b": jnp.zeros(3)}
        brax_tasks.BraxTaskFamily("halfcheetah", tasks, lambda *args: 0.0)


NAN, INF = float("nan"), float("inf")
BAD_FAMILY_ARGUMENTS = [
    (lambda: brax_tasks.halfcheetah_vel(velocities=[NAN, 1.0]), "`velocities` must be finite"),
    (lambda: brax_tasks.halfcheetah_vel(max_velocity=NAN), "`max_velocity` must be finite"),
    (
        lambda: brax_tasks.halfcheetah_mass(mass_scales=[NAN, 1.0]),
        "`mass_scales` must be finite",
    ),
    (lambda: brax_tasks.ant_goal(radius=INF), "`radius` must be finite"),
    (
        lambda: brax_tasks.halfcheetah_vel(num_tasks=4, velocities=[1.0]),
        "`velocities` has 1 values but num_tasks=4",
    ),
    (
        lambda: brax_tasks.halfcheetah_mass(num_tasks=4, mass_scales=[1.0, 2.0]),
        "`mass_scales` has 2 values but num_tasks=4",
    ),
    (
        lambda: brax_tasks.BraxTaskFamily("nope", jnp.zeros(2), lambda *args: 0.0),
        "unknown Brax environment 'nope'; registered: [",
    ),
    (
        lambda: brax_tasks.BraxTaskFamily("halfcheetah", jnp.zeros(2), lambda *a: jnp.zeros(3)),
        "`reward_fn` must return a scalar, got shape (3,)",
    ),
]


@pytest.mark.parametrize("build, message", BAD_FAMILY_ARGUMENTS)
def test_bad_family_arguments_are_named(build, message):
    with pytest.raises(ValueError) as error:
        build()
    assert message in str(error.value)


def test_per_task_lists_set_the_task_count():
    assert brax_tasks.halfcheetah_vel(velocities=[0.5, 1.0, 2.0]).num_tasks == 3


def test_pearl_ant_goal_and_sampled_task_sets():
    from types import SimpleNamespace

    from distral_jax.envs.wrappers import split_tasks

    pearl = brax_tasks.ant_goal(num_tasks=60, definition="pearl", task_seed=1)
    goals = np.asarray(pearl.tasks().goal)
    radii = np.linalg.norm(goals, axis=-1)
    # Uniform in the disk of radius 3: inside it, mean radius 2 (= 2R/3), not on the circle.
    assert np.all(radii <= 3.0) and abs(radii.mean() - 2.0) < 0.25 and radii.std() > 0.4
    again = brax_tasks.ant_goal(num_tasks=60, definition="pearl", task_seed=1)
    np.testing.assert_array_equal(goals, np.asarray(again.tasks().goal))
    # PEARL's reward: L1 distance and a control cost of 0.1.
    nxt = SimpleNamespace(pipeline_state=SimpleNamespace(x=SimpleNamespace(pos=jnp.array(
        [[1.0, 2.0, 0.5]]
    ))))  # fmt: skip
    task = brax_tasks.GoalTask(goal=jnp.array([0.5, -1.0]))
    reward = pearl.reward_fn(None, nxt, jnp.ones(8), task)
    np.testing.assert_allclose(reward, -(0.5 + 3.0) - 0.1 * 8, rtol=1e-6)
    with pytest.raises(ValueError, match="`definition` must be 'circle' or 'pearl'"):
        brax_tasks.ant_goal(definition="maml")

    drawn = brax_tasks.halfcheetah_vel(num_tasks=20, task_seed=3)
    velocities = np.asarray(drawn.tasks().target_velocity)
    assert np.all((velocities >= 0) & (velocities <= 3.0)) and len(set(velocities)) == 20
    train_set, test_set = split_tasks(drawn, num_test=5, seed=0)
    assert (train_set.num_tasks, test_set.num_tasks) == (15, 5)
    held_out = np.asarray(test_set.tasks().target_velocity)
    seen = np.asarray(train_set.tasks().target_velocity)
    assert not set(held_out) & set(seen)
    assert sorted(np.concatenate([seen, held_out])) == sorted(velocities)
    with pytest.raises(ValueError, match="`num_test` must be in"):
        split_tasks(drawn, num_test=20)
