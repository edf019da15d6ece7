"""Task families: the protocol (``base``), wrappers, and the families themselves.

``gridworld``, ``bandit`` and ``point_mass`` are pure JAX; ``brax_tasks`` (which imports Brax)
holds the continuous-control families and the adapter that turns any Brax env into a family.
"""

from distral_jax.envs.base import State, TaskFamily, batch_reset, batch_step, task_slice
from distral_jax.envs.wrappers import AutoReset, EpisodeLimit, wrap_for_training

__all__ = [
    "AutoReset",
    "EpisodeLimit",
    "State",
    "TaskFamily",
    "batch_reset",
    "batch_step",
    "task_slice",
    "wrap_for_training",
]
