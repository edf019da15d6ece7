"""The registry of task families: a name -> the function that builds the family.

Families are imported when built, so that listing them, or building a pure-JAX one, does not
import Brax.
"""

from __future__ import annotations

import importlib

from distral_jax.envs.base import TaskFamily

# name -> "module:attribute" of the constructor.
FAMILIES: dict[str, str] = {
    "gridworld": "distral_jax.envs.gridworld:GridWorld",
    "two_rooms": "distral_jax.envs.gridworld:two_rooms_design",
    "corridor": "distral_jax.envs.gridworld:corridor_design",
    "bandit": "distral_jax.envs.bandit:MultiTaskBandit",
    "cue_recall": "distral_jax.envs.cue_recall:CueRecall",
    "point_mass": "distral_jax.envs.point_mass:PointMassGoals",
    "halfcheetah_vel": "distral_jax.envs.brax_tasks:halfcheetah_vel",
    "ant_dir": "distral_jax.envs.brax_tasks:ant_dir",
    "ant_goal": "distral_jax.envs.brax_tasks:ant_goal",
    "halfcheetah_mass": "distral_jax.envs.brax_tasks:halfcheetah_mass",
    "xland_minigrid": "distral_jax.envs.xminigrid_tasks:XLandMiniGridFamily",
    "gymnax": "distral_jax.envs.gymnax_tasks:GymnaxFamily",
    # Simulated in C++ by EnvPool, stepped from the compiled loop by a host call.
    "metaworld": "distral_jax.envs.metaworld_tasks:metaworld",
    "metaworld_mt10": "distral_jax.envs.metaworld_tasks:metaworld_mt10",
    "metaworld_mt50": "distral_jax.envs.metaworld_tasks:metaworld_mt50",
    "dmc_walker": "distral_jax.envs.dmc_tasks:dmc_walker",
    "dmc_cheetah": "distral_jax.envs.dmc_tasks:dmc_cheetah",
    "dmc_finger": "distral_jax.envs.dmc_tasks:dmc_finger",
    "dmc_cartpole": "distral_jax.envs.dmc_tasks:dmc_cartpole",
}

BRAX_FAMILIES = tuple(name for name, path in FAMILIES.items() if ".brax_tasks:" in path)


def make_family(name: str, **kwargs) -> TaskFamily:
    """Builds the family registered as ``name`` with keyword arguments.

    Raises:
      ValueError: an unknown ``name`` (the message lists the registered ones).
    """
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; allowed names: {sorted(FAMILIES)}")
    module, attribute = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), attribute)(**kwargs)
