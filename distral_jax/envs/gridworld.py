"""A pure-JAX multitask grid world: one map, one goal cell per task.

The agent moves on the free cells of an ASCII map with four actions (up, right, down, left);
a move into a wall or off the map leaves it in place. With probability ``slip`` the intended
action is replaced by one drawn uniformly from all four (possibly the intended one). Entering
the task's goal cell pays ``goal_reward`` and ends the episode (``done = 1``); every other step
pays ``step_reward``. A step taken from the goal cell (only possible without auto-reset) stays
there, pays 0 and is ``done`` again: the goal is absorbing.

Reward scale and β. The entropy-regularised objective (docs/maths.md §1) pays the agent about
``log|A| / β = 1.39 / β`` per step for acting at random, and reaching the goal ends that
income: with a unit goal reward and discount γ, wandering is worth up to about
``1.39 / (β (1 − γ))``. Measured with exact Distral on ``two_rooms`` (8 goals, γ = 0.95,
horizon 50): β ≤ 10 teaches the agent to avoid the goal (return below zero), β = 30 reaches it
with the greedy policy, β ≥ 50 gives sampled returns above 0.99 of optimal. A step cost c
offsets the bonus only when c ≳ 1.39 / β (−0.05 rescues β = 10 with α = 0.5); the default
−0.01 mainly makes the undiscounted return prefer short paths (otherwise every policy that
reaches the goal in time would be "optimal"). β scales like 1 / reward: multiply it by
``1 / goal_reward`` when rescaling the rewards.

Literature. This is the project's version of the grid-world study of Teh et al. 2017, §4.1
(tabular Distral, one goal per task); MAML and PEARL have no task of this kind. The layouts,
goal placements and rewards here are this project's, documented above, not the paper's.

Cells. Free cells are numbered ``0 .. S−1`` in row-major order of the map; ``(row, col)``
coordinates are those of the ASCII map itself (row 0 is its first line, usually a wall).

Exact model convention (see ``tabular_model``): the goal cell is terminal and its rows of
``P`` are all zero, so that the tabular solvers in ``distral_jax.tabular`` give it value 0 and
never count an action there.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from distral_jax import tabular
from distral_jax.envs.base import State, TaskFamily

ACTION_NAMES = ("up", "right", "down", "left")
# (d_row, d_col) of each action, in the order of ACTION_NAMES.
ACTION_DELTAS = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], dtype=np.int64)
NUM_ACTIONS = 4

TWO_ROOMS = """
#############
#.....#.....#
#.....#.....#
#...........#
#.....#.....#
#.....#.....#
#############
"""

# Sutton, Precup & Singh (1999): 11 x 11 interior, four rooms, four one-cell doorways.
FOUR_ROOMS = """
#############
#.....#.....#
#.....#.....#
#...........#
#.....#.....#
#.....#.....#
##.####.....#
#.....###.###
#.....#.....#
#.....#.....#
#...........#
#.....#.....#
#############
"""


class Layout:
    """A parsed map. All arrays are host numpy arrays (constants under ``jit``).

    Attributes:
      name: a label.
      free: bool ``[H, W]``, True on free cells.
      cell_rc: int ``[S, 2]``, the ``(row, col)`` of each free cell (row-major order).
      cell_index: int ``[H, W]``, the cell index of each free cell, −1 on walls.
      next_cell: int ``[S, 4]``, the cell reached by each action (itself when blocked).
      start_cells: int ``[K]``, cells marked 'S' (empty when the map marks none).
      doorway: bool ``[S]``, cells walled on two opposite sides (one-cell passages).
      room: int ``[S]``, room label of each cell (connected components of non-doorway
        cells, numbered in order of their first cell), −1 on doorways.
    """

    def __init__(self, free: np.ndarray, start_cells: Sequence[int] = (), name: str = "custom"):
        free = np.asarray(free, dtype=bool)
        if free.ndim != 2 or not free.any():
            raise ValueError("layout: the map has no free cell ('.' or 'S')")
        self.name = name
        self.free = free
        height, width = free.shape
        self.cell_rc = np.argwhere(free)
        self.cell_index = np.full(free.shape, -1, dtype=np.int64)
        self.cell_index[free] = np.arange(len(self.cell_rc))
        self.start_cells = np.asarray(start_cells, dtype=np.int64).reshape(-1)

        def blocked(r: np.ndarray, c: np.ndarray) -> np.ndarray:
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            return ~inside | ~free[np.clip(r, 0, height - 1), np.clip(c, 0, width - 1)]

        r, c = self.cell_rc[:, 0:1], self.cell_rc[:, 1:2]
        nr, nc = r + ACTION_DELTAS[None, :, 0], c + ACTION_DELTAS[None, :, 1]
        wall = blocked(nr, nc)  # [S, 4]
        target = self.cell_index[np.clip(nr, 0, height - 1), np.clip(nc, 0, width - 1)]
        self.next_cell = np.where(wall, np.arange(self.num_cells)[:, None], target)
        # up & down blocked, or left & right blocked: a passage between rooms.
        self.doorway = (wall[:, 0] & wall[:, 2]) | (wall[:, 1] & wall[:, 3])
        self.room = self._label_rooms()

    @property
    def num_cells(self) -> int:
        return int(self.cell_rc.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return self.free.shape

    @property
    def num_rooms(self) -> int:
        return int(self.room.max()) + 1 if (self.room >= 0).any() else 0

    def cell(self, where: int | Sequence[int], what: str = "cell") -> int:
        """Cell index of ``where`` (a cell index or a map ``(row, col)``); ValueError if bad."""
        if isinstance(where, (int, np.integer)):
            if not 0 <= int(where) < self.num_cells:
                raise ValueError(f"{what}: cell index {where} outside [0, {self.num_cells})")
            return int(where)
        try:
            r, c = (int(v) for v in where)
        except (TypeError, ValueError):
            msg = f"{what}: expected a cell index or (row, col), got {where!r}"
            raise ValueError(msg) from None
        height, width = self.shape
        if not (0 <= r < height and 0 <= c < width):
            raise ValueError(f"{what}: {(r, c)} is outside the {height}x{width} map")
        if not self.free[r, c]:
            raise ValueError(f"{what}: {(r, c)} is a wall")
        return int(self.cell_index[r, c])

    def can_reach(self, goal: int) -> np.ndarray:
        """bool ``[S]``: cells from which some action sequence reaches ``goal``."""
        seen = np.zeros(self.num_cells, dtype=bool)
        seen[goal] = True
        frontier = [goal]
        while frontier:  # breadth-first search on the reversed move graph
            preds = np.flatnonzero(np.isin(self.next_cell, frontier).any(axis=1) & ~seen)
            seen[preds] = True
            frontier = preds.tolist()
        return seen

    def _label_rooms(self) -> np.ndarray:
        room = np.full(self.num_cells, -1, dtype=np.int64)
        label = 0
        for s in range(self.num_cells):
            if self.doorway[s] or room[s] >= 0:
                continue
            stack, room[s] = [s], label
            while stack:
                for t in self.next_cell[stack.pop()]:
                    if not self.doorway[t] and room[t] < 0:
                        room[t] = label
                        stack.append(int(t))
            label += 1
        return room

    def __repr__(self) -> str:
        return f"Layout({self.name!r}, shape={self.shape}, cells={self.num_cells})"


def parse_layout(text: str, name: str = "custom") -> Layout:
    """Parses an ASCII map: '#' wall, '.' free, 'S' free start cell. Blank edge lines ignored."""
    lines = [line.rstrip() for line in textwrap.dedent(text).splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise ValueError("layout: the map is empty")
    widths = {len(line) for line in lines}
    if len(widths) != 1:
        raise ValueError(f"layout: ragged map, row lengths {sorted(widths)} differ")
    grid = np.array([list(line) for line in lines])
    bad = ~np.isin(grid, ["#", ".", "S"])
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"layout: unknown character {grid[r, c]!r} at {(int(r), int(c))}")
    free = grid != "#"
    if not free.any():
        raise ValueError("layout: the map has no free cell ('.' or 'S')")
    index = np.cumsum(free).reshape(free.shape) - 1
    return Layout(free, start_cells=index[grid == "S"], name=name)


LAYOUTS: dict[str, str] = {"two_rooms": TWO_ROOMS, "four_rooms": FOUR_ROOMS}


def get_layout(layout: str | Layout) -> Layout:
    """A ``Layout`` from itself, a name in ``LAYOUTS``, or an ASCII map (a multi-line string)."""
    if isinstance(layout, Layout):
        return layout
    if layout in LAYOUTS:
        return parse_layout(LAYOUTS[layout], name=layout)
    if "\n" in layout:
        return parse_layout(layout)
    raise ValueError(f"layout: unknown name {layout!r}; known: {sorted(LAYOUTS)} or an ASCII map")


def spread_goals(
    layout: str | Layout, num_goals: int, rooms: Sequence[int] | None = None
) -> list[int]:
    """``num_goals`` distinct goal cells spread over ``rooms`` (default: all rooms, or every
    cell of a map made only of corridors).

    Goals go to the rooms in turn (room order as given); inside a room they are evenly spaced
    along the room's cells in row-major order, which spreads them over rows and columns.
    """
    layout = get_layout(layout)
    if rooms is None and layout.num_rooms == 0:  # only corridors: use every cell
        members = [np.arange(layout.num_cells)]
    else:
        rooms = list(range(layout.num_rooms)) if rooms is None else [int(r) for r in rooms]
        if not rooms or any(not 0 <= r < layout.num_rooms for r in rooms):
            raise ValueError(f"rooms: expected labels in [0, {layout.num_rooms}), got {rooms}")
        members = [np.flatnonzero(layout.room == r) for r in rooms]
    capacity = sum(len(m) for m in members)
    if not 1 <= num_goals <= capacity:
        raise ValueError(f"num_goals: expected 1..{capacity} here, got {num_goals}")
    counts = [0] * len(members)
    for k in range(num_goals):  # round-robin, skipping full rooms
        j = k % len(members)
        while counts[j] >= len(members[j]):
            j = (j + 1) % len(members)
        counts[j] += 1
    goals = []
    for cells, n in zip(members, counts, strict=True):
        if n:  # spacing >= 1 and round-half-up keep the picks distinct
            picks = np.floor(np.linspace(0, len(cells) - 1, n) + 0.5).astype(int)
            goals.extend(int(cells[p]) for p in picks)
    return goals


@struct.dataclass
class GridTask:
    """One task (or, stacked, all tasks with a leading axis N).

    Attributes:
      goal: int32 ``[]``, the goal cell index.
      goal_reward: float32 ``[]``, paid on entering the goal.
      step_reward: float32 ``[]``, paid on every other step.
      start_probs: float32 ``[S]``, the start-cell distribution (zero on the goal).
      slip: float32 ``[]``, probability that a uniformly random action replaces the chosen one.
    """

    goal: jax.Array
    goal_reward: jax.Array
    step_reward: jax.Array
    start_probs: jax.Array
    slip: jax.Array


@struct.dataclass
class GridState:
    """``pipeline_state`` of the grid world: the agent's cell and the key for slips."""

    cell: jax.Array  # int32 []
    rng: jax.Array  # uint32 [2], a raw key


