"""DeepMind Control Suite bodies as task families: one body, several rewards (EnvPool's C++).

Distral's natural setting: the tasks share the body, the observation and the action, and differ
only in what they reward. The simulator is EnvPool's C++ port of the Control Suite
(``envs.envpool_tasks``); observations are its dict of arrays flattened in the suite's key
order, as float32. Every episode lasts 1000 steps and ends by truncation.

  ============  ==========================================================  =====  ======
  family        tasks                                                       obs    action
  ============  ==========================================================  =====  ======
  dmc_walker    stand, walk, run                                            24     6
  dmc_cheetah   run at target speeds (default 2.5, 5, 7.5, 10 m/s)          17     6
  dmc_finger    spin, turn_easy, turn_hard                                  12     2
  dmc_cartpole  balance, balance_sparse, swingup, swingup_sparse            5      1
  ============  ==========================================================  =====  ======

The port has one cheetah task, run: reward ``min(1, max(0, v) / 10)`` for forward speed ``v``
(the suite's linear tolerance, bounds ``[10, inf)``, margin 10). A task at target speed ``s``
(``0 < s <= 10``) takes that reward through ``min(1, r · 10 / s)``, which is exactly the same
tolerance with bounds ``[s, inf)`` and margin ``s``: the target speeds are the suite's own
reward, rescaled on the host, not a reward computed from observations.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from distral_jax.envs.envpool_tasks import EnvpoolFamily, HostTask

EPISODE_LENGTH = 1000
_RUN_SPEED = 10.0  # the Control Suite's cheetah run speed (m/s)

_BODIES = {
    "walker": {"stand": "WalkerStand-v1", "walk": "WalkerWalk-v1", "run": "WalkerRun-v1"},
    "finger": {
        "spin": "FingerSpin-v1",
        "turn_easy": "FingerTurnEasy-v1",
        "turn_hard": "FingerTurnHard-v1",
    },
    "cartpole": {
        "balance": "CartpoleBalance-v1",
        "balance_sparse": "CartpoleBalanceSparse-v1",
        "swingup": "CartpoleSwingup-v1",
        "swingup_sparse": "CartpoleSwingupSparse-v1",
    },
}


def _body(body: str, tasks: Sequence[str] | None, **kwargs) -> EnvpoolFamily:
    known = _BODIES[body]
    names = (
        tuple(known) if tasks is None else ((tasks,) if isinstance(tasks, str) else tuple(tasks))
    )
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise ValueError(
            f"`tasks` must be {body} tasks, got {list(names)} (unknown: {unknown}); "
            f"allowed: {list(known)}"
        )
    host_tasks = [HostTask(f"{body}-{n}", known[n]) for n in names]
    return EnvpoolFamily(host_tasks, **_family_kwargs(**kwargs))


def _family_kwargs(
    episode_length: int = EPISODE_LENGTH,
    task_id_in_obs: bool = False,
    simulator_seed: int | None = None,
    num_threads: int | None = None,
) -> dict:
    return {
        "episode_length": episode_length,
        "task_id_in_obs": task_id_in_obs,
        "simulator_seed": simulator_seed,
        "num_threads": num_threads,
    }


def dmc_walker(tasks: Sequence[str] | None = None, **kwargs) -> EnvpoolFamily:
    """The walker: stand, walk, run (or a subset ``tasks``). Keyword arguments:
    ``episode_length`` (1000), ``task_id_in_obs`` (False), ``simulator_seed``, ``num_threads``."""
    return _body("walker", tasks, **kwargs)


def dmc_finger(tasks: Sequence[str] | None = None, **kwargs) -> EnvpoolFamily:
    """The finger: spin, turn_easy, turn_hard (or a subset); keyword arguments as
    ``dmc_walker``'s."""
    return _body("finger", tasks, **kwargs)


def dmc_cartpole(tasks: Sequence[str] | None = None, **kwargs) -> EnvpoolFamily:
    """The cart-pole: balance and swing-up, dense and sparse (or a subset); keyword arguments
    as ``dmc_walker``'s."""
    return _body("cartpole", tasks, **kwargs)


def _target_speed_reward(reward: np.ndarray, speed: float) -> np.ndarray:
    """The run reward rescaled to a target ``speed`` (module docstring)."""
    return np.minimum(1.0, reward * (_RUN_SPEED / speed))


def dmc_cheetah(speeds: Sequence[float] = (2.5, 5.0, 7.5, 10.0), **kwargs) -> EnvpoolFamily:
    """The cheetah running at target ``speeds`` (m/s, each in ``(0, 10]``); keyword arguments
    as ``dmc_walker``'s."""
    speeds = tuple(float(s) for s in np.atleast_1d(speeds))
    if not speeds or not all(0.0 < s <= _RUN_SPEED for s in speeds):
        raise ValueError(f"`speeds` must be target speeds in (0, 10] m/s, got {list(speeds)}")
    host_tasks = [
        HostTask(
            f"cheetah-run-{s:g}",
            "CheetahRun-v1",
            reward_map=None
            if s == _RUN_SPEED
            else functools.partial(_target_speed_reward, speed=s),
        )
        for s in speeds
    ]
    return EnvpoolFamily(host_tasks, **_family_kwargs(**kwargs))
