"""Record reference rollouts of the official Meta-World v3 MT10 tasks beside EnvPool's C++ port.

What it records (``metaworld_reference.npz``, next to this file): for each MT10 task, one
episode of the official ``metaworld==3.1.1`` environment driven by a fixed, seeded action sequence
for ``T = 100`` steps, together with what ``envpool==1.2.5`` (``MetaWorld/<Task>-v3``) returns
for the same episode and actions. Keys, for a task name ``t`` such as ``reach-v3``:

* ``t/seed`` (int): the EnvPool pool seed that chose the object and goal positions;
* ``t/actions`` ``[T, 4]`` float32 in ``[-1, 1]``: hand xyz displacement and gripper effort;
* ``t/obs`` ``[T+1, 39]`` float64, ``t/reward`` ``[T]`` float64, ``t/success`` ``[T]``
  (``info["success"]``), ``t/terminated`` ``[T]``, ``t/truncated`` ``[T]``: the official env;
* ``t/envpool_obs``, ``t/envpool_reward``, ``t/envpool_success``: EnvPool on the same episode;

plus ``tasks`` (the task names), ``metaworld_version`` and ``envpool_version``.

Why a separate virtual environment: ``metaworld 3.1.1`` pins ``mujoco==3.3.0``, which cannot be
installed beside the MuJoCo that brax needs in the project's environment. Recreate the file
from the repository root (the virtual environment may live anywhere) with::

    python3 -m venv metaworld-venv/
    metaworld-venv/bin/pip install metaworld==3.1.1 envpool==1.2.5
    metaworld-venv/bin/python tests/data/record_metaworld_reference.py

How the two simulators are put on the same episode: EnvPool 1.2.5 reports no MuJoCo state in
``info`` and cannot be handed a task variation; it draws each reset's random vector (object and
goal positions) itself from ``seed``. Each task's ``reset_model`` in metaworld 3.1.1 writes that
vector into the scene so that some observation entries equal a component plus a constant (the
object position, or the goal, which is the vector plus a fixed offset or a site on a body placed
at it). The script measures those constants on two official resets with different vectors
(they must agree to 1e-12), recovers the vector from EnvPool's first observation, installs it
in the official env through ``set_task`` (as the MT benchmarks do) and resets. The recovered
entries then agree exactly (max difference 0 in every task). The map is exact for all ten MT10
tasks; in push-v3 the two heights of the vector never reach the simulator (both are taken from
the settled object), so any value serves there.

Goal observability: metaworld 3.1.1 builds MT1/MT10/MT25/MT50 tasks with
``_MT_OVERRIDE = dict(partially_observable=False)`` (goal xyz in ``obs[36:39]``), while the ML
benchmarks hide it. The bare env classes and EnvPool both default to a hidden goal (zeros), so
the pool is made with ``partially_observable=False`` and the official env gets the MT override
through MT1's task data.

Agreement as measured by this script (official env on MuJoCo 3.3.0, EnvPool 1.2.5 with its bundled
MuJoCo 3.6.0, x86-64 Linux). "reset": largest gap in the first observation; "stepped": largest
gap over the 100 observations after a step (current frame and goal); "reward": over the 100
rewards (EnvPool returns float32 rewards); "success": steps whose flags differ.

=======================  =======  =======  =======  =======
task                     reset    stepped  reward   success
=======================  =======  =======  =======  =======
reach-v3                 4.9e-4   5.2e-3   1.0e-2   0
push-v3                  4.9e-4   1.2e-2   2.1e-3   0
pick-place-v3            4.9e-4   5.2e-3   0.10     0
door-open-v3             1.6e-8   6.3e-5   1.5e-5   0
drawer-open-v3           7.7e-5   1.7e-3   7.6e-3   0
drawer-close-v3          4.7e-16  4.5e-2   10       2
button-press-topdown-v3  5.1e-16  4.8e-9   3.3e-8   0
peg-insert-side-v3       3.3e-8   8.7e-4   7.2e-5   0
window-open-v3           5.4e-5   4.8e-9   3.2e-8   0
window-close-v3          0.2      4.8e-9   3.7e-8   0
=======================  =======  =======  =======  =======

With these actions only drawer-close-v3 reaches success (official 37 steps, EnvPool 35; the
drawer's slightly different travel puts two steps on opposite sides of the threshold, and the
reward jumps to 10 there).

Where the gaps come from:

* MuJoCo version. EnvPool's port runs MuJoCo 3.6.0, the official package 3.3.0. The hand
  settles identically at reset, but a resting object does not (quaternion entries 7-10 differ by
  up to 4.9e-4 in reach/push/pick-place), and contacts amplify the difference over the episode.
  With the official package installed over MuJoCo 3.6.0 (``pip install --no-deps
  metaworld==3.1.1`` beside ``mujoco==3.6.0``), every reset agrees to 5e-16 outside the cases
  below, every stepped observation to 6e-8, every reward but pick-place's to 3e-7, and all
  success flags agree.
* Stale reset observations. drawer-open, window-open and window-close change the scene after the
  last simulation step of ``reset_model`` without recomputing kinematics, so the official first
  observation shows the hand one substep early (5e-5 to 8e-5) and, in window-close, the handle
  where it was before the window was slid open for the episode (0.2 m off). EnvPool reports the
  refreshed positions. Both step from the same state: from the first step on, these tasks agree
  like the others.
* Reward of pick-place-v3. The official env stores ``init_left_pad``/``init_right_pad`` as views
  of the live simulator data, so its caging margins follow the pads; EnvPool freezes them at
  reset. Its rewards differ by up to 0.1 from the first step whatever the MuJoCo version.

Once, EnvPool ``MetaWorld/Reach-v3`` with 500 zero actions: ``truncated`` first becomes True at
step index 499 (the 500th step) and only there, and ``terminated`` is never True (the official
env behaves the same: it truncates at its 500-step ``max_path_length`` and never terminates).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import envpool
import metaworld
import numpy as np
from metaworld.env_dict import ALL_V3_ENVIRONMENTS, MT10_V3
from metaworld.sawyer_xyz_env import SawyerXYZEnv
from metaworld.types import Task

SEED = 0
"""EnvPool pool seed; it alone decides the object and goal positions of each recorded episode."""
ACTION_SEED = 2024
"""Seed of the numpy generator that draws the action sequence shared by all tasks."""
T = 100
"""Recorded steps per task."""
SYNC_ATOL = 1e-12
OUT = Path(__file__).with_name("metaworld_reference.npz")

# For each task, the observation entry that reveals each component of the reset's random vector,
# read off the task's `reset_model` in metaworld 3.1.1. `None` marks a component that never
# reaches the simulator state.
OBJ = (4, 5, 6)
GOAL = (36, 37, 38)
RAND_VEC_OBS_INDEX: dict[str, tuple[int | None, ...]] = {
    # Object position written into the free joint; goal taken as is.
    "reach-v3": OBJ + GOAL,
    # Same, but both heights come from the settled object rather than the vector.
    "push-v3": (4, 5, None, 36, 37, None),
    "pick-place-v3": OBJ + GOAL,
    # Door, drawer, button box and window: one body placed at the vector fixes the goal.
    "door-open-v3": GOAL,
    "drawer-open-v3": GOAL,
    "drawer-close-v3": GOAL,
    "button-press-topdown-v3": GOAL,
    # Peg (observed through its grasp site) and the box that the goal sits on.
    "peg-insert-side-v3": OBJ + GOAL,
    "window-open-v3": GOAL,
    "window-close-v3": GOAL,
}
TASKS = tuple(RAND_VEC_OBS_INDEX)


@dataclass(frozen=True)
class RandVecMap:
    """Map from a first observation back to the random vector that produced it."""

    obs_index: tuple[int | None, ...]
    offset: np.ndarray  # observation entry minus random-vector component
    filler: np.ndarray  # values for the components that do not reach the simulator

    def invert(self, obs: np.ndarray) -> np.ndarray:
        rand_vec = self.filler.copy()
        for i, j in enumerate(self.obs_index):
            if j is not None:
                rand_vec[i] = obs[j] - self.offset[i]
        return rand_vec


def envpool_id(name: str) -> str:
    """EnvPool spells `pick-place-v3` as `MetaWorld/PickPlace-v3`."""
    stem, ver = name.rsplit("-", 1)
    return "MetaWorld/" + "".join(part.capitalize() for part in stem.split("-")) + "-" + ver


def make_pool(name: str) -> Any:
    # Goal-observable, as in the MT benchmarks (EnvPool's default hides the goal).
    return envpool.make(
        envpool_id(name), env_type="gymnasium", num_envs=1, seed=SEED, partially_observable=False
    )


def with_rand_vec(task: Task, rand_vec: np.ndarray) -> Task:
    """A copy of an MT1 task whose object and goal positions come from `rand_vec`."""
    data = pickle.loads(task.data)
    data["rand_vec"] = np.asarray(rand_vec, dtype=np.float64)
    return Task(env_name=task.env_name, data=pickle.dumps(data))


def official_env(name: str, task: Task) -> SawyerXYZEnv:
    # `set_task` is how the MT benchmarks configure an env: it freezes the random vector and,
    # with MT1's task data, makes the goal observable.
    env = ALL_V3_ENVIRONMENTS[name]()
    env.set_task(task)
    return env


def calibrate(name: str, tasks: list[Task]) -> RandVecMap:
    """Measure the observation-minus-component offsets on two official resets.

    Resets with different random vectors must give the same offsets; otherwise the entry is not
    a translate of the component and inverting it would not reproduce the episode.
    """
    index = RAND_VEC_OBS_INDEX[name]
    offsets = []
    for task in tasks[:2]:
        rand_vec = pickle.loads(task.data)["rand_vec"]
        obs, _ = official_env(name, task).reset()
        offsets.append(
            np.array([obs[j] - rand_vec[i] if j is not None else 0.0 for i, j in enumerate(index)])
        )
    np.testing.assert_allclose(offsets[0], offsets[1], rtol=0, atol=SYNC_ATOL, err_msg=name)
    filler = np.asarray(pickle.loads(tasks[0].data)["rand_vec"], dtype=np.float64)
    return RandVecMap(obs_index=index, offset=offsets[0], filler=filler)


def make_actions(rng: np.random.Generator) -> np.ndarray:
    """A smoothed random walk for the hand, a descent toward the table, then a grasp attempt.

    An action moves the hand's mocap target by at most 1 cm, so an AR(1) walk with a stationary
    spread near 0.7 travels tens of centimetres in 100 steps. The first 30 steps also push down so
    the fingers reach object height, and the gripper closes on steps 35-74 so that finger contacts
    and the grasp terms of the rewards come into play.
    """
    xyz = np.zeros((T, 3))
    velocity = np.zeros(3)
    for t in range(T):
        velocity = 0.85 * velocity + 0.35 * rng.standard_normal(3)
        xyz[t] = velocity
    xyz[:30, 2] -= 0.6
    steps = np.arange(T)
    grip = np.where((steps >= 35) & (steps < 75), 1.0, -1.0)
    return np.clip(np.column_stack([xyz, grip]), -1.0, 1.0).astype(np.float32)


def record(name: str, actions: np.ndarray) -> dict[str, np.ndarray]:
    """Run one task's episode in both simulators and return its arrays (keys without `name/`)."""
    mt1 = metaworld.MT1(name, seed=SEED)
    rand_map = calibrate(name, mt1.train_tasks)

    pool = make_pool(name)
    ep_obs0, ep_info = pool.reset()
    ep_obs = [np.asarray(ep_obs0[0], dtype=np.float64)]
    assert not ep_info["success"][0], f"{name}: seed {SEED} starts solved"

    # EnvPool accepted this vector, so it already satisfies the resampling loops in the official
    # `reset_model` (which would spin forever on a frozen vector that fails them).
    rand_vec = rand_map.invert(ep_obs[0])
    env = official_env(name, with_rand_vec(mt1.train_tasks[0], rand_vec))
    obs0, _ = env.reset()
    reset_gap = np.abs(obs0 - ep_obs[0])
    synced = [j for j in rand_map.obs_index if j is not None]
    print(f"{name}: rand_vec {np.array2string(rand_vec, precision=5)}")
    print(
        f"{name}: first observation max |official - envpool| = {reset_gap.max():.3g}; "
        f"entries set by the random vector {reset_gap[synced].max():.3g}; "
        f"entries off by more than {SYNC_ATOL:g}: "
        f"{np.flatnonzero(reset_gap > SYNC_ATOL).tolist()}"
    )
    # Only the entries the random vector sets can be made to agree; the rest come out of the
    # reset's settling simulation, which EnvPool runs on its own MuJoCo build.
    assert reset_gap[synced].max() < SYNC_ATOL, f"{name}: the random vector was not recovered"

    obs, reward, success, terminated, truncated = [obs0], [], [], [], []
    ep_reward, ep_success = [], []
    for action in actions:
        o, r, term, trunc, info = env.step(action)
        obs.append(o)
        reward.append(r)
        success.append(info["success"])
        terminated.append(term)
        truncated.append(trunc)
        o, r, _, _, info = pool.step(action[None])
        ep_obs.append(o[0])
        ep_reward.append(r[0])
        ep_success.append(info["success"][0])

    out = {
        "seed": np.int64(SEED),
        "actions": actions,
        "obs": np.asarray(obs, dtype=np.float64),
        "reward": np.asarray(reward, dtype=np.float64),
        "success": np.asarray(success, dtype=bool),
        "terminated": np.asarray(terminated, dtype=bool),
        "truncated": np.asarray(truncated, dtype=bool),
        "envpool_obs": np.asarray(ep_obs, dtype=np.float64),
        "envpool_reward": np.asarray(ep_reward, dtype=np.float64),
        "envpool_success": np.asarray(ep_success, dtype=bool),
    }
    obs_gap = np.abs(out["obs"] - out["envpool_obs"])
    # Columns 18-35 repeat the previous row, so this leaves out the reset observation entirely.
    stepped_gap = np.delete(obs_gap[1:], np.s_[18:36], axis=1).max()
    reward_gap = np.abs(out["reward"] - out["envpool_reward"]).max()
    success_mismatch = int((out["success"] != out["envpool_success"]).sum())
    print(
        f"{name}: max |obs diff| = {obs_gap.max():.2g} over all rows, "
        f"{stepped_gap:.2g} over the {T} stepped states, "
        f"max |reward diff| = {reward_gap:.2g}, success flags differ on {success_mismatch} steps "
        f"(official successes {int(out['success'].sum())}, envpool "
        f"{int(out['envpool_success'].sum())}; official reward in "
        f"[{out['reward'].min():.3f}, {out['reward'].max():.3f}])"
    )
    return out