class TabularModel(NamedTuple):
    """The exact MDPs of all tasks; ``P`` rows are zero at terminal (goal) cells.

    P: ``[N, S, A, S]`` transition probabilities; R: ``[N, S, A]`` expected reward;
    d0: ``[N, S]`` start distribution; terminal: bool ``[N, S]``.
    """

    P: jax.Array
    R: jax.Array
    d0: jax.Array
    terminal: jax.Array


def _advance(rng: jax.Array, num: int) -> tuple[jax.Array, jax.Array]:
    """The next raw key and ``num`` uniforms in [0, 1), from ONE threefry call.

    Equivalent in quality to ``split`` followed by ``uniform`` (both hash counters with the
    key), but half the work, and each threefry call site costs XLA about half a second of
    compile time on CPU.
    """
    bits = jax.random.bits(rng, (num + 2,), jnp.uint32)
    return bits[:2], bits_to_uniform(bits[2:])


def bits_to_uniform(bits: jax.Array) -> jax.Array:
    """uint32 random bits to float32 uniforms in [0, 1) (23 mantissa bits, as jax.random)."""
    one_to_two = jax.lax.bitcast_convert_type((bits >> 9) | jnp.uint32(0x3F800000), jnp.float32)
    return one_to_two - 1.0


def _per_task(value, num_tasks: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != num_tasks):
        raise ValueError(f"{what}: expected a scalar or {num_tasks} values, got shape {arr.shape}")
    arr = np.broadcast_to(arr, (num_tasks,))
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: values must be finite, got {arr}")
    return arr


