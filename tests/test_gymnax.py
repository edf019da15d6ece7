"""gymnax classic-control families: the contract, per-task physics under jit + vmap through the
training wrappers, termination versus truncation, action scaling and argument checks.

Compilation dominates on a CPU, so CartPole and Pendulum each compile one rollout (module-scoped
and shared by their tests), and the other environments one short rollout each.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distral_jax.envs.base import batch_reset, batch_step
from distral_jax.envs.checks import check_family
from distral_jax.envs.gymnax_tasks import SPECS, GymnaxFamily
from distral_jax.envs.wrappers import wrap_for_training

CARTPOLE_LIMIT, CARTPOLE_STEPS = 20, 22
PENDULUM_LIMIT = 3
# Pendulum actions [T, E, 1]: env 0 saturates (3.0 clips to 1.0), env 1 starts with no torque so
# that its first step differs between tasks only through gravity.
PENDULUM_ACTIONS = np.array([[1.0, 0.0], [3.0, -0.5], [-1.0, 0.25], [0.0, 0.0]], np.float32)[
    ..., None
]


def _rollout(env, keys, policy, num_steps):
    """States ``[T+1, N, E]`` of a jitted wrapped rollout; ``policy(obs [N, E, ...], t)``."""
    tasks = env.tasks()

    def run(keys):
        state = batch_reset(env, keys, tasks)

        def body(state, t):
            next_state = batch_step(env, state, policy(state.obs, t), tasks)
            return next_state, next_state

        _, states = jax.lax.scan(body, state, jnp.arange(num_steps))
        return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), state, states)

    return jax.device_get(jax.jit(run)(keys))


@pytest.fixture(scope="module")
def cartpole():
    """Pole half-lengths 0.25 and 1.0, two envs with the same start in both tasks: env 0 always
    pushes right (the pole falls), env 1 balances it (the time limit ends its episode)."""
    family = GymnaxFamily("CartPole-v1", num_tasks=2, task_parameters={"length": [0.25, 1.0]})
    env = wrap_for_training(family, CARTPOLE_LIMIT)
    keys = jnp.broadcast_to(jax.random.split(jax.random.PRNGKey(3), 2), (2, 2, 2))

    def policy(obs, t):
        balance = (obs[..., 2] + 0.25 * obs[..., 3] > 0).astype(jnp.int32)
        return balance.at[:, 0].set(1)

    return family, _rollout(env, keys, policy, CARTPOLE_STEPS)


@pytest.fixture(scope="module")
def pendulum():
    """Gravities 5 and 15 with maximal torques 1 and 2; typed keys, the same start per task."""
    family = GymnaxFamily(
        "Pendulum-v1", num_tasks=2, task_parameters={"g": [5.0, 15.0], "max_torque": [1.0, 2.0]}
    )
    env = wrap_for_training(family, PENDULUM_LIMIT)
    keys = jnp.stack([jax.random.split(jax.random.key(5), 2)] * 2)
    actions = jnp.asarray(PENDULUM_ACTIONS)
    policy = lambda obs, t: jnp.broadcast_to(actions[t], (2, 2, 1))
    return family, _rollout(env, keys, policy, len(PENDULUM_ACTIONS))


@pytest.mark.parametrize("env_id", list(SPECS))
def test_contract(env_id):
    family = GymnaxFamily(env_id, num_tasks=3)
    check_family(family)
    check_family(wrap_for_training(family, family.episode_length))
    for leaf in jax.tree_util.tree_leaves(family.tasks()):
        assert leaf.shape[0] == 3 and leaf.dtype in (jnp.float32, jnp.int32)
    # The time limit is the wrapper's: gymnax's own is pushed out of reach.
    assert np.all(np.asarray(family.tasks().max_steps_in_episode) >= 2**30)


def test_defaults():
    family = GymnaxFamily()
    assert family.env_id == "CartPole-v1" and family.num_tasks == 4 and family.discrete
    assert (family.observation_size, family.action_size, family.episode_length) == (4, 2, 500)
    tasks = family.tasks()
    np.testing.assert_allclose(tasks.length, [0.25, 0.5, 0.75, 1.0])
    # Derived fields follow each task's length.
    np.testing.assert_allclose(tasks.polemass_length, 0.1 * np.asarray(tasks.length), rtol=1e-6)
    np.testing.assert_allclose(tasks.total_mass, 1.1)
    drawn = np.asarray(GymnaxFamily("Pendulum-v1", num_tasks=5, task_seed=1).tasks().g)
    assert np.all((drawn >= 5.0) & (drawn <= 15.0)) and len(set(drawn.tolist())) == 5
    episode_lengths = {env_id: GymnaxFamily(env_id, 1).episode_length for env_id in SPECS}
    assert episode_lengths == {
        "CartPole-v1": 500,
        "Pendulum-v1": 200,
        "Acrobot-v1": 500,
        "MountainCar-v0": 200,
        "MountainCarContinuous-v0": 999,
    }


def test_cartpole_tasks_differ(cartpole):
    _, states = cartpole
    obs = states.obs
    # Same start in both tasks, and the same first action (push) in env 0 ...
    np.testing.assert_array_equal(obs[0, 0], obs[0, 1])
    # ... but the pole's angular acceleration depends on its length.
    assert np.abs(obs[1, 0, 0, 3] - obs[1, 1, 0, 3]) > 1e-3
    # The short pole falls first under a constant push.
    fell = states.done[1:, :, 0].argmax(axis=0)
    assert fell[0] < fell[1] < CARTPOLE_LIMIT


def test_cartpole_termination_and_truncation(cartpole):
    family, states = cartpole
    done, truncation = states.done[1:], states.info["truncation"][1:]
    final_obs = states.info["final_obs"][1:]
    threshold = float(family.tasks().theta_threshold_radians[0])
    for task in range(2):
        # Env 0: the pole falls before the time limit: a termination.
        step = int(done[:, task, 0].argmax())
        assert done[step, task, 0] == 1 and truncation[step, task, 0] == 0
        assert abs(final_obs[step, task, 0, 2]) > threshold
        # Env 1: balanced until the time limit, which truncates.
        ended = np.flatnonzero(done[:, task, 1])
        assert ended.tolist() == [CARTPOLE_LIMIT - 1]
        assert truncation[CARTPOLE_LIMIT - 1, task, 1] == 1
        assert abs(final_obs[CARTPOLE_LIMIT - 1, task, 1, 2]) < threshold
        # The next episode starts afresh.
        assert states.info["steps"][CARTPOLE_LIMIT, task, 1] == 0
    assert states.reward.dtype == np.float32 and states.obs.dtype == np.float32


def test_pendulum_action_scaling(pendulum):
    family, states = pendulum
    assert not family.discrete and family.action_size == 1
    max_torque = np.asarray(family.tasks().max_torque)
    applied = states.pipeline_state.env_state.last_u  # [T+1, N, E]
    # Steps 1 and 2 (step 3 hits the time limit and is replaced by a reset).
    for t in (0, 1):
        expected = np.clip(PENDULUM_ACTIONS[t, :, 0], -1, 1)[None] * max_torque[:, None]
        np.testing.assert_allclose(applied[t + 1], expected, rtol=1e-6)
    assert applied[1, 1, 0] == 2.0  # an action of 1.0 is the task's maximal torque


def test_pendulum_gravity(pendulum):
    family, states = pendulum
    env_state = states.pipeline_state.env_state
    np.testing.assert_array_equal(env_state.theta[0, 0], env_state.theta[0, 1])
    # Env 1's first action is 0: theta_dot' = theta_dot + 3 g / (2 l) sin(theta) dt per task.
    theta, theta_dot = env_state.theta[0, :, 1], env_state.theta_dot[0, :, 1]
    g = np.asarray(family.tasks().g)
    expected = np.clip(theta_dot + 1.5 * g * np.sin(theta) * 0.05, -8.0, 8.0)
    np.testing.assert_allclose(env_state.theta_dot[1, :, 1], expected, rtol=1e-5)
    assert np.abs(expected[0] - expected[1]) > 1e-3


def test_pendulum_time_limit_is_truncation(pendulum):
    _, states = pendulum
    done, truncation = states.done[1:], states.info["truncation"][1:]
    assert done[:, 0, 0].tolist() == [0, 0, 1, 0]
    np.testing.assert_array_equal(done[PENDULUM_LIMIT - 1], 1.0)
    np.testing.assert_array_equal(truncation, done)  # Pendulum never terminates


def test_no_termination_at_gymnax_time_limit():
    """A state past gymnax's own limit (200 steps) is not ended by the family."""
    family = GymnaxFamily("Pendulum-v1", num_tasks=1)
    task = jax.tree_util.tree_map(lambda x: x[0], family.tasks())

    def step_late(key):
        state = family.reset(key, task)
        env_state = state.pipeline_state.env_state.replace(time=jnp.int32(10_000))
        state = state.replace(pipeline_state=state.pipeline_state.replace(env_state=env_state))
        return family.step(state, jnp.zeros(1), task).done

    assert float(jax.jit(step_late)(jax.random.PRNGKey(0))) == 0.0


