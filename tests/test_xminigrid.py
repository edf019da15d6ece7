"""XLand-MiniGrid adapter: the family contract, truncation versus termination, distinct tasks,
the ruleset generator, MiniGrid levels, rendering and argument checks.

Batches are tiny (2 tasks x 2 envs) and rollouts short: xminigrid's step compiles a switch over
every goal and rule, which dominates the time here.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from xminigrid.types import RuleSet

from distral_jax.envs.base import batch_reset, batch_step, task_slice
from distral_jax.envs.checks import check_family
from distral_jax.envs.wrappers import wrap_for_training
from distral_jax.envs.xminigrid_tasks import (
    MiniGridLevels,
    XLandMiniGridFamily,
    generate_rulesets,
    stack_rulesets,
)

NUM_TASKS, NUM_ENVS, PICK_UP = 2, 2, 3
MAX_STEPS, STEPS = 5, 10


def _ruleset(goal, tiles=()) -> RuleSet:
    return RuleSet(
        goal=np.asarray(goal, np.uint8),
        rules=np.zeros((1, 7), np.uint8),
        init_tiles=np.asarray(tiles, np.uint8).reshape(-1, 2),
    )


# Goal "hold the empty tile", checked on the pick-up action: with no object in the room the
# pocket stays empty, so the first pick-up ends the episode. The empty goal (id 0) never does.
TRIVIAL = _ruleset([1, 0, 0, 0, 0])
NEVER = _ruleset([0, 0, 0, 0, 0])


def _rollout(env, tasks, key, actions):
    """Jitted scan of ``env`` ([N, E] batch) over ``actions`` [T, N, E]: states [T, N, E].

    The tasks are an argument, not a constant: two families with rulesets of the same shapes
    and the same time limit lower to the same program, which the compilation cache then
    serves to the second one.
    """

    @jax.jit
    def run(key, actions, tasks):
        state = batch_reset(env, jax.random.split(key, actions.shape[1:]), tasks)

        def body(state, action):
            state = batch_step(env, state, action, tasks)
            return state, state

        return jax.lax.scan(body, state, actions)[1]

    return run(key, actions, tasks)


@pytest.fixture(scope="module")
def family():
    return XLandMiniGridFamily(num_tasks=NUM_TASKS, task_seed=0, num_rules=1, max_steps=MAX_STEPS)


@pytest.fixture(scope="module")
def random_rollout(family):
    """Uniformly random actions through ``wrap_for_training``: states [T, N, E]."""
    env = wrap_for_training(family, family.episode_length)
    actions = jax.random.randint(jax.random.key(1), (STEPS, NUM_TASKS, NUM_ENVS), 0, 6)
    return _rollout(env, family.tasks(), jax.random.key(0), actions)


def test_contract_and_spaces(family):
    check_family(family)
    assert family.discrete and family.action_size == 6
    assert family.observation_shape == (5, 5, 2) and family.observation_size == 50
    assert family.observation_vocabulary == 13
    assert family.episode_length == MAX_STEPS
    assert isinstance(family.tasks(), RuleSet)
    assert family.tasks().rules.shape == (NUM_TASKS, 1, 7)
    assert family.tasks().init_tiles.shape == (NUM_TASKS, 3, 2)


def test_random_rollout_under_jit_vmap_and_wrappers(family, random_rollout):
    states = random_rollout
    assert states.obs.shape == (STEPS, NUM_TASKS, NUM_ENVS, 5, 5, 2)
    assert states.obs.dtype == jnp.uint8
    assert int(states.obs.max()) < family.observation_vocabulary
    assert states.reward.dtype == jnp.float32 and states.done.dtype == jnp.float32
    done, truncation = np.asarray(states.done), np.asarray(states.info["truncation"])
    success = np.asarray(states.metrics["success"])
    assert np.all(truncation <= done) and np.all(success <= done)
    assert np.all((success == 0) | (truncation == 0))
    # No episode outlives the time limit, and one that reaches it is truncated (unless it
    # succeeds on that very step).
    for n in range(NUM_TASKS):
        for e in range(NUM_ENVS):
            ends = np.flatnonzero(done[:, n, e])
            lengths = np.diff(np.concatenate([[-1], ends]))
            assert np.all(lengths <= MAX_STEPS)
            full = ends[lengths == MAX_STEPS]
            np.testing.assert_array_equal(truncation[full, n, e], 1 - success[full, n, e])
            if len(ends) == 0 or STEPS - 1 - ends[-1] >= MAX_STEPS:
                pytest.fail(f"env ({n}, {e}) ran past the time limit")
    assert truncation.any()


def test_termination_and_truncation(family):
    # Padded to the fixture's shapes, so that the rollout reuses its compiled program.
    rulesets = stack_rulesets([TRIVIAL, NEVER])
    rulesets = rulesets.replace(
        rules=np.zeros((2, 1, 7), np.uint8), init_tiles=np.zeros((2, 3, 2), np.uint8)
    )
    limited = XLandMiniGridFamily(rulesets=rulesets, max_steps=MAX_STEPS)
    check_family(limited)
    actions = jnp.full((STEPS, NUM_TASKS, NUM_ENVS), PICK_UP, jnp.int32)
    env = wrap_for_training(limited, limited.episode_length)
    states = _rollout(env, limited.tasks(), jax.random.key(0), actions)
    done, truncation = np.asarray(states.done), np.asarray(states.info["truncation"])
    success, reward = np.asarray(states.metrics["success"]), np.asarray(states.reward)
    # Task 0 terminates on every pick-up: done, not truncated, success, xminigrid's reward.
    np.testing.assert_array_equal(done[:, 0], 1.0)
    np.testing.assert_array_equal(truncation[:, 0], 0.0)
    np.testing.assert_array_equal(success[:, 0], 1.0)
    np.testing.assert_allclose(reward[:, 0], 1.0 - 0.9 / MAX_STEPS, rtol=1e-6)
    # Task 1 never terminates: the time limit ends each episode, as a truncation. That the
    # wrapper calls it a truncation also shows that the family itself said done = 0 on
    # xminigrid's own last step (a LAST step type with discount 1).
    expected = np.zeros((STEPS, NUM_ENVS))
    expected[MAX_STEPS - 1 :: MAX_STEPS] = 1.0
    np.testing.assert_array_equal(done[:, 1], expected)
    np.testing.assert_array_equal(truncation[:, 1], expected)
    np.testing.assert_array_equal(success[:, 1], 0.0)
    np.testing.assert_array_equal(reward[:, 1], 0.0)


def test_tasks_differ_and_generation_is_deterministic(family):
    rulesets = family.tasks()
    assert not np.array_equal(np.asarray(rulesets.goal[0]), np.asarray(rulesets.goal[1]))
    again = generate_rulesets(NUM_TASKS, seed=0, num_rules=1)
    for a, b in zip(
        jax.tree_util.tree_leaves(again), jax.tree_util.tree_leaves(rulesets), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = generate_rulesets(NUM_TASKS, seed=1, num_rules=1)
    assert not np.array_equal(np.asarray(other.goal), np.asarray(rulesets.goal))
    # The same reset key gives each task its own objects.
    key = jnp.broadcast_to(jax.random.key_data(jax.random.key(3)), (NUM_TASKS, 1, 2))
    grids = jax.jit(lambda k: batch_reset(family, k, rulesets).pipeline_state.grid)(key)
    assert not np.array_equal(np.asarray(grids[0, 0]), np.asarray(grids[1, 0]))
    assert "hold" in family.describe_task(0) or "next to" in family.describe_task(0)


def test_generated_rulesets_are_distinct_and_place_what_the_goal_needs():
    rulesets = generate_rulesets(12, seed=5, goal_kinds=("hold", "near", "tile_near"))
    goals, tiles = np.asarray(rulesets.goal), np.asarray(rulesets.init_tiles)
    assert goals.dtype == np.uint8 and tiles.shape[0] == 12
    assert len({g.tobytes() + t.tobytes() for g, t in zip(goals, tiles, strict=True)}) == 12
    for goal, placed in zip(goals, tiles, strict=True):
        placed = {tuple(t) for t in placed.tolist()} - {(0, 0)}  # minus the padding
        needed = [tuple(goal[1:3])] + ([tuple(goal[3:5])] if goal[0] == 4 else [])
        assert set(needed) <= placed  # without rules, the goal's objects are in the room
        assert len(placed) == len(needed) + 2  # and two distractors


def test_stack_rulesets_pads_to_the_longest():
    stacked = stack_rulesets([TRIVIAL, _ruleset([1, 3, 1, 0, 0], [[3, 1], [4, 2]])])
    assert stacked.init_tiles.shape == (2, 2, 2) and stacked.rules.shape == (2, 1, 7)
    np.testing.assert_array_equal(np.asarray(stacked.init_tiles[0]), 0)


def test_minigrid_levels():
    family = XLandMiniGridFamily("MiniGrid-FourRooms", num_tasks=NUM_TASKS, task_seed=0)
    check_family(family)
    assert isinstance(family.tasks(), MiniGridLevels)
    assert family.observation_shape == (7, 7, 2) and family.episode_length == 100
    keys = jax.random.split(jax.random.key(0), (NUM_TASKS, NUM_ENVS))
    grids = np.asarray(
        jax.jit(lambda k, t: batch_reset(family, k, t).pipeline_state.grid)(keys, family.tasks())
    )
    assert np.array_equal(grids[0, 0], grids[0, 1])  # a task is one fixed level
    assert not np.array_equal(grids[0, 0], grids[1, 0])  # tasks are different levels
    with pytest.warns(UserWarning, match="identical"):
        XLandMiniGridFamily("MiniGrid-Empty-5x5", num_tasks=2)


def test_render_rgb(family, random_rollout):
    state = jax.tree_util.tree_map(lambda x: x[0, 0, 0], random_rollout)
    image = family.render_rgb(state, task_slice(family.tasks(), 0), tile_size=8)
    assert image.dtype == np.uint8 and image.shape == (9 * 8, 9 * 8, 3)
    assert image.std() > 0
    with pytest.raises(ValueError, match="state"):
        family.render_rgb(jax.tree_util.tree_map(lambda x: x[0], random_rollout))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"env_id": "XLand-MiniGrid-R1-7x7"}, "env_id"),
        ({"num_tasks": 0}, "num_tasks"),
        ({"num_tasks": 2.5}, "num_tasks"),
        ({"view_size": 4}, "view_size"),
        ({"max_steps": 0}, "max_steps"),
        ({"task_seed": "a"}, "task_seed"),
        ({"goal_kinds": ("fly",)}, "goal_kinds"),
        ({"num_rules": -1}, "num_rules"),
        ({"num_distractors": 60}, "num_distractors"),
        ({"rulesets": [TRIVIAL], "num_tasks": 2}, "num_tasks"),
        ({"rulesets": "trivial-21k"}, "rulesets"),
        ({"env_id": "MiniGrid-Empty-5x5", "rulesets": [TRIVIAL]}, "rulesets"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        XLandMiniGridFamily(**kwargs)