class GridWorld(TaskFamily):
    """A family of goal-reaching tasks on one grid (see the module docstring).

    Actions are indices in ``[0, 4)``; an index outside that range is clipped to the nearest
    move (0 or 3) rather than rejected, because a traced value cannot raise inside ``jit``. The
    policies of this package only produce valid indices.

    Args:
      layout: a ``LAYOUTS`` name, an ASCII map, or a ``Layout``.
      goals: one goal per task, each a cell index or a map ``(row, col)``; default:
        ``spread_goals(layout, 4)``.
      goal_reward: reward for entering the goal (scalar, or one per task). Default 1.
      step_reward: reward of every other step (scalar or per task). Default −0.01: a small
        cost so that the undiscounted return rewards short paths (see the module docstring
        for its interplay with β).
      slip: probability in [0, 1] of a uniformly random action (scalar or per task). Default 0.
      start: start cells (indices or ``(row, col)``), uniform over them minus the task's goal;
        default: the map's 'S' cells if it marks any, else every free cell except the goal.
      obs: ``"onehot"`` (one-hot of the cell, size S) or ``"coords"`` (row and column scaled
        to [0, 1] over the free cells' extent, size 2).
    """

    def __init__(
        self,
        layout: str | Layout = "two_rooms",
        goals: Sequence[int | Sequence[int]] | None = None,
        goal_reward: float | Sequence[float] = 1.0,
        step_reward: float | Sequence[float] = -0.01,
        slip: float | Sequence[float] = 0.0,
        start: Sequence[int | Sequence[int]] | None = None,
        obs: str = "onehot",
    ):
        self.layout = get_layout(layout)
        lay = self.layout
        if goals is None:
            goals = spread_goals(lay, min(4, lay.num_cells - 1))
        goal_cells = np.array([lay.cell(g, "goals") for g in goals], dtype=np.int64)
        if goal_cells.size == 0:
            raise ValueError("goals: at least one goal (one task) is required")
        n = len(goal_cells)
        self._goal_reward = _per_task(goal_reward, n, "goal_reward")
        self._step_reward = _per_task(step_reward, n, "step_reward")
        self._slip = _per_task(slip, n, "slip")
        if ((self._slip < 0) | (self._slip > 1)).any():
            raise ValueError(f"slip: expected probabilities in [0, 1], got {self._slip}")
        if obs not in ("onehot", "coords"):
            raise ValueError(f"obs: expected 'onehot' or 'coords', got {obs!r}")
        self.obs_mode = obs

        if start is not None:
            start_cells = np.unique([lay.cell(s, "start") for s in start]).astype(np.int64)
        elif lay.start_cells.size:
            start_cells = lay.start_cells
        else:
            start_cells = np.arange(lay.num_cells)
        start_probs = np.zeros((n, lay.num_cells))
        for i, g in enumerate(goal_cells):
            cells = start_cells[start_cells != g]
            if cells.size == 0:
                raise ValueError(f"start: task {i} has no start cell other than its goal")
            unreachable = cells[~lay.can_reach(int(g))[cells]].tolist()
            if unreachable:
                rc = [tuple(int(v) for v in lay.cell_rc[s]) for s in unreachable[:3]]
                raise ValueError(
                    f"goals: goal {tuple(int(v) for v in lay.cell_rc[g])} of task {i} is "
                    f"unreachable from start cells {rc}{' ...' if len(unreachable) > 3 else ''}"
                )
            start_probs[i, cells] = 1.0 / cells.size
        self.goal_cells = goal_cells
        self._start_probs = start_probs
        span = np.maximum(lay.cell_rc.max(0) - lay.cell_rc.min(0), 1)
        self._coords = ((lay.cell_rc - lay.cell_rc.min(0)) / span).astype(np.float32)
        self._model: tuple[np.ndarray, ...] | None = None

    # ----------------------------------------------------------------- TaskFamily protocol
    @property
    def num_tasks(self) -> int:
        return int(self.goal_cells.shape[0])

    @property
    def num_cells(self) -> int:
        return self.layout.num_cells

    @property
    def observation_size(self) -> int:
        return self.num_cells if self.obs_mode == "onehot" else 2

    @property
    def action_size(self) -> int:
        return NUM_ACTIONS

    @property
    def discrete(self) -> bool:
        return True

    @property
    def one_hot_observations(self) -> bool:
        return self.obs_mode == "onehot"

    def tasks(self) -> GridTask:
        return GridTask(
            goal=jnp.asarray(self.goal_cells, jnp.int32),
            goal_reward=jnp.asarray(self._goal_reward, jnp.float32),
            step_reward=jnp.asarray(self._step_reward, jnp.float32),
            start_probs=jnp.asarray(self._start_probs, jnp.float32),
            slip=jnp.asarray(self._slip, jnp.float32),
        )

    def observe(self, cell: jax.Array) -> jax.Array:
        """Observation of a cell index (any leading shape)."""
        if self.obs_mode == "onehot":
            return jax.nn.one_hot(cell, self.num_cells, dtype=jnp.float32)
        return jnp.asarray(self._coords)[cell]

    def reset(self, rng: jax.Array, task: GridTask) -> State:
        if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
            rng = jax.random.key_data(rng)  # keep a raw key: wrappers select with jnp.where
        rng, u = _advance(rng, 1)
        # Inverse-CDF sampling: one uniform instead of S Gumbels (resets run every step).
        cdf = jnp.cumsum(task.start_probs)
        cell = jnp.searchsorted(cdf, u[0] * cdf[-1], side="right", method="compare_all")
        # side="right" skips zero-probability cells; round-off at u = cdf[-1] falls back to
        # the last cell with positive probability.
        last = cdf.shape[0] - 1 - jnp.argmax(task.start_probs[::-1] > 0)
        cell = jnp.minimum(cell, last).astype(jnp.int32)
        zero = jnp.zeros((), jnp.float32)
        return State(
            pipeline_state=GridState(cell=cell, rng=rng),
            obs=self.observe(cell),
            reward=zero,
            done=zero,
            metrics={"success": zero},
        )

    def step(self, state: State, action: jax.Array, task: GridTask) -> State:
        cell = state.pipeline_state.cell
        rng, u = _advance(state.pipeline_state.rng, 2)  # u[0]: slip?, u[1]: its action
        action = jnp.clip(jnp.asarray(action, jnp.int32), 0, NUM_ACTIONS - 1)
        random_action = jnp.minimum((u[1] * NUM_ACTIONS).astype(jnp.int32), NUM_ACTIONS - 1)
        action = jnp.where(u[0] < task.slip, random_action, action)
        at_goal = cell == task.goal
        nxt = jnp.where(at_goal, cell, jnp.asarray(self.layout.next_cell, jnp.int32)[cell, action])
        reached = (nxt == task.goal) & ~at_goal
        reward = jnp.where(reached, task.goal_reward, task.step_reward)
        reward = jnp.where(at_goal, 0.0, reward).astype(jnp.float32)
        return state.replace(
            pipeline_state=GridState(cell=nxt, rng=rng),
            obs=self.observe(nxt),
            reward=reward,
            done=(reached | at_goal).astype(jnp.float32),
            metrics={"success": reached.astype(jnp.float32)},
        )

    # ------------------------------------------------------------------ exact models
    def tabular_model(self) -> TabularModel:
        """Exact ``P [N,S,A,S]``, ``R [N,S,A]``, ``d0 [N,S]``, ``terminal [N,S]``.

        P(s'|s,a) = (1 − slip) 1[s' = next(s,a)] + slip/4 Σ_b 1[s' = next(s,b)], with all rows
        of the goal cell zero (terminal: no action, value 0). R(s,a) = Σ_s' P(s'|s,a) r(s'),
        r(goal) = goal_reward, r(other) = step_reward. Float64 when x64 is enabled.
        """
        dtype = jax.dtypes.canonicalize_dtype(np.float64)
        if self._model is None:  # host arrays: safe to cache and to reuse inside any trace
            S = self.num_cells
            move = np.eye(S)[self.layout.next_cell]  # [S, A, S]
            slip = self._slip[:, None, None, None]
            P = (1 - slip) * move[None] + slip * move.mean(axis=1, keepdims=True)[None]
            terminal = np.eye(S, dtype=bool)[self.goal_cells]  # [N, S]
            P = np.where(terminal[:, :, None, None], 0.0, P)
            r_next = np.where(terminal, self._goal_reward[:, None], self._step_reward[:, None])
            R = np.einsum("nsat,nt->nsa", P, r_next)
            self._model = (P, R, self._start_probs, terminal)
        P, R, d0, terminal = self._model
        return TabularModel(
            P=jnp.asarray(P, dtype),
            R=jnp.asarray(R, dtype),
            d0=jnp.asarray(d0, dtype),
            terminal=jnp.asarray(terminal),
        )

    def optimal_returns(self, horizon: int) -> jax.Array:
        """``[N]``: the best expected undiscounted return from d0 within ``horizon`` steps.

        Finite-horizon hard value iteration, V_0 = 0, V_h = max_a (R + P V_{h−1}), returns
        d0 · V_horizon; jitted and vmapped over tasks.
        """
        m = self.tabular_model()
        return tabular.expected_returns(m.P, m.R, m.d0, horizon)

    def policy_returns(self, pi: jax.Array, horizon: int) -> jax.Array:
        """``[N]``: expected undiscounted return of policies ``pi`` (``[N,S,A]`` or a shared
        ``[S,A]``, probabilities) within ``horizon`` steps."""
        m = self.tabular_model()
        return tabular.expected_returns(m.P, m.R, m.d0, horizon, pi=pi)


