"""gymnax classic-control environments as task families with per-task physical parameters.

A task is one setting of the environment's gymnax ``EnvParams``: a CartPole with a longer pole,
a Pendulum under stronger gravity. ``GymnaxFamily(env_id, num_tasks, task_parameters)`` varies
the named ``EnvParams`` fields across ``num_tasks`` tasks and keeps every other field at the
environment's default. ``tasks()`` is the environment's own ``EnvParams`` with every field
stacked to a leading axis ``[N]`` (``[N, 3]`` for Acrobot's ``available_torque``), so one task
slice is exactly what gymnax's ``reset_env``/``step_env`` take.

Default tasks (``task_parameters=None``), spread evenly over the range, or drawn uniformly from
it with ``task_seed``:

  ========================  =================  =============  ==========  ==============
  env_id                    varied field       range          actions     episode_length
  ========================  =================  =============  ==========  ==============
  CartPole-v1               ``length``         0.25-1.0       2           500
  Pendulum-v1               ``g``              5-15           torque [1]  200
  Acrobot-v1                ``link_length_1``  0.75-1.25      3           500
  MountainCar-v0            ``gravity``        0.002-0.0028   3           200
  MountainCarContinuous-v0  ``gravity``        0.002-0.0028   force [1]   999
  ========================  =================  =============  ==========  ==============

CartPole's ``length`` is half the pole's length, as in Gym; the environments' defaults are 0.5,
10, 1.0 and 0.0025.

MountainCar's gravity stops at 0.0028 because at 0.003 a car that pushes along its velocity
took up to 212 steps (64 random starts) to reach the flag, past MountainCar-v0's 200. CartPole's
derived fields (``total_mass = masscart + masspole``, ``polemass_length =
masspole * length``) are recomputed from each task's masses and length, so they cannot be set
directly. Acrobot's ``link_length_2`` cannot be varied: its dynamics never read it.

Time limits and termination. ``done`` is 1.0 only when the task itself ended the episode (the
pole fell or the cart left the track, the acrobot's tip reached the line, the car reached the
flag; Pendulum never terminates). The time limit is not the family's: wrap it with
``wrap_for_training(family, family.episode_length)``, whose ``EpisodeLimit`` ends the episode
and sets ``info["truncation"]``. gymnax 1.0 already keeps its time limit out of
``step_env``'s ``done``; the family additionally sets the inner ``max_steps_in_episode`` to
``2**30`` so that no gymnax version that counts time in its terminal check can end an episode
by time. gymnax's own ``step`` (which auto-resets) is never called: ``AutoReset`` does that.

Actions. Discrete environments take an int32 scalar in ``[0, action_size)`` (clipped into it).
Continuous ones take a float32 vector ``[1]`` in ``[-1, 1]`` (clipped), mapped linearly onto the
task's own bounds: ``[-max_torque, max_torque]`` for Pendulum (so 1.0 is 2.0 N m by default),
``[min_action, max_action]`` for MountainCarContinuous.

State. ``pipeline_state`` is a ``GymnaxPipelineState`` (the gymnax ``EnvState`` and a key for
the environment's own randomness, e.g. Acrobot's torque noise); ``metrics`` and ``info`` are
empty. The observation is gymnax's (float32, flat); it does not name the task.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces

from distral_jax.envs.base import PyTree, State, TaskFamily
from distral_jax.envs.checks import check_family

# Far beyond any episode: the time limit belongs to ``EpisodeLimit`` (see the module docstring).
_NO_TIME_LIMIT = 2**30


@dataclasses.dataclass(frozen=True)
class _Spec:
    """What the family needs to know about one gymnax environment beyond its own API."""

    episode_length: int  # the Gym time limit of the registered environment
    default_field: str
    default_range: tuple[float, float]
    # Continuous actions: (low, high) bounds read from one task's parameters.
    bounds: Callable[[PyTree], tuple[jax.Array, jax.Array]] | None = None
    # Fields computed from other fields: name -> function of the parameter dict.
    derived: Mapping[str, Callable[[dict], np.ndarray]] = dataclasses.field(default_factory=dict)
    # Fields the dynamics never read: varying them would make identical tasks.
    unread: tuple[str, ...] = ()


SPECS: dict[str, _Spec] = {
    "CartPole-v1": _Spec(
        500,
        "length",
        (0.25, 1.0),
        derived={
            "total_mass": lambda p: p["masscart"] + p["masspole"],
            "polemass_length": lambda p: p["masspole"] * p["length"],
        },
    ),
    "Pendulum-v1": _Spec(
        200, "g", (5.0, 15.0), bounds=lambda task: (-task.max_torque, task.max_torque)
    ),
    "Acrobot-v1": _Spec(500, "link_length_1", (0.75, 1.25), unread=("link_length_2",)),
    "MountainCar-v0": _Spec(200, "gravity", (0.002, 0.0028)),
    "MountainCarContinuous-v0": _Spec(
        999, "gravity", (0.002, 0.0028), bounds=lambda task: (task.min_action, task.max_action)
    ),
}


@struct.dataclass
class GymnaxPipelineState:
    """The gymnax ``EnvState`` of one environment and a key ``uint32[2]`` for its ``step_env``."""

    env_state: PyTree
    key: jax.Array


class GymnaxFamily(TaskFamily):
    """A gymnax classic-control environment whose tasks differ in ``EnvParams`` fields.

    Args:
      env_id: one of ``SPECS`` (``CartPole-v1``, ``Pendulum-v1``, ``Acrobot-v1``,
        ``MountainCar-v0``, ``MountainCarContinuous-v0``).
      num_tasks: number of tasks N.
      task_parameters: ``{field: values}`` with ``values`` of shape ``[N]`` (``[N, ...]`` for a
        field that is an array, like Acrobot's ``available_torque``); unnamed fields keep the
        environment's defaults. ``None``: the environment's default field and range (module
        docstring), spread evenly.
      task_seed: with ``task_parameters=None``, draw the default field uniformly from its
        range with this seed instead of spreading it evenly.

    Attributes:
      env_id, gymnax_env: the environment's id and gymnax ``Environment``.
      task_parameters: the varied fields, ``{field: float64 array [N, ...]}``.

    Example::

        lengths = {"length": [0.3, 0.5, 0.9]}
        family = GymnaxFamily("CartPole-v1", num_tasks=3, task_parameters=lengths)
        env = wrap_for_training(family, family.episode_length)
    """

    def __init__(
        self,
        env_id: str = "CartPole-v1",
        num_tasks: int = 4,
        task_parameters: Mapping[str, Sequence] | None = None,
        task_seed: int | None = None,
    ):
        if env_id not in SPECS:
            raise ValueError(f"`env_id`: unknown environment {env_id!r}; supported: {list(SPECS)}")
        if (
            isinstance(num_tasks, bool)
            or not isinstance(num_tasks, (int, np.integer))
            or num_tasks < 1
        ):
            raise ValueError(f"`num_tasks` must be a positive integer, got {num_tasks!r}")
        if task_parameters is not None and task_seed is not None:
            raise ValueError("`task_seed` draws the default tasks: give it or `task_parameters`")
        self.env_id = env_id
        self.spec = SPECS[env_id]
        self.gymnax_env, defaults = gymnax.make(env_id)
        self._num_tasks = n = int(num_tasks)

        if task_parameters is None:
            low, high = self.spec.default_range
            if task_seed is not None:
                values = np.random.default_rng(task_seed).uniform(low, high, n)
            else:
                values = np.linspace(low, high, n) if n > 1 else np.array([(low + high) / 2])
            task_parameters = {self.spec.default_field: values}
        params = {
            f.name: np.asarray(getattr(defaults, f.name)) for f in dataclasses.fields(defaults)
        }
        self.task_parameters = self._validate(task_parameters, params)

        stacked = {}
        for name, default in params.items():
            value = self.task_parameters.get(name, np.broadcast_to(default, (n,) + default.shape))
            stacked[name] = np.asarray(value, default.dtype)
        stacked["max_steps_in_episode"] = np.full(n, _NO_TIME_LIMIT, np.int64)
        for name, compute in self.spec.derived.items():
            stacked[name] = compute(stacked)
        self._tasks = type(defaults)(**{k: _as_jax(v) for k, v in stacked.items()})

        space = self.gymnax_env.action_space(defaults)
        self._discrete = isinstance(space, spaces.Discrete)
        self._action_size = int(space.n) if self._discrete else int(np.prod(space.shape))
        self._observation_size = int(np.prod(self.gymnax_env.observation_space(defaults).shape))
        check_family(self)  # shapes only: no compilation

    def _validate(self, task_parameters: Mapping[str, Sequence], defaults: dict) -> dict:
        """Per-task values as numpy arrays ``[N, *field_shape]``; ValueError on bad input."""
        if not isinstance(task_parameters, Mapping) or not task_parameters:
            raise ValueError(
                f"`task_parameters` must be a non-empty dict {{field: values}}, got "
                f"{task_parameters!r}"
            )
        settable = [
            name
            for name in defaults
            if name != "max_steps_in_episode"
            and name not in self.spec.derived
            and name not in self.spec.unread
        ]
        out = {}
        for name, values in task_parameters.items():
            if name == "max_steps_in_episode":
                raise ValueError(
                    "`task_parameters`: max_steps_in_episode is the time limit, which the "
                    "EpisodeLimit wrapper applies: pass episode_length to wrap_for_training"
                )
            if name in self.spec.derived or name in self.spec.unread:
                derived = name in self.spec.derived
                why = (
                    "is computed from other fields" if derived else "is never read by the dynamics"
                )
                raise ValueError(
                    f"`task_parameters`: {self.env_id} field {name!r} {why}; settable: {settable}"
                )
            if name not in defaults:
                raise ValueError(
                    f"`task_parameters`: {self.env_id} has no field {name!r}; settable: {settable}"
                )
            shape = (self._num_tasks,) + defaults[name].shape
            try:
                array = np.asarray(values, np.float64)
            except (TypeError, ValueError) as error:
                raise ValueError(f"`task_parameters[{name!r}]` must be numbers") from error
            if array.shape != shape:
                raise ValueError(
                    f"`task_parameters[{name!r}]` must have shape {shape} (one value per task, "
                    f"num_tasks={self._num_tasks}), got {array.shape}"
                )
            if not np.all(np.isfinite(array)):
                raise ValueError(f"`task_parameters[{name!r}]` must be finite, got {values!r}")
            out[name] = array
        return out

    # ----------------------------------------------------------------------------- protocol
    @property
    def num_tasks(self) -> int:
        return self._num_tasks

    @property
    def observation_size(self) -> int:
        return self._observation_size

    @property
    def action_size(self) -> int:
        return self._action_size

    @property
    def discrete(self) -> bool:
        return self._discrete

    @property
    def episode_length(self) -> int:
        """The environment's usual time limit, for ``wrap_for_training``."""
        return self.spec.episode_length

    def tasks(self) -> PyTree:
        """The gymnax ``EnvParams``, every field with leading axis ``[N]``."""
        return self._tasks

    def reset(self, rng: jax.Array, task: PyTree) -> State:
        if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
            # Raw key data: AutoReset selects pipeline states with ``jnp.where``.
            rng = jax.random.key_data(rng)
        reset_key, step_key = jax.random.split(rng)
        obs, env_state = self.gymnax_env.reset_env(reset_key, task)
        zero = jnp.zeros((), jnp.float32)
        pipeline = GymnaxPipelineState(_strong(env_state), step_key)
        return State(pipeline, jnp.asarray(obs, jnp.float32).reshape(-1), zero, zero, {}, {})

    def step(self, state: State, action: jax.Array, task: PyTree) -> State:
        key, step_key = jax.random.split(state.pipeline_state.key)
        obs, env_state, reward, terminated, _ = self.gymnax_env.step_env(
            step_key, state.pipeline_state.env_state, self._env_action(action, task), task
        )
        return state.replace(
            pipeline_state=GymnaxPipelineState(_strong(env_state), key),
            obs=jnp.asarray(obs, jnp.float32).reshape(-1),
            reward=jnp.asarray(reward, jnp.float32).reshape(()),
            done=jnp.asarray(terminated, jnp.float32).reshape(()),
        )

    def _env_action(self, action: jax.Array, task: PyTree) -> jax.Array:
        """The agent's action in gymnax's units: an index, or ``[-1, 1]`` scaled to the bounds."""
        if self._discrete:
            return jnp.clip(jnp.asarray(action, jnp.int32).reshape(()), 0, self._action_size - 1)
        low, high = self.spec.bounds(task)
        unit = jnp.clip(jnp.asarray(action, jnp.float32).reshape(self._action_size), -1.0, 1.0)
        return low + 0.5 * (unit + 1.0) * (high - low)


def _as_jax(value: np.ndarray) -> jax.Array:
    """float32 or int32 (JAX's default widths), whatever numpy's default was."""
    dtype = jnp.int32 if np.issubdtype(value.dtype, np.integer) else jnp.float32
    return jnp.asarray(value, dtype)


def _strong(env_state: PyTree) -> PyTree:
    """gymnax builds ``time=0`` from a Python int: fix every leaf's dtype so that the state keeps
    one type through ``scan`` and ``where``."""
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.asarray(x).dtype), env_state)


__all__ = ["SPECS", "GymnaxFamily", "GymnaxPipelineState"]
