"""Task families on Brax: any Brax environment plus a task-conditioned reward and/or dynamics.

``BraxTaskFamily`` turns a Brax ``Env`` into a ``TaskFamily``. A family is defined by

  * a Brax environment (a registry name such as ``"ant"``, or an ``Env`` instance);
  * a task pytree whose leaves have a leading axis of size N (``flax.struct.dataclass``);
  * ``reward_fn(prev_state, next_state, action, task) -> reward``: a function of two Brax
    ``State``s (their ``pipeline_state``, ``metrics`` and the env's own ``reward``), the action
    and ONE task slice;
  * optionally ``done_fn`` with the same signature (default: the environment's own ``done``);
  * optionally ``sys_fn(sys, task) -> sys``, which edits the physical system for a task, so that
    tasks differ in their dynamics.

Example — hopping at per-task heights, on the positional backend::

    import jax.numpy as jnp
    from flax import struct

    @struct.dataclass
    class HeightTask:
        height: jax.Array  # [N]

    def reward_fn(prev, nxt, action, task):
        z = nxt.pipeline_state.x.pos[0, 2]  # torso height after the step
        return -jnp.abs(z - task.height) - 1e-3 * jnp.sum(jnp.square(action))

    family = BraxTaskFamily(
        "hopper", HeightTask(jnp.array([1.0, 1.2, 1.4])), reward_fn, backend="positional"
    )

and, for tasks that differ in gravity, add
``sys_fn=lambda sys, task: sys.replace(gravity=sys.gravity * task.gravity_scale)``.

How per-task dynamics run under ``vmap``: a Brax ``PipelineEnv`` reads its system from
``self.sys`` inside ``reset``/``step``. While tracing a call for one task, the family sets that
attribute to ``sys_fn(base_sys, task)`` — a traced value, batched over tasks once vmapped — and
restores the original afterwards (the technique of Brax's ``DomainRandomizationVmapWrapper``).
Nothing is mutated at run time: the swap only affects which values the traced program reads.

State and conventions. The family returns ``distral_jax.envs.base.State`` with the Brax
pipeline state as ``pipeline_state``, the env's metrics plus ``metrics["env_reward"]`` (the
Brax env's own reward, for diagnostics) and the env's ``info`` (which the env must keep with the
same keys between ``reset`` and ``step``, as every Brax env does). Before each Brax step the
incoming ``done`` is cleared, because some Brax envs (``halfcheetah``) copy it through instead
of recomputing it. Actions are float32 vectors in [-1, 1] of size ``action_size``.

Compared with the meta-RL tasks of the same names (MAML, Finn et al. 2017; PEARL, Rakelly et
al. 2019), which run MuJoCo models through mujoco-py:

  ===============  =====================================  ====================================
  family           MAML / PEARL                           here, and why
  ===============  =====================================  ====================================
  simulator        MuJoCo (gym/rllab models)              Brax (``spring`` by default: the
                                                          cheapest backend on CPU); Brax's own
                                                          model files, so masses and gear
                                                          ratios are Brax's, not the papers'
  observation      qpos, qvel (+ torso position, + ant    Brax's: halfcheetah 17, ant 27 (29
                   contact forces: PEARL's ant 113)       with x, y for ``ant_goal``); no
                                                          contact forces (Brax computes none)
  horizon          200 steps                              ``TrainConfig.episode_length`` (the
                                                          ``--small`` profile uses 200)
  task set         sampled: MAML cheetah-vel U[0, 2],     evenly spread (every task covered by
                   PEARL U[0, 3]; PEARL ant-dir angles    N tasks), or sampled from the same
                   U[0, 2π) or forward/backward; PEARL    kind of distribution with
                   ant-goal uniform in the disk r ≤ 3     ``task_seed``; ``split_tasks`` makes
                                                          train and held-out sets
  ===============  =====================================  ====================================

Rewards follow the papers' shapes (cheetah-vel ``−|v − v*| − 0.05 ‖a‖²``; ant-dir
``⟨v, d⟩ − 0.5 ‖a‖² + 1``); ``ant_goal(definition="pearl")`` is PEARL's ant-goal (L1
distance, control cost 0.1, goals uniform in the disk), the default ``"circle"`` this
project's (L2 distance, control cost 0.05, goals on the circle, so every task is as hard).
``halfcheetah_mass`` has no counterpart in either paper (PEARL's ``*-rand-params`` randomise
the dynamics of hopper and walker).

Families (registered in ``distral_jax.envs.registry``), all defaulting to the ``spring``
backend, the cheapest on CPU (for halfcheetah, ``generalized`` and ``positional`` stepped 4x
slower and compiled 2x longer):

  * ``halfcheetah_vel``: target forward speeds, ``r = −|v_x − v*| − 0.05 ‖a‖²``;
  * ``ant_dir``: running directions, ``r = ⟨v_xy, d⟩ + 1 − 0.5 ‖a‖²``, Ant's termination;
  * ``ant_goal``: goals on a circle, ``r = −‖p_xy − g‖ − 0.05 ‖a‖²``;
  * ``halfcheetah_mass``: per-task link masses (and optionally friction), the env's own reward;
  * ``point_mass``: ``distral_jax.envs.point_mass.PointMassGoals``, pure JAX, no Brax.

Compiling a Brax family's reset and training step takes about 25-55 s on a 2-core CPU and it
then steps about 5-12k env steps/s at 4 tasks x 16 envs (``benchmarks/brax_families.py``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from brax import envs as brax_envs
from brax.base import System
from brax.envs.base import Env as BraxEnv
from brax.envs.base import State as BraxState
from flax import struct

from distral_jax.envs.base import PyTree, State, TaskFamily
from distral_jax.envs.checks import check_family

RewardFn = Callable[[BraxState, BraxState, jax.Array, PyTree], jax.Array]
DoneFn = Callable[[BraxState, BraxState, jax.Array, PyTree], jax.Array]
SysFn = Callable[[System, PyTree], System]


class BraxTaskFamily(TaskFamily):
    """A ``TaskFamily`` from a Brax environment, a task pytree and task-conditioned functions.

    Args:
      env: a Brax registry name (``brax.envs.get_environment``) or an ``Env`` instance.
      tasks: task parameters, a pytree whose leaves all have leading axis N.
      reward_fn: ``(prev_state, next_state, action, task) -> scalar`` on Brax ``State``s.
      done_fn: same signature, returns 1.0 to terminate; default ``next_state.done``.
      sys_fn: ``(sys, task) -> sys``, the system used for a task; default: the env's own.
      backend: physics backend when ``env`` is a name (default: the env's default).
      env_kwargs: constructor arguments when ``env`` is a name.
      fresh_starts: whether training restarts an environment from a new random start (True)
        or, as Brax's own training does, from that environment's first state (False, the
        default: a Brax ``reset`` compiled into the training step adds about 6 s to its
        compile on CPU; see ``TaskFamily.fresh_starts``).
    """

    def __init__(
        self,
        env: str | BraxEnv,
        tasks: PyTree,
        reward_fn: RewardFn,
        done_fn: DoneFn | None = None,
        sys_fn: SysFn | None = None,
        *,
        backend: str | None = None,
        env_kwargs: dict | None = None,
        fresh_starts: bool = False,
    ):
        leaves = jax.tree_util.tree_leaves(tasks)
        sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
        if not leaves or len(sizes) != 1 or None in sizes or 0 in sizes:
            raise ValueError(f"tasks must have leaves with one common leading axis, got {sizes}")
        if isinstance(env, str):
            registered = sorted(getattr(brax_envs, "_envs", {}))
            if registered and env not in registered:
                raise ValueError(
                    f"`env`: unknown Brax environment {env!r}; registered: {registered}"
                )
            kwargs = dict(env_kwargs or {})
            if backend is not None:
                kwargs["backend"] = backend
            env = brax_envs.get_environment(env, **kwargs)
        elif backend is not None or env_kwargs:
            raise ValueError("backend and env_kwargs only apply when env is a registry name")
        if sys_fn is not None and not hasattr(env.unwrapped, "sys"):
            raise ValueError("sys_fn needs an env with a physical system (a Brax PipelineEnv)")
        self.brax_env = env
        self._tasks = jax.tree_util.tree_map(jnp.asarray, tasks)
        self._num_tasks = int(sizes.pop())
        self.reward_fn = reward_fn
        self.done_fn = done_fn
        self.sys_fn = sys_fn
        self._fresh_starts = bool(fresh_starts)
        self._observation_size: int | None = None
        # Traced once here (no simulation): a reward_fn that is not scalar fails in ``step``,
        # and the rest of the family contract is checked at the same time.
        check_family(self)

    @property
    def num_tasks(self) -> int:
        return self._num_tasks

    @property
    def observation_size(self) -> int:
        if self._observation_size is None:
            # Shapes only: no compilation, no physics.
            shape = jax.eval_shape(
                self.reset,
                jax.random.PRNGKey(0),
                jax.tree_util.tree_map(lambda x: x[0], self._tasks),
            ).obs.shape
            self._observation_size = int(shape[-1])
        return self._observation_size

    @property
    def action_size(self) -> int:
        return int(self.brax_env.action_size)

    @property
    def fresh_starts(self) -> bool:
        return self._fresh_starts

    @property
    def discrete(self) -> bool:
        return False

    @property
    def backend(self) -> str:
        return self.brax_env.backend

    @property
    def dt(self) -> float:
        """Seconds per environment step (of the unedited system)."""
        return float(self.brax_env.unwrapped.dt)

    def tasks(self) -> PyTree:
        return self._tasks

    @contextlib.contextmanager
    def _env_for(self, task: PyTree) -> Iterator[BraxEnv]:
        """The Brax env, with its system replaced by ``sys_fn(sys, task)`` while tracing."""
        if self.sys_fn is None:
            yield self.brax_env
            return
        pipeline_env = self.brax_env.unwrapped
        base_sys = pipeline_env.sys
        pipeline_env.sys = self.sys_fn(base_sys, task)
        try:
            yield self.brax_env
        finally:
            pipeline_env.sys = base_sys

    def reset(self, rng: jax.Array, task: PyTree) -> State:
        with self._env_for(task) as env:
            brax_state = env.reset(rng)
        zero = jnp.zeros((), jnp.float32)
        metrics = dict(brax_state.metrics)
        metrics["env_reward"] = zero
        return State(
            pipeline_state=brax_state.pipeline_state,
            obs=brax_state.obs,
            reward=zero,
            done=zero,
            metrics=metrics,
            info=dict(brax_state.info),
        )

    def step(self, state: State, action: jax.Array, task: PyTree) -> State:
        prev = BraxState(
            pipeline_state=state.pipeline_state,
            obs=state.obs,
            reward=state.reward,
            # Cleared: some Brax envs copy the incoming done through (see module docstring).
            done=jnp.zeros_like(state.done),
            # Copies: Brax envs update the metrics dict of their input in place.
            metrics=dict(state.metrics),
            info=dict(state.info),
        )
        with self._env_for(task) as env:
            nxt = env.step(prev, action)
        reward = jnp.squeeze(jnp.asarray(self.reward_fn(prev, nxt, action, task), jnp.float32))
        if reward.shape != ():
            raise ValueError(f"`reward_fn` must return a scalar, got shape {reward.shape}")
        if self.done_fn is None:
            done = nxt.done
        else:
            done = self.done_fn(prev, nxt, action, task)
        # Exactly the keys reset produced, so that the state is one fixed pytree under scan.
        metrics = {key: nxt.metrics.get(key, value) for key, value in state.metrics.items()}
        metrics["env_reward"] = jnp.asarray(nxt.reward, jnp.float32)
        return State(
            pipeline_state=nxt.pipeline_state,
            obs=nxt.obs,
            reward=reward,
            done=jnp.asarray(done, jnp.float32),
            metrics=metrics,
            info=dict(nxt.info),
        )


# --------------------------------------------------------------------------------- task pytrees
@struct.dataclass
class VelocityTask:
    """``target_velocity``: ``[N]`` forward (+x) speeds in m/s."""

    target_velocity: jax.Array


@struct.dataclass
class DirectionTask:
    """``direction``: ``[N, 2]`` unit vectors in the ground (xy) plane."""

    direction: jax.Array


@struct.dataclass
class GoalTask:
    """``goal``: ``[N, 2]`` xy positions in metres."""

    goal: jax.Array


@struct.dataclass
class DynamicsTask:
    """``mass_scale``, ``friction_scale``: ``[N]`` multipliers of every link's mass and inertia
    and of every geom's sliding friction."""

    mass_scale: jax.Array
    friction_scale: jax.Array


def _check_num_tasks(num_tasks: int) -> int:
    if int(num_tasks) != num_tasks or num_tasks < 1:
        raise ValueError(f"num_tasks must be a positive integer, got {num_tasks!r}")
    return int(num_tasks)


def _spread(low: float, high: float, n: int) -> np.ndarray:
    """``n`` evenly spaced values from ``low`` to ``high`` inclusive (the midpoint if n = 1)."""
    return np.linspace(low, high, n) if n > 1 else np.array([(low + high) / 2.0])


def _circle(n: int, task_seed: int | None = None) -> np.ndarray:
    """Unit vectors at angles ``2π i / n``, or at angles drawn uniformly with ``task_seed``."""
    if task_seed is None:
        angles = 2.0 * math.pi * np.arange(n) / n
    else:
        angles = np.random.default_rng(task_seed).uniform(0.0, 2.0 * math.pi, n)
    return np.stack([np.cos(angles), np.sin(angles)], axis=-1)


def _disk(n: int, radius: float, task_seed: int) -> np.ndarray:
    """``n`` points uniform in the disk of ``radius`` (PEARL's ant-goal distribution)."""
    rng = np.random.default_rng(task_seed)
    angles = rng.uniform(0.0, 2.0 * math.pi, n)
    r = radius * np.sqrt(rng.uniform(0.0, 1.0, n))
    return np.stack([r * np.cos(angles), r * np.sin(angles)], axis=-1)


def _values(
    name: str, values: Sequence[float] | None, default: np.ndarray, num_tasks: int | None = None
) -> jax.Array:
    """Per-task values: ``default`` unless given; finite, 1-D, one per task."""
    if values is None:
        return jnp.asarray(default, jnp.float32)
    array = np.asarray(values, np.float32)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D sequence, got {values!r}")
    if not np.isfinite(array).all():
        raise ValueError(f"`{name}` must be finite, got {values!r}")
    if num_tasks is not None and array.size != num_tasks:
        raise ValueError(
            f"`{name}` has {array.size} values but num_tasks={num_tasks}: give one per task, "
            "or leave num_tasks out"
        )
    return jnp.asarray(array)


def _finite(**values: float) -> None:
    for name, value in values.items():
        if not np.isfinite(value):
            raise ValueError(f"`{name}` must be finite, got {value!r}")


# --------------------------------------------------------------------------------- dynamics edits
def mass_friction_sys_fn(sys: System, backend: str) -> SysFn:
    """A ``sys_fn`` reading a ``DynamicsTask``: scales masses/inertias and sliding friction.

    The scale is the one the backend simulates. ``generalized`` uses ``link.inertia`` as is and
    ``mjx`` reads ``body_mass``/``body_inertia``; ``spring`` and ``positional`` simulate
    ``mass ** (1 − spring_mass_scale)`` (likewise for inertia), so the stored values are scaled
    by ``s ** (1 / (1 − spring_mass_scale))`` to make the simulated mass exactly ``s`` times
    heavier. Where that exponent is undefined (``spring_mass_scale = 1``, as in Brax's Ant) the
    backend ignores mass altogether and a ``ValueError`` is raised.
    """
    mass_power = inertia_power = 1.0
    if backend in ("spring", "positional"):
        k_mass = float(np.asarray(sys.spring_mass_scale))
        k_inertia = float(np.asarray(sys.spring_inertia_scale))
        if k_mass >= 1.0 or k_inertia >= 1.0:
            raise ValueError(
                f"backend {backend!r} ignores link masses for this system "
                f"(spring_mass_scale={k_mass}, spring_inertia_scale={k_inertia}); "
                "use another backend or environment for per-task masses"
            )
        mass_power, inertia_power = 1.0 / (1.0 - k_mass), 1.0 / (1.0 - k_inertia)

    def sys_fn(sys: System, task: DynamicsTask) -> System:
        mass = task.mass_scale**mass_power
        inertia = task.mass_scale**inertia_power
        friction = sys.geom_friction.at[:, 0].multiply(task.friction_scale)
        return sys.tree_replace(
            {
                "link.inertia.mass": sys.link.inertia.mass * mass,
                "link.inertia.i": sys.link.inertia.i * inertia,
                "body_mass": sys.body_mass * task.mass_scale,
                "body_inertia": sys.body_inertia * task.mass_scale,
                "geom_friction": friction,
            }
        )

    return sys_fn


# --------------------------------------------------------------------------------- families
def halfcheetah_vel(
    num_tasks: int | None = None,
    backend: str = "spring",
    max_velocity: float = 3.0,
    velocities: Sequence[float] | None = None,
    ctrl_cost_weight: float = 0.05,
    task_seed: int | None = None,
) -> BraxTaskFamily:
    """HalfCheetah running at a target speed: ``r = −|v_x − v*| − c ‖a‖²``.

    ``v_x`` is the torso's forward velocity over the step (the env's ``x_velocity`` metric),
    ``v*`` the task's target, spread evenly over ``[0, max_velocity]`` unless ``velocities``
    is given, or drawn from ``U[0, max_velocity]`` with ``task_seed`` (PEARL: ``U[0, 3]``);
    ``c = ctrl_cost_weight`` (0.05, as in the meta-RL literature's cheetah-vel). No
    termination. A good policy scores about ``−0.3`` to ``−0.5`` per step; standing still
    scores ``−v*``.

    Against the literature (table in the module docstring): same reward shape as MAML's and
    PEARL's cheetah-vel; targets there are sampled (MAML ``U[0, 2]``, PEARL ``U[0, 3]``), here
    evenly spread unless ``task_seed``; Brax halfcheetah (17 observations) instead of MuJoCo's.
    """
    _finite(max_velocity=max_velocity, ctrl_cost_weight=ctrl_cost_weight)
    if task_seed is not None and velocities is not None:
        raise ValueError("give `velocities` or `task_seed` (to draw them), not both")
    n = _check_num_tasks(4 if num_tasks is None else num_tasks)
    if task_seed is None:
        default = _spread(0.0, max_velocity, n)
    else:
        default = np.random.default_rng(task_seed).uniform(0.0, max_velocity, n)
    targets = _values("velocities", velocities, default, num_tasks)

    def reward_fn(prev, nxt, action, task):
        speed_error = jnp.abs(nxt.metrics["x_velocity"] - task.target_velocity)
        return -speed_error - ctrl_cost_weight * jnp.sum(jnp.square(action))

    return BraxTaskFamily("halfcheetah", VelocityTask(targets), reward_fn, backend=backend)


def ant_dir(
    num_tasks: int = 4,
    backend: str = "spring",
    ctrl_cost_weight: float = 0.5,
    healthy_reward: float = 1.0,
    task_seed: int | None = None,
) -> BraxTaskFamily:
    """Ant running in a direction: ``r = ⟨v_xy, d⟩ + r_alive − c ‖a‖² − contact cost``.

    ``v_xy`` is the torso's planar velocity over the step, ``d`` the task's unit direction
    (angles ``2π i / N``, or uniform in ``[0, 2π)`` with ``task_seed`` as in PEARL),
    ``r_alive = healthy_reward`` and ``c = ctrl_cost_weight`` (Brax's Ant
    defaults, 1.0 and 0.5). Brax computes no contact forces for these backends, so its contact
    cost, included here, is 0. Episodes terminate when the torso leaves the healthy height range
    ``[0.2, 1.0]`` m, as in Ant.

    Against the literature (table in the module docstring): PEARL's ant-dir has the same
    reward terms, weights and termination, with a contact cost Brax does not compute and
    directions forward/backward or uniform angles; MAML's ant-dir is forward/backward only.
    Brax Ant observes 27 values (no contact forces).
    """
    _finite(ctrl_cost_weight=ctrl_cost_weight, healthy_reward=healthy_reward)
    directions = jnp.asarray(_circle(_check_num_tasks(num_tasks), task_seed), jnp.float32)

    def reward_fn(prev, nxt, action, task):
        m = nxt.metrics
        velocity = jnp.stack([m["x_velocity"], m["y_velocity"]])
        ctrl_cost = ctrl_cost_weight * jnp.sum(jnp.square(action))
        return (
            jnp.dot(velocity, task.direction)
            + m["reward_survive"]
            - ctrl_cost
            + m["reward_contact"]
        )

    env_kwargs = {"ctrl_cost_weight": ctrl_cost_weight, "healthy_reward": healthy_reward}
    return BraxTaskFamily(
        "ant", DirectionTask(directions), reward_fn, backend=backend, env_kwargs=env_kwargs
    )


def ant_goal(
    num_tasks: int = 4,
    radius: float = 3.0,
    backend: str = "spring",
    ctrl_cost_weight: float | None = None,
    terminate_when_unhealthy: bool = False,
    definition: Literal["circle", "pearl"] = "circle",
    task_seed: int | None = None,
) -> BraxTaskFamily:
    """Ant walking to a goal: ``r = −dist(p_xy, g) − c ‖a‖²``.

    ``p_xy`` is the torso's position after the step and ``g`` the task's goal. Two definitions:

      * ``"circle"`` (default): L2 distance, ``c = 0.05``, goals on the circle of ``radius``
        metres at angles ``2π i / N`` (uniform angles with ``task_seed``): every task is
        equally far, so the tasks differ only in direction;
      * ``"pearl"``: PEARL's ant-goal — L1 distance, ``c = 0.1``, goals uniform in the disk
        of ``radius`` (3 m), drawn with ``task_seed`` (default 0). PEARL also subtracts a
        contact cost, which Brax does not compute (0 here).

    ``ctrl_cost_weight`` overrides ``c``. The observation includes the torso's x, y (Ant's
    ``exclude_current_positions_from_observation=False``): without them the goal is not
    observable. There is no termination by default: with rewards that are all negative, ending
    the episode by falling over would be a way to stop paying them. Standing still scores about
    ``−radius`` per step on the circle; walking straight to the goal at speed ``v`` and staying
    there costs about ``radius² / (2 v dt)`` in total (``dt = 0.05`` s).
    """
    if definition not in ("circle", "pearl"):
        raise ValueError(f"`definition` must be 'circle' or 'pearl', got {definition!r}")
    if ctrl_cost_weight is None:
        ctrl_cost_weight = 0.05 if definition == "circle" else 0.1
    _finite(radius=radius, ctrl_cost_weight=ctrl_cost_weight)
    if not radius > 0:
        raise ValueError(f"`radius` must be positive, got {radius!r}")
    n = _check_num_tasks(num_tasks)
    if definition == "pearl":
        goals = _disk(n, radius, 0 if task_seed is None else task_seed)
    else:
        goals = radius * _circle(n, task_seed)
    goals = jnp.asarray(goals, jnp.float32)
    l1 = definition == "pearl"

    def reward_fn(prev, nxt, action, task):
        offset = nxt.pipeline_state.x.pos[0, :2] - task.goal
        distance = jnp.sum(jnp.abs(offset)) if l1 else jnp.sqrt(jnp.sum(jnp.square(offset)))
        return -distance - ctrl_cost_weight * jnp.sum(jnp.square(action))

    env_kwargs = {
        "exclude_current_positions_from_observation": False,
        "terminate_when_unhealthy": terminate_when_unhealthy,
    }
    return BraxTaskFamily("ant", GoalTask(goals), reward_fn, backend=backend, env_kwargs=env_kwargs)


def halfcheetah_mass(
    num_tasks: int | None = None,
    backend: str = "spring",
    mass_scales: Sequence[float] | None = None,
    friction_scales: Sequence[float] | None = None,
    task_seed: int | None = None,
) -> BraxTaskFamily:
    """HalfCheetah running forward with per-task masses and friction (tasks differ in DYNAMICS).

    Reward: the env's own, ``r = v_x − 0.1 ‖a‖²``. By default the mass scales are spread
    geometrically over ``[0.5, 2]`` (log-uniform draws with ``task_seed``) and friction is
    unchanged; ``mass_scales`` and
    ``friction_scales`` (same length, or one of them alone) override them. Neither MAML nor
    PEARL has this task (PEARL randomises the dynamics of hopper and walker instead). See
    ``mass_friction_sys_fn`` for how the scales are applied on each backend.
    """
    if task_seed is not None and mass_scales is not None:
        raise ValueError("give `mass_scales` or `task_seed` (to draw them), not both")
    n = _check_num_tasks(4 if num_tasks is None else num_tasks)
    given = num_tasks  # when given, the per-task lists must agree with it
    if mass_scales is not None:
        masses = _values("mass_scales", mass_scales, np.ones(n), given)
        n = masses.shape[0]
    else:
        masses = None
    if friction_scales is not None:
        frictions = _values("friction_scales", friction_scales, np.ones(n), given)
        n = frictions.shape[0] if masses is None else n
    else:
        frictions = jnp.ones((n,), jnp.float32)
    if masses is None and task_seed is not None:
        log_masses = np.random.default_rng(task_seed).uniform(np.log(0.5), np.log(2.0), n)
        masses = jnp.asarray(np.exp(log_masses), jnp.float32)
    elif masses is None:
        masses = jnp.asarray(np.geomspace(0.5, 2.0, n) if n > 1 else [1.0], jnp.float32)
    if masses.shape != frictions.shape:
        raise ValueError(
            f"mass_scales and friction_scales must have the same length, got "
            f"{masses.shape[0]} and {frictions.shape[0]}"
        )
    if bool(jnp.any(masses <= 0)) or bool(jnp.any(frictions < 0)):
        raise ValueError("mass_scales must be positive and friction_scales non-negative")
    env = brax_envs.get_environment("halfcheetah", backend=backend)
    return BraxTaskFamily(
        env,
        DynamicsTask(mass_scale=masses, friction_scale=frictions),
        lambda prev, nxt, action, task: nxt.reward,
        sys_fn=mass_friction_sys_fn(env.sys, backend),
    )
