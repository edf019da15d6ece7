"""Task families simulated in C++ by EnvPool, stepped from inside the compiled training loop.

A task is an EnvPool environment id with its arguments (``MetaWorld/Reach-v3``,
``WalkerRun-v1``, ...), so a family is a list of ``HostTask``s that share an observation and an
action space. The family is written, like every family, for one environment of one task; its
``reset`` and ``step`` call the host once per program step through ``envs.host.host_call``,
which hands the whole ``[..., N, E]`` batch to one host call. There, each task has one EnvPool
pool of all its environments (every run's, every evaluation mode's), and the pools of all tasks
step in parallel (EnvPool's ``send`` to every pool, then ``recv``).

What a simulator outside JAX changes, and how the family honours it:

  * **Episodes restart on the host.** When an episode ends (termination, or the time limit
    ``episode_length``, which the pools apply as EnvPool's ``max_episode_steps``) the host
    resets that environment at once: ``obs`` is the next episode's first observation and
    ``info["final_obs"]`` the ended one's last. ``host_simulated`` is True, so ``AutoReset``
    calls no ``reset`` inside a step, and ``EpisodeLimit`` accepts only the family's own
    ``episode_length``. ``done`` is the task's termination only (Meta-World and DMC never
    terminate: their limits are truncations, marked by ``EpisodeLimit``).
  * **Each compiled reset has its own simulators.** Tracing ``reset`` opens a *stream*: the
    environments that this reset starts and whose states carry its id. Training (the
    trainer's ``init``) and evaluation (``run_episodes``, traced into the evaluation program)
    are different streams, so evaluation never touches the training environments. Running a
    reset program again restarts its stream's episodes; a state from an earlier run of it is
    refused by ``step`` (it would step simulators in another state than the one it holds).
  * **Runs.** ``num_runs > 1``: each run's environments are simulator instances of their own
    (the task's pool holds every run's), so runs stay independent.
  * **Randomness** comes from the pools' seeds: ``simulator_seed + t`` for task ``t`` of a
    stream when ``simulator_seed`` is given, else drawn from the reset's PRNG keys (so a run's
    seed decides it). Goals and initial states are the simulator's own draws.
  * **Refused:** a device mesh (JAX would gather every batch to one device for the host call:
    ``train`` refuses ``mesh`` for these families); ``jax.grad`` through a step.
  * **Checkpoints** keep parameters, optimiser state and replay exactly; the simulators cannot
    be saved, so a resumed run starts new episodes (``train`` replaces the restored environment
    states with freshly reset ones).

Observations: EnvPool's (a vector, or DMC's dict of arrays flattened in the spec's key order)
as float32, with the task's one-hot index appended when ``task_id_in_obs``. Actions in
``[-1, 1]`` (clipped) are mapped linearly onto each task's bounds.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from distral_jax.envs.base import PyTree, State, TaskFamily
from distral_jax.envs.host import host_call

_STREAMS = itertools.count()  # stream ids, unique in the process
_STREAMS_LOCK = threading.Lock()  # the trainer traces programs in threads


@dataclasses.dataclass(frozen=True)
class HostTask:
    """One task: an EnvPool environment id, its arguments, and an optional reward map.

    Attributes:
      name: the task's name in tables and metrics (``reach-v3``, ``walker-run``).
      env_id: the EnvPool id (``MetaWorld/Reach-v3``).
      kwargs: extra ``envpool.make`` arguments, as ``(name, value)`` pairs.
      reward_map: ``rewards [E] -> rewards [E]`` applied on the host (e.g. a target speed read
        off DMC's own reward); ``None`` keeps the simulator's reward.
    """

    name: str
    env_id: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    reward_map: Callable[[np.ndarray], np.ndarray] | None = None


def _import_envpool():
    try:
        import envpool  # noqa: PLC0415 (families are importable without it)
    except ImportError as error:  # pragma: no cover - installed by README's set-up
        raise ImportError(
            "EnvPool families need the `envpool` package (pip install envpool==1.2.5)"
        ) from error
    return envpool


def _flatten(obs, keys: tuple[str, ...] | None, count: int) -> np.ndarray:
    """EnvPool's observations of ``count`` envs as ``[count, O]`` float32."""
    if keys is None:
        return np.asarray(obs, np.float32).reshape(count, -1)
    return np.concatenate([np.asarray(obs[k], np.float32).reshape(count, -1) for k in keys], axis=1)


class EnvpoolFamily(TaskFamily):
    """A family of EnvPool tasks with one observation and action space (module docstring).

    Args:
      tasks: the tasks (at least one), all with the same observation size and action size.
      episode_length: the time limit (EnvPool's ``max_episode_steps``); ``EpisodeLimit``
        accepts no other.
      task_id_in_obs: append the task's one-hot index to the observation.
      success_key: the ``info`` flag of a successful step (Meta-World's ``"success"``); an
        episode succeeds if any of its steps does (``metrics["success"]``). ``None``: no
        success.
      simulator_seed: the pools' seeds (``simulator_seed + t`` for task ``t``); ``None``: drawn
        from the resets' PRNG keys.
      num_threads: EnvPool threads per pool; default ``min(envs of the task, CPU count)``.
    Raises:
      ValueError: naming the argument: no tasks, a non-positive ``episode_length`` or
        ``num_threads``, tasks whose spaces differ, an unknown EnvPool id.
    """

    def __init__(
        self,
        tasks: Sequence[HostTask],
        episode_length: int,
        task_id_in_obs: bool = False,
        success_key: str | None = None,
        simulator_seed: int | None = None,
        num_threads: int | None = None,
    ):
        envpool = _import_envpool()
        self._tasks = tuple(tasks)
        if not self._tasks or not all(isinstance(t, HostTask) for t in self._tasks):
            raise ValueError(f"`tasks` must be a non-empty sequence of HostTask, got {tasks!r}")
        if isinstance(episode_length, bool) or int(episode_length) < 1:
            raise ValueError(f"`episode_length` must be a positive integer, got {episode_length!r}")
        if num_threads is not None and int(num_threads) < 1:
            raise ValueError(f"`num_threads` must be a positive integer, got {num_threads!r}")
        known = set(envpool.list_all_envs())
        specs = []
        for task in self._tasks:
            if task.env_id not in known:
                raise ValueError(f"`tasks`: {task.env_id!r} is not an EnvPool id")
            specs.append(envpool.make_spec(task.env_id, **dict(task.kwargs)))
        self._obs_keys = _observation_keys(specs[0].observation_space)
        sizes = {_observation_size(s.observation_space) for s in specs}
        actions = {tuple(s.action_space.shape) for s in specs}
        if len(sizes) != 1 or len(actions) != 1 or len(next(iter(actions))) != 1:
            raise ValueError(
                "`tasks` must share one observation size and one flat action space, got "
                + ", ".join(
                    f"{t.name}: obs {_observation_size(s.observation_space)}, action "
                    f"{tuple(s.action_space.shape)}"
                    for t, s in zip(self._tasks, specs, strict=True)
                )
            )
        self._sim_obs_size = sizes.pop()
        self._action_size = int(next(iter(actions))[0])
        # Each task's action bounds, [N, A]: actions in [-1, 1] map onto low + (a + 1) · half.
        low, high = (
            np.stack(
                [np.broadcast_to(getattr(s.action_space, b), (self._action_size,)) for s in specs]
            )
            for b in ("low", "high")
        )
        self._low, self._half_range = low, 0.5 * (high - low)
        self.episode_length = int(episode_length)
        self.task_id_in_obs = bool(task_id_in_obs)
        self.success_key = success_key
        self.simulator_seed = None if simulator_seed is None else int(simulator_seed)
        # Public attributes identify a run's family in its checkpoint (``run_signature``).
        self.task_names = tuple(t.name for t in self._tasks)
        self.env_ids = tuple(t.env_id for t in self._tasks)
        self._num_threads = None if num_threads is None else int(num_threads)
        self._streams: dict[int, _Stream] = {}

    # --- the TaskFamily contract -------------------------------------------------------------

    @property
    def num_tasks(self) -> int:
        return len(self._tasks)

    @property
    def observation_size(self) -> int:
        return self._sim_obs_size + (self.num_tasks if self.task_id_in_obs else 0)

    @property
    def action_size(self) -> int:
        return self._action_size

    @property
    def discrete(self) -> bool:
        return False

    @property
    def host_simulated(self) -> bool:
        return True

    def tasks(self) -> PyTree:
        return {"index": jnp.arange(self.num_tasks, dtype=jnp.int32)}

    def reset(self, rng: jax.Array, task: PyTree) -> State:
        with _STREAMS_LOCK:
            stream_id = next(_STREAMS) % 2**31
        stream = _Stream(self)
        self._streams[stream_id] = stream
        if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
            rng = jax.random.key_data(rng)
        shapes = {
            "obs": jax.ShapeDtypeStruct((self._sim_obs_size,), jnp.float32),
            "generation": jax.ShapeDtypeStruct((), jnp.int32),
        }
        out = host_call(stream.reset, shapes, {"key": rng, "task": task["index"]})
        obs = self._observation(out["obs"], task)
        zero = jnp.zeros((), jnp.float32)
        pipeline_state = {
            "stream": jnp.asarray(stream_id, jnp.int32),
            "generation": out["generation"],
            "success": zero,  # whether any step of this episode succeeded so far
        }
        metrics = {"success": zero} if self.success_key else {}
        return State(pipeline_state, obs, zero, zero, metrics, {"final_obs": obs})

    def step(self, state: State, action: jax.Array, task: PyTree) -> State:
        ps = state.pipeline_state
        shapes = {
            "obs": jax.ShapeDtypeStruct((self._sim_obs_size,), jnp.float32),
            "final_obs": jax.ShapeDtypeStruct((self._sim_obs_size,), jnp.float32),
            "reward": jax.ShapeDtypeStruct((), jnp.float32),
            "terminated": jax.ShapeDtypeStruct((), jnp.float32),
            "ended": jax.ShapeDtypeStruct((), jnp.float32),
            "success": jax.ShapeDtypeStruct((), jnp.float32),
        }
        args = {
            "stream": ps["stream"],
            "generation": ps["generation"],
            "action": jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0),
            "task": task["index"],
        }
        out = host_call(self._step_on_host, shapes, args)
        success = jnp.maximum(ps["success"], out["success"])
        pipeline_state = {
            "stream": ps["stream"],
            "generation": ps["generation"],
            "success": jnp.where(out["ended"] > 0, 0.0, success),
        }
        metrics = {"success": success} if self.success_key else {}
        info = dict(state.info)
        info["final_obs"] = self._observation(out["final_obs"], task)
        return state.replace(
            pipeline_state=pipeline_state,
            obs=self._observation(out["obs"], task),
            reward=out["reward"],
            done=out["terminated"],
            metrics=metrics,
            info=info,
        )

    def _observation(self, sim_obs: jax.Array, task: PyTree) -> jax.Array:
        if not self.task_id_in_obs:
            return sim_obs
        return jnp.concatenate([sim_obs, jax.nn.one_hot(task["index"], self.num_tasks)])

    # --- the host side -------------------------------------------------------------------------

    def _step_on_host(self, args: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = np.unique(args["stream"])
        if ids.size != 1 or int(ids[0]) not in self._streams:
            raise ValueError(
                f"step: environment states of stream(s) {ids.tolist()}, which this family did "
                "not start in this process (a state restored from a checkpoint, or mixed from "
                "two resets): reset the environments first"
            )
        return self._streams[int(ids[0])].step(args)

    def make_pool(self, t: int, num_envs: int, seed: int):
        """EnvPool's gymnasium pool of ``num_envs`` environments of task ``t``."""
        task = self._tasks[t]
        threads = self._num_threads or min(num_envs, os.cpu_count() or 1)
        return _import_envpool().make(
            task.env_id,
            env_type="gymnasium",
            num_envs=num_envs,
            num_threads=threads,
            seed=seed,
            max_episode_steps=self.episode_length,
            **dict(task.kwargs),
        )


class _Stream:
    """The simulators of one traced ``reset``: per task, one pool of all the batch's
    environments of that task. Built at the first run of the reset, reset again at each later
    run; ``step`` checks that it gets the states of the latest run."""

    def __init__(self, family: EnvpoolFamily):
        self.family = family
        self.shape: tuple[int, ...] | None = None
        self.task_of: np.ndarray | None = None  # [B] task of each flat batch position
        self.positions: list[np.ndarray] = []  # per task: flat positions, in env-id order
        self.pools: list[Any] = []
        self.generation = 0

    def reset(self, args: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        task_of = np.asarray(args["task"]).reshape(-1)
        shape = tuple(np.shape(args["task"]))
        if self.shape != shape or not np.array_equal(self.task_of, task_of):
            self._build(shape, task_of, np.asarray(args["key"]).reshape(task_of.size, -1))
        obs = np.zeros((task_of.size, self.family._sim_obs_size), np.float32)
        for pool, positions in zip(self.pools, self.positions, strict=True):
            if pool is not None:
                sim_obs, info = pool.reset()
                obs[positions[np.asarray(info["env_id"])]] = _flatten(
                    sim_obs, self.family._obs_keys, positions.size
                )
        # A fresh random generation: states from an earlier run of this reset (or another
        # process's) do not match it.
        self.generation = int(np.random.default_rng().integers(1, 2**31 - 1))
        return {
            "obs": obs.reshape(shape + (-1,)),
            "generation": np.full(shape, self.generation, np.int32),
        }

    def _build(self, shape, task_of: np.ndarray, keys: np.ndarray) -> None:
        family = self.family
        self.shape, self.task_of = shape, task_of
        self.positions, self.pools = [], []
        for t in range(family.num_tasks):
            positions = np.flatnonzero(task_of == t)
            self.positions.append(positions)
            if positions.size == 0:
                self.pools.append(None)
                continue
            if family.simulator_seed is not None:
                seed = family.simulator_seed + t
            else:  # the first environment's key decides the pool's seed
                seed = int(np.uint64(keys[positions[0]].astype(np.uint64).sum()) % (2**31 - 1))
            self.pools.append(family.make_pool(t, positions.size, seed))

    def step(self, args: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        family = self.family
        shape = tuple(np.shape(args["task"]))
        generation = np.asarray(args["generation"]).reshape(-1)
        if shape != self.shape or np.any(generation != self.generation):
            raise ValueError(
                "step: these environment states are not the latest of their reset (its program "
                "ran again since, or the states come from a checkpoint): reset them first"
            )
        size = family._sim_obs_size
        count = generation.size
        # float64: the map onto [-1, 1] bounds is then exactly the identity.
        actions = np.asarray(args["action"], np.float64).reshape(count, -1)
        out = {
            "obs": np.zeros((count, size), np.float32),
            "final_obs": np.zeros((count, size), np.float32),
            "reward": np.zeros(count, np.float32),
            "terminated": np.zeros(count, np.float32),
            "ended": np.zeros(count, np.float32),
            "success": np.zeros(count, np.float32),
        }
        live = [(t, pool) for t, pool in enumerate(self.pools) if pool is not None]
        for t, pool in live:  # every pool steps at once ...
            positions = self.positions[t]
            scaled = family._low[t] + (actions[positions] + 1.0) * family._half_range[t]
            pool.send(scaled.astype(pool.action_space.dtype), np.arange(positions.size))
        for t, pool in live:  # ... and is collected in turn
            self._collect(t, pool, out)
        return {k: v.reshape(shape + v.shape[1:]) for k, v in out.items()}

    def _collect(self, t: int, pool, out: dict[str, np.ndarray]) -> None:
        family = self.family
        task = family._tasks[t]
        obs, reward, terminated, truncated, info = pool.recv()
        ids = np.asarray(info["env_id"])
        where = self.positions[t][ids]
        flat = _flatten(obs, family._obs_keys, ids.size)
        reward = np.asarray(reward, np.float64)
        if task.reward_map is not None:
            reward = task.reward_map(reward)
        ended = np.logical_or(terminated, truncated)
        out["final_obs"][where] = flat
        out["reward"][where] = reward
        out["terminated"][where] = terminated
        out["ended"][where] = ended
        if family.success_key is not None:
            out["success"][where] = np.asarray(info[family.success_key], np.float32)
        if np.any(ended):
            # Restart the ended episodes now, so that the next step is a step of the new
            # episode (EnvPool would otherwise spend it on the reset and drop its action).
            fresh, fresh_info = pool.reset(ids[ended])
            order = {int(i): k for k, i in enumerate(ids)}
            rows = [order[int(i)] for i in np.asarray(fresh_info["env_id"])]
            flat[rows] = _flatten(fresh, family._obs_keys, len(rows))
        out["obs"][where] = flat


def _observation_keys(space) -> tuple[str, ...] | None:
    """A dict space's keys in the spec's order (DMC); ``None`` for a vector space."""
    spaces = getattr(space, "spaces", None)
    return None if spaces is None else tuple(spaces.keys())


def _observation_size(space) -> int:
    spaces = getattr(space, "spaces", None)
    if spaces is None:
        return int(np.prod(space.shape))
    return int(sum(int(np.prod(s.shape)) for s in spaces.values()))
