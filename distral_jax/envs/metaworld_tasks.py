"""Meta-World v3 (MT10, MT50, any list of its tasks) as task families, simulated by EnvPool.

The benchmark multitask RL papers report on: Sawyer-arm manipulation tasks sharing a 39-d
observation (hand position, gripper opening, two objects' positions and quaternions, the same
18 numbers one step earlier, and the goal) and a 4-d action (hand displacement, gripper). The
simulator is EnvPool's C++ port of Meta-World v3 (``envs.envpool_tasks``: stepped from inside
the compiled loop through one host call per step); ``tests/data/metaworld_reference.npz``,
recorded with the ``metaworld`` 3.1.1 package itself, checks it.

The protocol of Meta-World's MT benchmarks, as these families build it by default:

  * 500-step episodes ending by truncation (the task never terminates);
  * the goal in the observation (MT benchmarks are goal-observable) and the task's one-hot
    index appended (``task_id_in_obs``, as MT-SAC reads it), so MT10's observation is 49-d;
  * success: ``info["success"]`` at any step of an episode (``metrics["success"]``); the
    evaluation reports it per task and its mean, with the returns.

One difference from the ``metaworld`` package: it draws each task's 50 goal/object variations
once (from its seed) and samples one of those 50 for each episode; EnvPool's port has no way to
set a variation and draws a fresh one from the same uniform ranges at every reset, so the
variations seen here are unlimited rather than 50 — the same distribution, not the same finite
set. Success rates are therefore comparable in distribution; per-seed figures are not.
"""

from __future__ import annotations

from collections.abc import Sequence

from distral_jax.envs.envpool_tasks import EnvpoolFamily, HostTask

EPISODE_LENGTH = 500

# Meta-World's MT10 in its own order.
MT10 = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)


def all_tasks() -> tuple[str, ...]:
    """The 50 v3 task names (MT50), in Meta-World's order."""
    from envpool.mujoco.metaworld import registration  # noqa: PLC0415

    return tuple(registration.metaworld_v3_envs)


def _envpool_id(name: str) -> str:
    stem, version = name.rsplit("-", 1)
    return "MetaWorld/" + "".join(p[:1].upper() + p[1:] for p in stem.split("-")) + "-" + version


def metaworld(
    tasks: Sequence[str] = ("reach-v3",),
    episode_length: int = EPISODE_LENGTH,
    task_id_in_obs: bool = True,
    simulator_seed: int | None = None,
    num_threads: int | None = None,
) -> EnvpoolFamily:
    """A family of the Meta-World v3 ``tasks`` (names such as ``"reach-v3"``; repeats allowed).

    Args:
      tasks: v3 task names, at least one (``all_tasks()`` lists them).
      episode_length: the time limit (Meta-World's is 500).
      task_id_in_obs: append each task's one-hot index to the observation (MT protocol).
      simulator_seed: the simulators' seeds (``EnvpoolFamily``); default from the resets' PRNG keys.
      num_threads: EnvPool threads per task.
    Raises:
      ValueError: naming ``tasks`` for an empty list or an unknown name (listing the names).
    """
    names = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    known = all_tasks()
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise ValueError(
            f"`tasks` must be Meta-World v3 task names, got {list(names)} (unknown: {unknown}); "
            f"allowed: {list(known)}"
        )
    host_tasks = [
        HostTask(name, _envpool_id(name), (("partially_observable", False),)) for name in names
    ]
    return EnvpoolFamily(
        host_tasks,
        episode_length,
        task_id_in_obs=task_id_in_obs,
        success_key="success",
        simulator_seed=simulator_seed,
        num_threads=num_threads,
    )


def metaworld_mt10(**kwargs) -> EnvpoolFamily:
    """MT10: Meta-World's ten tasks (``MT10``), with ``metaworld``'s other arguments."""
    return metaworld(MT10, **kwargs)


def metaworld_mt50(**kwargs) -> EnvpoolFamily:
    """MT50: all fifty v3 tasks, with ``metaworld``'s other arguments."""
    return metaworld(all_tasks(), **kwargs)
