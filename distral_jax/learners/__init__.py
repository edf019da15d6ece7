"""Learners: updates of all tasks' parameters from trajectories ``[N, E, T]``.

``a2c`` (the paper's synchronous actor-critic) and ``ppo`` learn the networks; ``make_learner``
builds the one a ``TrainConfig`` asks for. ``soft_q`` is the sample-based tabular agent.
"""

from __future__ import annotations

import optax

from distral_jax.configs import TrainConfig
from distral_jax.learners.a2c import A2C
from distral_jax.learners.base import Learner, LearnerOutput, make_optimizer
from distral_jax.learners.ppo import PPO
from distral_jax.networks import DistralNetworks

__all__ = ["A2C", "PPO", "Learner", "LearnerOutput", "make_learner", "make_optimizer"]


def make_learner(
    config: TrainConfig, networks: DistralNetworks, optimizer: optax.GradientTransformation
) -> Learner:
    """The learner ``config.learner`` names, with the config's static settings.

    The learners' settings have no defaults of their own: ``TrainConfig`` holds them.
    """
    if config.learner == "ppo":
        return PPO(
            networks,
            optimizer,
            regularizer=config.learner_regularizer,
            epochs=config.ppo_epochs,
            minibatches=config.ppo_minibatches,
            clip=config.ppo_clip,
            normalize_advantages=config.ppo_normalize_advantages,
        )
    return A2C(networks, optimizer, regularizer=config.learner_regularizer)
