"""Sweeps with paired seeds, starting from given parameters, a frozen prior and curricula."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distral_jax import sweeps
from distral_jax.envs.bandit import MultiTaskBandit
from distral_jax.envs.wrappers import TaskSubset
from distral_jax.networks import make_networks
from distral_jax.normalization import RunningStats
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


class _ObservedBandit(MultiTaskBandit):
    """The bandit, with each task showing its own constant observation ``[c_i, −c_i]``: a task's
    observations (not only its rewards) then reach the shared observation statistics."""

    def __init__(self, rewards, observations):
        super().__init__(rewards)
        self._observations = np.asarray(observations, np.float32)

    @property
    def observation_size(self) -> int:
        return 2

    def tasks(self):
        return (super().tasks(), jnp.asarray(self._observations))

    def reset(self, rng, task):
        state = super().reset(rng, task[0])
        return state.replace(obs=jnp.stack([task[1], -task[1]]))

    def step(self, state, action, task):
        return super().step(state, action, task[0])


@pytest.mark.parametrize("learner", ["a2c", "ppo"])
def test_a_task_out_of_the_objective_moves_nothing(learner):
    """Task 2 never enters the objective: changing its rewards and observations changes nothing
    of the run but its own measured returns: not θ_0, not the other tasks' parameters, Adam
    moments or counts, not the observation statistics, not PPO's pooled advantage scale."""
    rewards = np.array([[1.0, 0.0, 0.5], [0.0, 0.1, 0.05], [0.3, 0.2, 0.9]])
    config = tiny_config(
        "distral_klent_2col",
        learner=learner,
        num_envs=8,
        unroll_length=1,
        episode_length=1,
        iterations_per_call=20,
        normalize_observations=True,
        ppo_normalize_advantages=True,  # the pooled scale κ: must not see task 2
        task_start_steps=(0, 0, 10**9),
    )
    runs = []
    for task_2_reward, task_2_obs in ((0.0, 3.0), (5.0, -7.0)):
        r = rewards.copy()
        r[2] += task_2_reward
        env = _ObservedBandit(r, [1.0, 2.0, task_2_obs])
        trainer = Trainer(env, config)
        state, metrics = jax.jit(trainer.run)(trainer.init(jax.random.PRNGKey(3)))
        runs.append((state, metrics))
    (a, metrics_a), (b, metrics_b) = runs
    others = lambda tree: jax.tree_util.tree_map(lambda x: x[:2], tree)
    assert _leaves_equal(a.params.prior, b.params.prior)
    assert _leaves_equal(
        others((a.params.task, a.params.value)), others((b.params.task, b.params.value))
    )
    adam_a, adam_b = a.opt_state[-1], b.opt_state[-1]
    for part in ("mu", "nu", "count"):
        x, y = getattr(adam_a, part), getattr(adam_b, part)
        assert _leaves_equal(x.prior, y.prior), part
        assert _leaves_equal(others((x.task, x.value)), others((y.task, y.value))), part
    assert _leaves_equal(a.obs_stats, b.obs_stats)
    np.testing.assert_array_equal(a.obs_stats.mean, [1.5, -1.5])  # tasks 0 and 1 only
    if learner == "ppo":
        np.testing.assert_array_equal(metrics_a["advantage_scale"], metrics_b["advantage_scale"])
        np.testing.assert_array_equal(
            a.learner_state.mean_square[:2], b.learner_state.mean_square[:2]
        )
    # Task 2 itself took no step at all, and its returns are still measured.
    initial = Trainer(env, config).init(jax.random.PRNGKey(3))
    third = lambda s: jax.tree_util.tree_map(lambda x: x[2], (s.params.task, s.params.value))
    assert _leaves_equal(third(a), third(initial))
    assert int(adam_a.count.task["params"]["Dense_0"]["kernel"][2]) == 0
    assert not np.array_equal(metrics_a["episode_return"][2], metrics_b["episode_return"][2])


def test_a_frozen_prior_reads_its_donor_statistics():
    """With ``freeze_prior`` and normalised observations, the statistics stay the donor's, so
    π_0 acts exactly as it did; without them the run is refused, naming ``initial_obs_stats``."""
    env = _ObservedBandit([[1.0, 0.0, 0.5], [0.0, 0.1, 0.05]], [1.0, 2.0])
    config = tiny_config(
        "distral_klent_1col",
        num_envs=8,
        unroll_length=1,
        episode_length=1,
        normalize_observations=True,
        freeze_prior=True,
        **SMALL,
    )
    donor_prior = make_networks(env, config).init(jax.random.PRNGKey(7)).prior
    donor_stats = RunningStats(
        mean=jnp.array([0.5, -0.5]), var=jnp.array([2.0, 3.0]), count=jnp.array(100.0)
    )
    start = lambda fresh: fresh.replace(
        prior=jax.tree_util.tree_map(lambda x: x[None], donor_prior)
    )
    _, out, _ = train(
        env, config, initial_params=start, initial_obs_stats=donor_stats, show_progress=False
    )
    assert _leaves_equal(out.params.prior, donor_prior)
    assert _leaves_equal(out.obs_stats, donor_stats)
    with pytest.raises(ValueError, match="initial_obs_stats"):
        train(env, config, initial_params=start, show_progress=False)
    with pytest.raises(ValueError, match="initial_obs_stats"):
        train(
            env,
            config.replace(normalize_observations=False),
            initial_obs_stats=donor_stats,
            show_progress=False,
        )
    # Not frozen: the run starts from the given statistics and folds its observations in.
    _, out, _ = train(
        env, config.replace(freeze_prior=False), initial_obs_stats=donor_stats, show_progress=False
    )
    assert float(out.obs_stats.count) > 100.0
    assert not _leaves_equal(out.obs_stats.mean, donor_stats.mean)
