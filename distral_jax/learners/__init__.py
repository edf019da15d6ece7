"""Learners: updates of all tasks' parameters from trajectories ``[N, E, T]``.

``a2c`` (the paper's synchronous actor-critic) and ``ppo`` learn on-policy, ``sac`` (soft
actor-critic) off-policy from a replay buffer per task; ``make_learner`` builds the one a
``TrainConfig`` asks for. ``soft_q`` is the sample-based tabular agent.
"""

from __future__ import annotations

import optax

from distral_jax.configs import TrainConfig
from distral_jax.learners.a2c import A2C
from distral_jax.learners.base import Learner, LearnerOutput, make_optimizer
from distral_jax.learners.ppo import PPO
from distral_jax.learners.sac import SAC
from distral_jax.networks import DistralNetworks

__all__ = ["A2C", "PPO", "SAC", "Learner", "LearnerOutput", "make_learner", "make_optimizer"]


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
    if config.learner == "sac":
        target = config.sac_target_entropy
        return SAC(
            networks,
            optimizer,
            num_tasks=networks.num_tasks,
            capacity=config.replay_capacity,
            items_per_iteration=config.num_envs * config.unroll_length,
            batch_size=config.sac_batch_size,
            grad_updates=config.sac_grad_updates,
            warmup_steps=config.sac_warmup_steps,
            tau=config.sac_tau,
            auto_temperature=config.sac_auto_temperature,
            target_entropy=None if target is None else float(target),
        )
    return A2C(networks, optimizer, regularizer=config.learner_regularizer)
