"""Record reference rollouts of official Meta-World v3 tasks beside EnvPool's C++ port.

PLACEHOLDER
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
from metaworld.env_dict import ALL_V3_ENVIRONMENTS
from metaworld.types import Task

SEED = 0
"""EnvPool pool seed; it alone decides the object and goal positions of the recorded episode."""
ACTION_SEED = 2024
"""Seed of the numpy generator that draws the shared action sequence."""
T = 100
"""Recorded steps per task."""
OBS_DIM = 39
OUT = Path(__file__).with_name("metaworld_reference.npz")

# For each task, the observation entry that reveals each component of the reset's random vector
# (read off the task's `reset_model` in metaworld 3.1.1). In every case listed the entry is the
# component plus a constant: the object position is written straight into the simulator, and the
# goal is the random vector plus a fixed offset (or the position of a site on a body placed at
# it). `None` marks a component that never reaches the simulator state: push-v3 takes both
# heights from the settled object instead of the random vector.
OBJ = (4, 5, 6)
GOAL = (36, 37, 38)
RAND_VEC_OBS_INDEX: dict[str, tuple[int | None, ...]] = {
    "reach-v3": OBJ + GOAL,
    "push-v3": (4, 5, None, 36, 37, None),
    "pick-place-v3": OBJ + GOAL,
    # Peg position (read through the grasp site on the peg) and the box the peg goes into.
    "peg-insert-side-v3": OBJ + GOAL,
    # The remaining MT10 tasks randomise one body (door, drawer, button box, window) whose
    # position fixes the goal.
    "door-open-v3": GOAL,
    "drawer-open-v3": GOAL,
    "drawer-close-v3": GOAL,
    "button-press-topdown-v3": GOAL,
    "window-open-v3": GOAL,
    "window-close-v3": GOAL,
}
TASKS = ("reach-v3", "push-v3", "pick-place-v3")


@dataclass(frozen=True)
class RandVecMap:
    """Affine map from a first observation back to the random vector that produced it."""

    obs_index: tuple[int | None, ...]
    offset: np.ndarray  # observation entry minus random-vector component
    filler: np.ndarray  # values for components that do not reach the simulator

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


def with_rand_vec(task: Task, rand_vec: np.ndarray) -> Task:
    """A copy of a benchmark task whose object and goal positions are `rand_vec`."""
    data = pickle.loads(task.data)
    data["rand_vec"] = np.asarray(rand_vec, dtype=np.float64)
    return Task(env_name=task.env_name, data=pickle.dumps(data))


def official_env(name: str, task: Task) -> Any:
    # `set_task` is how the MT benchmarks configure an env: it freezes the random vector and,
    # with MT1's task data, makes the goal observable.
    env = ALL_V3_ENVIRONMENTS[name]()
    env.set_task(task)
    return env


def calibrate(name: str, tasks: list[Task]) -> RandVecMap:
    """Measure the observation-minus-random-vector offsets on two official resets.

    Two resets with different random vectors must give the same offsets, else the entry is not a
    translate of the component and inverting it would not reproduce the episode.
    """
    index = RAND_VEC_OBS_INDEX[name]
    offsets = []
    for task in tasks[:2]:
        rand_vec = pickle.loads(task.data)["rand_vec"]
        obs, _ = official_env(name, task).reset()
        offsets.append(
            np.array([obs[j] - rand_vec[i] if j is not None else 0.0 for i, j in enumerate(index)])
        )
    np.testing.assert_allclose(offsets[0], offsets[1], rtol=0, atol=1e-12, err_msg=name)
    filler = np.asarray(pickle.loads(tasks[0].data)["rand_vec"], dtype=np.float64)
    return RandVecMap(obs_index=index, offset=offsets[0], filler=filler)


def make_actions(rng: np.random.Generator) -> np.ndarray:
    """A smoothed random walk for the hand, a descent toward the table, then a grasp attempt.

    Actions move the mocap by at most 1 cm a step, so an AR(1) walk with a stationary spread near
    0.7 travels tens of centimetres over the episode. The first 30 steps also push down so the
    fingers reach object height, and the gripper closes on steps 35-74 so finger contacts (and
    the grasp terms of the rewards) are exercised.
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
    mt1 = metaworld.MT1(name, seed=SEED)
    rand_map = calibrate(name, mt1.train_tasks)

    # Goal-observable pool, as in the MT benchmarks; the default (True) hides the goal.
    pool = envpool.make(
        envpool_id(name), env_type="gymnasium", num_envs=1, seed=SEED, partially_observable=False
    )
    ep_obs0, ep_info = pool.reset()
    ep_obs = [np.asarray(ep_obs0[0], dtype=np.float64)]
    assert not ep_info["success"][0], f"{name}: seed {SEED} starts solved"

    rand_vec = rand_map.invert(ep_obs[0])
    env = official_env(name, with_rand_vec(mt1.train_tasks[0], rand_vec))
    obs0, _ = env.reset()
    reset_gap = np.abs(obs0 - ep_obs[0])
    synced = [j for j in rand_map.obs_index if j is not None]
    print(f"{name}: rand_vec {np.array2string(rand_vec, precision=5)}")
    print(
        f"{name}: first observation max |official - envpool| = {reset_gap.max():.3g}; "
        f"entries set by the random vector {reset_gap[synced].max():.3g}; "
        f"entries off by more than 1e-12: {np.flatnonzero(reset_gap > 1e-12).tolist()}"
    )
    # Only the entries the random vector sets can be forced to agree; the rest are simulated
    # while the hand settles, and EnvPool steps them with its own MuJoCo build.
    assert reset_gap[synced].max() < 1e-12, f"{name}: the random vector was not recovered"

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
    obs_diff = np.abs(out["obs"] - out["envpool_obs"]).max()
    reward_diff = np.abs(out["reward"] - out["envpool_reward"]).max()
    same_success = bool(np.array_equal(out["success"], out["envpool_success"]))
    print(
        f"{name}: over {T} steps max |obs diff| = {obs_diff:.3g}, "
        f"max |reward diff| = {reward_diff:.3g}, success flags agree: {same_success} "
        f"(official successes: {int(out['success'].sum())}, "
        f"reward range [{out['reward'].min():.3f}, {out['reward'].max():.3f}])"
    )
    return out


def zero_action_episode() -> None:
    """Report when EnvPool's Reach-v3 ends a 500-step episode of zero actions."""
    pool = envpool.make("MetaWorld/Reach-v3", env_type="gymnasium", num_envs=1, seed=SEED)
    pool.reset()
    terminated, truncated = [], []
    for _ in range(500):
        _, _, term, trunc, _ = pool.step(np.zeros((1, 4), dtype=np.float32))
        terminated.append(bool(term[0]))
        truncated.append(bool(trunc[0]))
    print(
        f"Reach-v3, 500 zero actions: first truncated step index "
        f"{truncated.index(True) if any(truncated) else None}, "
        f"truncated count {sum(truncated)}, any terminated {any(terminated)}"
    )


def main() -> None:
    actions = make_actions(np.random.default_rng(ACTION_SEED))
    arrays: dict[str, np.ndarray] = {
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
