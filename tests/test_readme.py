"""The README's task-family example runs as printed."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_family_example_learns():
    text = README.read_text()
    match = re.search(r"<!-- tested: family example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "the README lost its tested family example"
    namespace: dict = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)  # noqa: S102
    returns = np.asarray(namespace["metrics"]["eval/episode_return"])
    assert returns.shape == (3,) and np.all(returns > 0.5), returns


def test_load_policy_example_acts(tmp_path, monkeypatch):
    """The README's example, on the point mass (a Brax family compiles for a minute)."""
    from distral_jax.configs import TrainConfig  # noqa: PLC0415
    from distral_jax.envs.registry import make_family  # noqa: PLC0415
    from distral_jax.train import train  # noqa: PLC0415

    text = README.read_text()
    match = re.search(r"<!-- tested: load_policy example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "the README lost its tested load_policy example"
    code = match.group(1)
    family = 'make_family("halfcheetah_vel", num_tasks=4)'
    assert family in code
    code = code.replace(family, 'make_family("point_mass", num_tasks=4)')
    config = TrainConfig(
        learner="ppo", num_envs=4, unroll_length=5, iterations_per_call=2, total_env_steps=160,
        eval_every=160, eval_envs=2, hidden_sizes=(8,), episode_length=20, ppo_minibatches=2,
    )  # fmt: skip
    monkeypatch.chdir(tmp_path)
    train(make_family("point_mass", num_tasks=4), config, checkpoint_dir="ckpt/cheetah",
          show_progress=False)  # fmt: skip
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["episodes"].returns.shape == (4, 2)


@pytest.mark.slow
def test_recurrent_example_remembers_the_cue():
    text = README.read_text()
    match = re.search(r"<!-- tested: recurrent example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "the README lost its tested recurrent example"
    namespace: dict = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)  # noqa: S102
    assert np.all(np.asarray(namespace["metrics"]["eval/success_greedy"]) >= 0.95)
    assert namespace["action"].shape == (2, 1)
    assert np.all(np.asarray(namespace["episodes"].success).mean(axis=1) >= 0.95)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree_util.tree_leaves(namespace["state"]))
