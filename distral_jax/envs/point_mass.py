"""Point mass going round a wall to one of several goals: a cheap continuous task family.

The arena is the square ``[-A, A]²`` (``A = arena_size``). A wall, the box
``[-0.6 A, 0.6 A] × [-0.05 A, 0.05 A]``, separates the start region, centred on ``(0, -0.75 A)``,
from the goals, which lie on an arc of radius ``0.7 A`` around the origin at angles spread over
``goal_arc_degrees`` (default 30°..150°). From the start the straight line to every goal is
blocked, so all tasks share the skill "go around an end of the wall" and differ in which end is
shorter and in where to go after it. The central goals are the hard ones: greedy motion towards
them pins the mass against the middle of the wall.

Dynamics (one step, ``dt = 0.1``; the action ``a ∈ [-1, 1]²`` is a force)::

    v' = clip_norm(v + dt (a_max a − k v), v_max)      a_max = A / s², k = 1 / s, v_max = 0.5 A / s
    p' = p + dt v'

followed by collisions: a position leaving the arena is clipped back and its outward velocity
component zeroed; a position entering the wall is put back on the face it came through (known
from the previous position, which is always outside) and the normal velocity is zeroed, so the
mass slides along walls. One step moves at most ``0.05 A``, half the wall's thickness, so it
cannot tunnel through.

Observation, shape ``[4]``: ``(p / A, v / v_max)``, both within ``[-1, 1]``. Nothing in it
identifies the task: each task has its own policy.

Reward of the transition ``(p, a) → p'`` to goal ``g``::

    r = −‖p' − g‖ / A − c_u ‖a‖² + b · 1[‖p' − g‖ < ρ]

with ``c_u = ctrl_cost`` (0.01), ``b = success_bonus`` (0) and ``ρ = success_radius`` (0.2, in
the units of ``A = 2``). With ``terminate_on_success`` (default) reaching the goal ends the
episode, which is what the negative rewards make desirable.

Reward scale, with the defaults and ``episode_length = 100`` (``DEFAULT_EPISODE_LENGTH``): the
start is 1.25–1.45 ``A`` from the goals, so per-step rewards lie in about [−1.5, 0] and returns
in [−150, 0]. Measured mean returns over random starts, outer goals / central goals (4 tasks;
8 tasks span the same ranges):

  * zero or uniformly random actions: ≈ −125 / −140; they never arrive.
  * ``greedy_policy`` (steer straight at the goal): ≈ −34 / −78; it slides along the wall to the
    outer goals but is pinned under its middle for the central ones.
  * ``scripted_policy`` (go round the nearer end of the wall): ≈ −32 / −55; it reaches every
    goal, in 56–73 steps.

Literature. PEARL's point-robot (Rakelly et al. 2019) is the nearest published task; this
family differs on purpose: PEARL's robot moves by position control (steps of at most 0.1) in
an empty plane, with goals in the unit square (``point-robot``) or on the unit half-circle
(``sparse-point-robot``, reward only within 0.2 of the goal), observation = position (2), no
termination. Here the mass is force-controlled with velocity in the observation (4), a wall
makes every task share the skill of going round it (the transfer Distral is about), goals lie
on an arc beyond the wall, and reaching the goal ends the episode.

``reference_returns(policy)`` measures these per task; a learner that beats the greedy return on
the central goals has learned to go round the wall, and a fraction of the way from the random to
the scripted return makes a success threshold.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from distral_jax.envs import episodes
from distral_jax.envs.base import State, TaskFamily

DEFAULT_EPISODE_LENGTH = 100

# Geometry and dynamics in units of the arena half-width A and of seconds; see the docstring.
_DT = 0.1
_MAX_ACCEL = 1.0
_DAMPING = 1.0
_MAX_SPEED = 0.5
_WALL_HALF_LENGTH = 0.6
_WALL_HALF_THICKNESS = 0.05
_START_Y = -0.75
_GOAL_DISTANCE = 0.7
# Waypoints of the scripted controller sit this far outside the wall's corners.
_WAYPOINT_MARGIN = 0.12
_REFERENCE_POLICIES = ("scripted", "greedy", "random", "still")


@struct.dataclass
class PointMassTask:
    """Task parameters. ``goal``: ``[2]`` for one task, ``[N, 2]`` stacked."""

    goal: jax.Array


@struct.dataclass
class PointMassState:
    """Physical state of one point mass: position ``[2]`` and velocity ``[2]``, world units."""

    pos: jax.Array
    vel: jax.Array


class PointMassGoals(TaskFamily):
    """Point-mass navigation around a wall to ``num_tasks`` goals on an arc (see module doc).

    Args:
      num_tasks: number of goals N, spread evenly over ``goal_arc_degrees``.
      arena_size: half-width ``A`` of the square arena; every length scales with it.
      success_radius: the goal is reached when ``‖p' − g‖ < success_radius``.
      goal_arc_degrees: ``(low, high)`` angles of the first and last goal, within [15, 165]
        so that every goal is above the wall.
      terminate_on_success: end the episode when the goal is reached.
      success_bonus: reward ``b`` added on the step that reaches the goal.
      ctrl_cost: coefficient ``c_u`` of the control cost ``c_u ‖a‖²``.
      start_noise: the start is uniform in a square of half-width ``start_noise · A`` around
        ``(0, -0.75 A)``.
    """

    def __init__(
        self,
        num_tasks: int = 4,
        arena_size: float = 2.0,
        success_radius: float = 0.2,
        goal_arc_degrees: tuple[float, float] = (30.0, 150.0),
        terminate_on_success: bool = True,
        success_bonus: float = 0.0,
        ctrl_cost: float = 0.01,
        start_noise: float = 0.05,
    ):
        if int(num_tasks) != num_tasks or num_tasks < 1:
            raise ValueError(f"num_tasks must be a positive integer, got {num_tasks!r}")
        numbers = dict(
            arena_size=arena_size,
            success_radius=success_radius,
            success_bonus=success_bonus,
            ctrl_cost=ctrl_cost,
            start_noise=start_noise,
        )
        for name, value in numbers.items():
            if not np.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
        if not arena_size > 0:
            raise ValueError(f"arena_size must be positive, got {arena_size!r}")
        if not 0 < success_radius < arena_size:
            raise ValueError(
                f"success_radius must be in (0, arena_size={arena_size}), got {success_radius!r}"
            )
        low, high = goal_arc_degrees
        if not 15.0 <= low <= high <= 165.0:
            raise ValueError(
                f"goal_arc_degrees must satisfy 15 <= low <= high <= 165, got {goal_arc_degrees!r}"
            )
        if ctrl_cost < 0:
            raise ValueError(f"ctrl_cost must be non-negative, got {ctrl_cost!r}")
        if not 0 <= start_noise <= 0.2:
            raise ValueError(f"start_noise must be in [0, 0.2], got {start_noise!r}")
        self._num_tasks = int(num_tasks)
        self.arena_size = float(arena_size)
        self.success_radius = float(success_radius)
        self.goal_arc_degrees = (float(low), float(high))
        self.terminate_on_success = bool(terminate_on_success)
        self.success_bonus = float(success_bonus)
        self.ctrl_cost = float(ctrl_cost)
        self.start_noise = float(start_noise)

        a = self.arena_size
        self.dt = _DT
        self.max_accel = _MAX_ACCEL * a
        self.damping = _DAMPING
        self.max_speed = _MAX_SPEED * a
        self.wall_half_extent = np.array([_WALL_HALF_LENGTH * a, _WALL_HALF_THICKNESS * a])
        self.start_center = np.array([0.0, _START_Y * a])
        angles = np.deg2rad(
            np.linspace(low, high, self._num_tasks) if self._num_tasks > 1 else [(low + high) / 2]
        )
        self.goals = _GOAL_DISTANCE * a * np.stack([np.cos(angles), np.sin(angles)], axis=-1)

    # ----------------------------------------------------------------------------- protocol
    @property
    def num_tasks(self) -> int:
        return self._num_tasks

    @property
    def observation_size(self) -> int:
        return 4

    @property
    def action_size(self) -> int:
        return 2

    @property
    def discrete(self) -> bool:
        return False

    def tasks(self) -> PointMassTask:
        """``PointMassTask(goal=[N, 2])``."""
        return PointMassTask(goal=jnp.asarray(self.goals, jnp.float32))

    def reset(self, rng: jax.Array, task: PointMassTask) -> State:
        noise = self.start_noise * self.arena_size
        pos = jnp.asarray(self.start_center, jnp.float32) + jax.random.uniform(
            rng, (2,), jnp.float32, -noise, noise
        )
        physics = PointMassState(pos=pos, vel=jnp.zeros(2, jnp.float32))
        zero = jnp.zeros((), jnp.float32)
        metrics = {"distance": jnp.linalg.norm(pos - task.goal), "success": zero}
        return State(physics, self._obs(physics), zero, zero, metrics, {})

    def step(self, state: State, action: jax.Array, task: PointMassTask) -> State:
        action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
        physics = self.dynamics(state.pipeline_state, action)
        distance = jnp.linalg.norm(physics.pos - task.goal)
        success = (distance < self.success_radius).astype(jnp.float32)
        reward = (
            -distance / self.arena_size
            - self.ctrl_cost * jnp.sum(jnp.square(action))
            + self.success_bonus * success
        )
        done = success if self.terminate_on_success else jnp.zeros((), jnp.float32)
        metrics = {"distance": distance, "success": success}
        return state.replace(
            pipeline_state=physics,
            obs=self._obs(physics),
            reward=reward.astype(jnp.float32),
            done=done,
            metrics=metrics,
        )

    # ----------------------------------------------------------------------------- physics
    def dynamics(self, physics: PointMassState, action: jax.Array) -> PointMassState:
        """One integration step with collisions (see the module docstring)."""
        vel = physics.vel + self.dt * (self.max_accel * action - self.damping * physics.vel)
        speed = jnp.linalg.norm(vel)
        vel = vel * jnp.minimum(1.0, self.max_speed / jnp.maximum(speed, 1e-6))
        pos = physics.pos + self.dt * vel

        # Arena bounds: clip, and stop the motion into the boundary.
        bound = self.arena_size
        clipped = jnp.clip(pos, -bound, bound)
        vel = jnp.where(clipped != pos, 0.0, vel)
        pos = clipped

        # Wall: the previous position is outside, so it says which face was crossed.
        w, h = self.wall_half_extent
        prev = physics.pos
        inside = (jnp.abs(pos[0]) < w) & (jnp.abs(pos[1]) < h)
        through_y = jnp.abs(prev[1]) >= h  # came through the bottom or the top face
        y_face = jnp.where(prev[1] >= h, h, -h)
        x_face = jnp.where(prev[0] >= 0, w, -w)
        fixed_pos = jnp.where(through_y, jnp.stack([pos[0], y_face]), jnp.stack([x_face, pos[1]]))
        fixed_vel = jnp.where(through_y, vel * jnp.array([1.0, 0.0]), vel * jnp.array([0.0, 1.0]))
        pos = jnp.where(inside, fixed_pos, pos)
        vel = jnp.where(inside, fixed_vel, vel)
        return PointMassState(pos=pos, vel=vel)

    def _obs(self, physics: PointMassState) -> jax.Array:
        return jnp.concatenate([physics.pos / self.arena_size, physics.vel / self.max_speed])

    # ----------------------------------------------------------------------------- references
    def scripted_policy(self, obs: jax.Array, task: PointMassTask) -> jax.Array:
        """A go-around controller from the observation alone: action ``[2]`` in ``[-1, 1]``.

        If the segment to the goal is clear it steers to the goal; otherwise it goes to the
        corner below, then the corner above, the nearer end of the wall (by path length), with a
        proportional-derivative law ``a = clip(4 (target − p) / A − 2 v / v_max)``.
        """
        a = self.arena_size
        pos = obs[:2] * a
        goal = task.goal
        w, h = self.wall_half_extent
        m = _WAYPOINT_MARGIN * a

        def corners(side):
            return jnp.array([side * (w + m), -h - m]), jnp.array([side * (w + m), h + m])

        def path_length(side):
            low, high = corners(side)
            return (
                jnp.linalg.norm(pos - low)
                + jnp.linalg.norm(high - low)
                + jnp.linalg.norm(goal - high)
            )

        side = jnp.where(path_length(1.0) <= path_length(-1.0), 1.0, -1.0)
        low, high = corners(side)
        blocked = _segment_hits_box(pos, goal, jnp.array([w, h]) + 0.5 * m)
        beside = jnp.abs(pos[0]) >= w + 0.5 * m
        target = jnp.where(blocked, jnp.where(beside, high, low), goal)
        return self._steer(obs, target)

    def greedy_policy(self, obs: jax.Array, task: PointMassTask) -> jax.Array:
        """Steers straight at the goal with the same PD law: the local optimum of the reward.

        It reaches the outer goals by sliding along the wall but is pinned below the wall's
        middle for the central ones, so beating it means the obstacle was understood.
        """
        return self._steer(obs, task.goal)

    def _steer(self, obs: jax.Array, target: jax.Array) -> jax.Array:
        pos, vel = obs[:2] * self.arena_size, obs[2:]
        return jnp.clip(4.0 * (target - pos) / self.arena_size - 2.0 * vel, -1.0, 1.0)

    def reference_returns(
        self,
        policy: str = "scripted",
        episode_length: int = DEFAULT_EPISODE_LENGTH,
        num_episodes: int = 16,
        seed: int = 0,
    ) -> np.ndarray:
        """Mean undiscounted return per task, shape ``[N]``, of a reference policy.

        Args:
          policy: ``"scripted"`` (``scripted_policy``), ``"greedy"`` (``greedy_policy``),
            ``"random"`` (uniform actions in ``[-1, 1]²``) or ``"still"`` (zero actions).
          episode_length: time limit; episodes also end when the goal is reached.
          num_episodes: episodes per task (random starts).
          seed: PRNG seed.
        """
        if policy not in _REFERENCE_POLICIES:
            raise ValueError(f"policy must be one of {_REFERENCE_POLICIES}, got {policy!r}")
        if int(episode_length) < 1:
            raise ValueError(f"episode_length must be a positive integer, got {episode_length!r}")
        if int(num_episodes) < 1:
            raise ValueError(f"num_episodes must be a positive integer, got {num_episodes!r}")

        tasks = self.tasks()
        if policy == "random":
            act = episodes.random_policy(self)
        else:
            controller = {
                "scripted": self.scripted_policy,
                "greedy": self.greedy_policy,
                "still": lambda obs, task: jnp.zeros(2, jnp.float32),
            }[policy]
            per_task = jax.vmap(controller, in_axes=(0, None))  # envs of one task
            act = lambda obs, key: jax.vmap(per_task)(obs, tasks)

        run = lambda key: episodes.run_episodes(
            self, act, tasks, key, int(num_episodes), int(episode_length)
        )
        return np.asarray(jax.jit(run)(jax.random.PRNGKey(seed)).returns.mean(axis=1))


def _segment_hits_box(start: jax.Array, end: jax.Array, half_extent: jax.Array) -> jax.Array:
    """Whether the segment ``start → end`` meets the centred box ``|x| ≤ half_extent`` (slabs)."""
    direction = end - start
    safe = jnp.where(jnp.abs(direction) < 1e-9, 1e-9, direction)
    t1 = (-half_extent - start) / safe
    t2 = (half_extent - start) / safe
    t_enter = jnp.max(jnp.minimum(t1, t2))
    t_exit = jnp.min(jnp.maximum(t1, t2))
    return (t_enter <= t_exit) & (t_exit >= 0.0) & (t_enter <= 1.0)


__all__ = [
    "DEFAULT_EPISODE_LENGTH",
    "PointMassGoals",
    "PointMassState",
    "PointMassTask",
]