def zero_action_episode() -> None:
    """Report where a 500-step episode of zero actions ends, in EnvPool and in the official env."""
    zeros = np.zeros(4, dtype=np.float32)
    pool = make_pool("reach-v3")
    pool.reset()
    mt1 = metaworld.MT1("reach-v3", seed=SEED)
    env = official_env("reach-v3", mt1.train_tasks[0])
    env.reset()
    flags: dict[str, list[tuple[bool, bool]]] = {"envpool": [], "official": []}
    for _ in range(500):
        _, _, term, trunc, _ = pool.step(zeros[None])
        flags["envpool"].append((bool(term[0]), bool(trunc[0])))
        _, _, term, trunc, _ = env.step(zeros)
        flags["official"].append((bool(term), bool(trunc)))
    for source, steps in flags.items():
        truncated = [i for i, (_, trunc) in enumerate(steps) if trunc]
        terminated = [i for i, (term, _) in enumerate(steps) if term]
        print(
            f"reach-v3 ({source}), 500 zero actions: truncated at step indices {truncated}, "
            f"terminated at {terminated}"
        )


def main() -> None:
    assert set(TASKS) == set(MT10_V3), "the task list should be exactly MT10"
    actions = make_actions(np.random.default_rng(ACTION_SEED))
    arrays: dict[str, Any] = {
        "tasks": np.array(TASKS),
        "metaworld_version": np.array(version("metaworld")),
        "envpool_version": np.array(version("envpool")),
    }
    for name in TASKS:
        for key, value in record(name, actions).items():
            arrays[f"{name}/{key}"] = value
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.1f} KiB)")
    zero_action_episode()


if __name__ == "__main__":
    main()
