"""Sweeps with paired seeds, starting from given parameters, a frozen prior and curricula."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distral_jax import sweeps
from distral_jax.envs.wrappers import TaskSubset
from distral_jax.networks import make_networks
from distral_jax.train import train
from distral_jax.trainer import Trainer
from tests.test_train import tiny_config, tiny_grid

SMALL = dict(total_env_steps=2_000, eval_every=1_000, iterations_per_call=25)


def test_seeds_are_paired_across_configurations_and_programs_are_shared():
    env = tiny_grid()
    configs = {
        "a3c": tiny_config("a3c", **SMALL),
        "a3c_again": tiny_config("a3c", **SMALL),
        "kl_1col": tiny_config("distral_kl_1col", **SMALL),
        "a3c_fast": tiny_config("a3c", **{**SMALL, "learning_rate": 3e-2}),
    }
    logged = []
    results = sweeps.train_configs(env, configs, seeds=2, show_progress=False, log=logged.append)
    assert len(logged) == 1, logged  # one architecture, traced differences only: one program
    assert list(results) == list(configs)
    a, again = results["a3c"].curves["sampled"], results["a3c_again"].curves["sampled"]
    np.testing.assert_array_equal(a, again)  # same seed index, same everything
    assert not np.array_equal(a[0], a[1])  # the two seeds differ
    # Before any update, a3c and distral_kl_1col share networks and evaluation episodes.
    kl = results["kl_1col"].curves["sampled"]
    np.testing.assert_array_equal(a[:, 0], kl[:, 0])
    np.testing.assert_array_equal(a[:, 0], results["a3c_fast"].curves["sampled"][:, 0])
    assert not np.array_equal(a[:, -1], kl[:, -1])


def test_program_of_separates_static_settings():
    base = tiny_config("a3c")
    assert sweeps.program_of(base) == sweeps.program_of(
        tiny_config("distral_kl_1col", beta=5.0, learning_rate=1e-3)
    )
    assert sweeps.program_of(base) != sweeps.program_of(tiny_config("a3c_2col"))
    assert sweeps.program_of(base) != sweeps.program_of(base.replace(freeze_prior=True))


def _leaves_equal(a, b) -> bool:
    return all(
        np.array_equal(x, y)
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )


def test_frozen_prior_starts_from_given_parameters_and_stays():
    env = tiny_grid()
    donor = make_networks(env, tiny_config("distral_klent_2col")).init(jax.random.PRNGKey(7))
    prior = jax.tree_util.tree_map(lambda x: x[None], donor.prior)  # one run
    config = tiny_config("distral_klent_2col", freeze_prior=True, **SMALL)
    _, params, _ = train(
        env,
        config,
        initial_params=lambda fresh: fresh.replace(prior=prior),
        show_progress=False,
    )
    assert _leaves_equal(params.params.prior, donor.prior)  # (unfrozen, it moves: below)
    with pytest.raises(ValueError, match="initial_params"):
        train(
            env,
            config,
            initial_params=lambda fresh: fresh.replace(prior=donor.prior),  # no run axis
            show_progress=False,
        )
    with pytest.raises(ValueError, match="keys"):
        train(env, config, num_runs=2, keys=jnp.zeros((3, 2), jnp.uint32), show_progress=False)


@pytest.mark.parametrize(
    "learner, starts, task_1_moves",
    [("a2c", (0, 10**9), False), ("a2c", (0, 1_000), True), ("ppo", (0, 10**9), False)],
)
def test_curriculum_leaves_a_task_untouched_until_it_starts(learner, starts, task_1_moves):
    env = tiny_grid()
    key = jnp.zeros((2,), jnp.uint32)
    config = tiny_config("distral_klent_1col", learner=learner, task_start_steps=starts, **SMALL)
    task = lambda p, i: jax.tree_util.tree_map(lambda x: x[i], (p.task, p.value))
    initial = Trainer(env, config).init(key).params
    _, params, _ = train(env, config, keys=key[None], show_progress=False)
    params = params.params
    assert not _leaves_equal(task(params, 0), task(initial, 0))
    assert not _leaves_equal(params.prior, initial.prior)
    assert _leaves_equal(task(params, 1), task(initial, 1)) != task_1_moves
    if learner == "a2c" and not task_1_moves:
        with pytest.raises(ValueError, match="task_start_steps"):
            train(env, config.replace(task_start_steps=(0,)), show_progress=False)


def test_a_subset_keeps_its_task_ids_for_the_shared_network():
    env = tiny_grid()
    config = tiny_config("a3c_multitask")
    held_out = TaskSubset(env, [1])
    full, subset = make_networks(env, config), make_networks(held_out, config)
    assert subset.task_ids == (1,) and subset.num_task_ids == 2
    shapes = lambda n: jax.tree_util.tree_map(jnp.shape, n.init(jax.random.PRNGKey(0)))
    assert shapes(full) == shapes(subset)  # a network trained on some tasks fits the others
    params = full.init(jax.random.PRNGKey(0))
    obs = jnp.zeros((1, 3, env.observation_size)).at[..., 0].set(1.0)
    pi_subset = subset.apply(params, obs, 1.0)[0]
    pi_full = full.apply(params, jnp.concatenate([obs, obs]), 1.0)[0]
    np.testing.assert_allclose(pi_subset[0], pi_full[1], rtol=1e-6)