@pytest.mark.parametrize("env_id", ["Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0"])
def test_other_environments_step(env_id):
    family = GymnaxFamily(env_id, num_tasks=2)
    env = wrap_for_training(family, 2)
    keys = jnp.broadcast_to(jax.random.split(jax.random.PRNGKey(0), 2), (2, 2, 2))
    if family.discrete:
        policy = lambda obs, t: jnp.full(obs.shape[:2], family.action_size - 1, jnp.int32)
    else:
        policy = lambda obs, t: jnp.ones(obs.shape[:2] + (1,), jnp.float32)
    states = _rollout(env, keys, policy, 3)
    assert states.obs.shape == (4, 2, 2, family.observation_size)
    assert np.all(np.isfinite(states.obs)) and np.all(np.isfinite(states.reward))
    np.testing.assert_array_equal(states.done[1:, :, :].max(axis=(1, 2)), [0, 1, 0])
    # Same start and actions, different physics: the tasks' trajectories part.
    np.testing.assert_array_equal(states.obs[0, 0], states.obs[0, 1])
    assert np.abs(states.obs[1, 0] - states.obs[1, 1]).max() > 1e-6


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(env_id="Hopper-v4"), r"`env_id`.*Hopper-v4.*CartPole-v1"),
        (dict(num_tasks=0), "`num_tasks`"),
        (dict(num_tasks=2.5), "`num_tasks`"),
        (dict(num_tasks=2, task_parameters={"lenght": [0.5, 1.0]}), r"lenght.*settable.*length"),
        (dict(num_tasks=3, task_parameters={"length": [0.5, 1.0]}), r"'length'.*num_tasks=3"),
        (dict(num_tasks=2, task_parameters={"length": [0.5, np.nan]}), r"'length'.*finite"),
        (dict(num_tasks=2, task_parameters={"polemass_length": [1, 2]}), "polemass_length"),
        (dict(num_tasks=1, task_parameters={"max_steps_in_episode": [9]}), "episode_length"),
        (dict(num_tasks=2, task_parameters={"length": [0.5, 1.0]}, task_seed=0), "task_seed"),
        (dict(num_tasks=2, task_parameters={}), "task_parameters"),
        (
            dict(env_id="Acrobot-v1", num_tasks=1, task_parameters={"link_length_2": [2.0]}),
            "link_length_2",
        ),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GymnaxFamily(**kwargs)
