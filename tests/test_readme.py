"""The README's task-family example runs as printed."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _example(name: str) -> str:
    """The code of the README's Python block marked ``<!-- tested: NAME -->``."""
    text = README.read_text()
    match = re.search(rf"<!-- tested: {name} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"the README lost its tested {name}"
    return match.group(1)


def _run(code: str) -> dict:
    """The namespace that the README's ``code`` leaves."""
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    return namespace


def test_family_example_learns():
    namespace = _run(_example("family example"))
    returns = np.asarray(namespace["metrics"]["eval/episode_return"])
    assert returns.shape == (3,) and np.all(returns > 0.5), returns


def test_load_policy_example_acts(tmp_path, monkeypatch):
    """The README's example, on the point mass (a Brax family compiles for a minute)."""
    from distral_jax.configs import TrainConfig  # noqa: PLC0415
    from distral_jax.envs.registry import make_family  # noqa: PLC0415
    from distral_jax.train import train  # noqa: PLC0415

    code = _example("load_policy example")
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
    namespace = _run(code)
    assert namespace["episodes"].returns.shape == (4, 2)


@pytest.mark.slow
def test_recurrent_example_remembers_the_cue():
    namespace = _run(_example("recurrent example"))
    assert np.all(np.asarray(namespace["metrics"]["eval/success_greedy"]) >= 0.95)
    assert namespace["action"].shape == (2, 1)
    assert np.all(np.asarray(namespace["episodes"].success).mean(axis=1) >= 0.95)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree_util.tree_leaves(namespace["state"]))
