"""Named training configurations: the settings the studies and the tests start from.

Each function returns a ``TrainConfig`` that one or more of ``experiments/*.py`` (and the tests
that exercise them) build on with ``.replace``: one home per setting, so that two studies said
to share a configuration cannot drift apart. The variant, and where a family fixes it the
episode length, are set by whoever uses them.
"""

from __future__ import annotations

from distral_jax.configs import TrainConfig


def grid_worlds() -> TrainConfig:
    """A2C on the grid-world designs (``two_rooms``, ``corridor``) of eight tasks.

    Short jitted calls (10 updates of 16 environments x 10 steps per task) and frequent
    evaluations, so that the steps to a bar are resolved finely. The episode length is the
    design's (50 for two_rooms, 60 for corridor). Used by ``gridworld_deep.py``, ``transfer.py``
    and, with longer calls, ``robustness.py``.
    """
    return TrainConfig(
        beta=100.0,
        num_envs=16,
        unroll_length=10,
        iterations_per_call=10,
        total_env_steps=320_000,
        eval_every=12_800,
        eval_envs=8,
        hidden_sizes=(64,),
        learning_rate=3e-3,
        gamma=0.95,
    )


def point_mass_ppo() -> TrainConfig:
    """PPO on the point mass going round a wall (``PointMassGoals``), four tasks.

    The settings of tests/test_ppo.py's sweep (β = 50 and a step size of 1e-2 were reliable
    there): 16 environments x 20 steps per task, 4 epochs of 4 minibatches, 240 updates (76,800
    env steps per task) on normalised observations. Used by ``brax_multitask.py --family
    point_mass``, ``robustness.py`` and ``transfer.py``.
    """
    return TrainConfig(
        learner="ppo",
        normalize_observations=True,
        beta=50.0,
        learning_rate=1e-2,
        gamma=0.95,
        num_envs=16,
        unroll_length=20,
        ppo_epochs=4,
        ppo_minibatches=4,
        hidden_sizes=(32,),
        episode_length=100,
        iterations_per_call=20,
        total_env_steps=307_200,
        eval_every=25_600,
        eval_envs=8,
    )


def tiny(**overrides) -> TrainConfig:
    """A run of a few seconds on a CPU, for tests and smoke runs: 4 environments x 5 steps per
    task, 4 updates per jitted call, 30-step episodes, 2 evaluation episodes per task and one
    hidden layer of 16. ``overrides`` replace any field (the budget, above all)."""
    base = TrainConfig(
        num_envs=4,
        unroll_length=5,
        iterations_per_call=4,
        episode_length=30,
        eval_envs=2,
        hidden_sizes=(16,),
    )
    return base.replace(**overrides)
