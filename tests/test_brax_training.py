"""A short end-to-end training run on a Brax family: PPO Distral, continuous actions."""

import numpy as np
import pytest

from distral_jax.configs import TrainConfig
from distral_jax.envs import brax_tasks
from distral_jax.train import train


@pytest.mark.slow
def test_ppo_distral_smoke_run_on_halfcheetah_vel():
    env = brax_tasks.halfcheetah_vel(num_tasks=2)
    config = TrainConfig(
        variant="distral_klent_2col",
        learner="ppo",
        normalize_observations=True,
        num_envs=4,
        unroll_length=5,
        iterations_per_call=2,
        total_env_steps=2 * 4 * 5 * 2 * 2,
        episode_length=8,
        eval_every=10**9,
        eval_envs=2,
        hidden_sizes=(8,),
        ppo_epochs=1,
        ppo_minibatches=2,
    )
    history = []
    make_policy, policy_params, metrics = train(
        env, config, progress_fn=lambda step, m: history.append(step), show_progress=False
    )
    assert history == [0, config.total_env_steps]
    for name in ("training/loss", "training/kl", "eval/episode_return", "eval/pi0_episode_return"):
        assert metrics[name].shape == (2,) and np.all(np.isfinite(metrics[name])), name
    # Observation statistics were updated from the rollouts and travel with the policy.
    assert float(policy_params.obs_stats.count) == config.total_env_steps