# ----------------------------------------------------------------------------- study designs

CORRIDOR = """
#########
#S......#
#######.#
#.......#
#.#######
#.......#
#########
"""
# Cells of the corridor in path order from the start (row, col), for placing the goals.
CORRIDOR_PATH = (
    [(1, c) for c in range(1, 8)]
    + [(2, 7)]
    + [(3, c) for c in range(7, 0, -1)]
    + [(4, 1)]
    + [(5, c) for c in range(1, 8)]
)


def two_rooms_design(num_tasks: int = 8) -> GridWorld:
    """Two rooms joined by a doorway, goals spread over both rooms, random starts.

    The grid-world study runs it with episodes of 50 steps.
    """
    return GridWorld("two_rooms", goals=goals_for_tasks("two_rooms", num_tasks))


def goals_for_tasks(layout: str | Layout, num_tasks: int) -> list[tuple[int, int]]:
    """``spread_goals`` for ``num_tasks`` tasks, with errors that name ``num_tasks``."""
    try:
        return spread_goals(layout, int(num_tasks))
    except ValueError as error:
        if not str(error).startswith("num_goals"):
            raise
        raise ValueError(f"`num_tasks`{str(error)[len('num_goals') :]}") from None


def corridor_design(num_tasks: int = 8) -> GridWorld:
    """A winding one-cell corridor, the start at one end, goals at growing distances along it.

    Tasks share the way forward and differ in difficulty: a distilled policy that has learned
    "go forward" is what the far tasks can exploit. The study runs it with 60-step episodes.
    """
    if not 1 <= int(num_tasks) <= len(CORRIDOR_PATH) - 4:
        raise ValueError(f"num_tasks must be in [1, {len(CORRIDOR_PATH) - 4}], got {num_tasks!r}")
    picks = np.linspace(4, len(CORRIDOR_PATH) - 1, int(num_tasks)).round().astype(int)
    return GridWorld(CORRIDOR, goals=[CORRIDOR_PATH[k] for k in picks])
