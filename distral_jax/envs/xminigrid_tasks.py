"""XLand-MiniGrid (``xminigrid``) environments as a task family.

``XLandMiniGridFamily`` wraps one registered ``xminigrid`` environment and turns its per-task
parameters into the family's tasks, so that Distral trains one policy per task over a shared
grid world. Two kinds of environment ids are supported:

  * ``"XLand-MiniGrid-*"`` (e.g. ``"XLand-MiniGrid-R1-9x9"``): a task is a **ruleset**, the
    ``xminigrid.types.RuleSet`` of a goal, production rules and the objects placed at reset,
    stacked over tasks (``goal [N, 5]``, ``rules [N, R, 7]``, ``init_tiles [N, K, 2]``, uint8,
    padded with zeros: xminigrid's empty goal, empty rule and empty tile). The environment
    reads the ruleset from its parameters (``env_params.replace(ruleset=task)``), which is a
    pytree node and so vmaps like any other task parameter. Without internet the rulesets are
    made by ``generate_rulesets`` (seeded, deterministic); with internet one can load the
    published benchmarks instead (see below). The reset key places the objects and the agent
    (and, for the multi-room layouts, the doors), so episodes of one task differ in layout.
  * ``"MiniGrid-*"`` (ports of the MiniGrid suite, e.g. ``"MiniGrid-FourRooms"``): their goal
    and rules are fixed and every field of their ``EnvParams`` is static (``height``,
    ``width``, ``view_size``, ``max_steps``: not pytree nodes, so they cannot differ under
    ``vmap``). What can differ is the **level**: xminigrid draws each level (door positions,
    goal, objects, start pose) from the reset key. Here a task is a level key
    (``MiniGridLevels.level_key [N, key]``) and ``reset`` always builds that task's level, so
    the family is N fixed levels of one game; the reset key is not used. Environments whose
    layout ignores the key (``"MiniGrid-Empty-*"``) give identical tasks, which the family
    reports with a ``UserWarning`` when ``num_tasks > 1``.

Time limit and truncation. xminigrid ends an episode with a ``LAST`` step either when the goal
is reached (discount 0: termination) or when ``step_num == max_steps`` (discount 1: the time
limit). The family's ``done`` is 1.0 only for termination (``discount == 0``); the time limit
is left to ``EpisodeLimit``, which marks it as truncation so that learners bootstrap there.
``episode_length`` is the environment's ``max_steps``: pass it to
``wrap_for_training(family, family.episode_length)`` so that both limits coincide. Keep the
environment's ``max_steps`` (set it with the ``max_steps`` argument, not only with a shorter
``EpisodeLimit``): xminigrid's reward on reaching the goal is ``1 − 0.9 · step / max_steps``.
Stepping the bare family past ``max_steps`` is not meaningful (the reward may turn negative).

Observations are xminigrid's egocentric views, uint8 ``[V, V, 2]`` (tile id, colour id), with
``observation_vocabulary = max(NUM_TILES, NUM_COLORS)``. Actions are int32 scalars in ``[0, 6)``:
forward, turn right, turn left, pick up, put down, toggle. ``metrics["success"]`` is 1.0 on the
step that reaches the goal (for ``MiniGrid-Memory``, also on reaching the wrong end, which
terminates with reward 0: there ``success`` is ``reward > 0``).

Published benchmarks (needs internet: ``load_benchmark`` downloads its file once, into
``~/.xland_minigrid`` or ``$XLAND_MINIGRID_DATA``)::

    import jax, jax.numpy as jnp, xminigrid
    benchmark = xminigrid.load_benchmark("trivial-21k")   # or "small-1m", "medium-1m", ...
    ids = jax.random.choice(jax.random.key(0), benchmark.num_rulesets(), (16,), replace=False)
    rulesets = jax.vmap(benchmark.get_ruleset)(ids)        # a RuleSet with leading axis 16
    family = XLandMiniGridFamily("XLand-MiniGrid-R1-9x9", rulesets=rulesets)

(a list of single ``benchmark.get_ruleset(i)`` works as well). Copy the benchmark file to a
machine without internet and ``xminigrid.benchmarks.load_benchmark_from_path(path)`` reads it.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xminigrid
from flax import struct
from xminigrid.core.constants import NUM_COLORS, NUM_TILES, Colors, Tiles
from xminigrid.rendering.rgb_render import render as rgb_render
from xminigrid.types import RuleSet, TimeStep

from distral_jax.envs.base import PyTree, State, TaskFamily

# Encoding widths of xminigrid 0.9.x (goal id + 4 values, rule id + 6 values, tile + colour).
GOAL_WIDTH = 5
RULE_WIDTH = 7
TILE_WIDTH = 2

# Ids of the goals and rules the generator uses, in xminigrid's encoding (first entry).
_GOAL_IDS = {"hold": 1, "near": 3, "tile_near": 4}
_RULE_IDS = {"hold": 1, "near": 2, "tile_near": 3}
GOAL_KINDS = tuple(_GOAL_IDS)
RULE_KINDS = tuple(_RULE_IDS)

# Objects of generated rulesets: every pickable shape in every colour that stands out against
# the black floor and the grey walls (so rendered pictures show them).
_SHAPES = (Tiles.BALL, Tiles.SQUARE, Tiles.PYRAMID, Tiles.KEY, Tiles.STAR, Tiles.HEX)
_COLOURS = (
    Colors.RED,
    Colors.GREEN,
    Colors.BLUE,
    Colors.PURPLE,
    Colors.YELLOW,
    Colors.WHITE,
    Colors.BROWN,
    Colors.PINK,
    Colors.ORANGE,
)
OBJECTS: tuple[tuple[int, int], ...] = tuple((s, c) for s in _SHAPES for c in _COLOURS)

# id -> name, from the fields of xminigrid's enum-like dataclasses ("yellow", "key", ...).
_TILE_NAMES = {f.default: f.name.lower() for f in dataclasses.fields(Tiles)}
_COLOUR_NAMES = {f.default: f.name.lower() for f in dataclasses.fields(Colors)}
_GOAL_TEXT = {1: "hold {a}", 3: "go next to {a}", 4: "put {a} next to {b}"}
_RULE_TEXT = {
    1: "picking up {a} turns it into {p}",
    2: "standing next to {a} turns it into {p}",
    3: "putting {a} and {b} side by side makes {p}",
}


@struct.dataclass
class MiniGridLevels:
    """Tasks of a ``MiniGrid-*`` family: ``level_key`` ``[key]`` (stacked ``[N, key]``), the
    raw PRNG key from which xminigrid builds the task's level."""

    level_key: jax.Array


def generate_rulesets(
    num_tasks: int,
    seed: int = 0,
    goal_kinds: Sequence[str] = ("hold", "near"),
    num_rules: int = 0,
    num_distractors: int = 2,
) -> RuleSet:
    """``num_tasks`` distinct XLand rulesets, deterministic given ``seed``.

    Each ruleset has one goal of a kind drawn from ``goal_kinds``:

      * ``"hold"``: pick up object ``a`` (checked on the pick-up action);
      * ``"near"``: step forward to stand next to ``a`` (checked on the forward action);
      * ``"tile_near"``: put ``a`` down next to ``b`` (checked on the put-down action).

    Objects are pickable shapes in bright colours (``OBJECTS``). Then ``num_rules`` rules are
    chained backwards from the goal: each replaces one object the task still needs, the most
    recently added, by the inputs of a rule that makes it (hold ``c`` -> it becomes ``a`` in
    the pocket; stand next to ``c`` -> it turns into ``a``; put ``c`` next to ``d`` -> ``a``),
    always with objects unused so far. The objects placed at reset are the ones still needed
    plus ``num_distractors`` unrelated ones, so every ruleset is solvable.

    Returns:
      A ``RuleSet`` with ``goal`` uint8 ``[N, 5]``, ``rules`` uint8 ``[N, max(num_rules, 1),
      7]`` (zero rows are xminigrid's empty rule) and ``init_tiles`` uint8 ``[N, K, 2]`` where
      ``K`` is the largest object count (zero rows are empty tiles, which reset skips).
    Raises:
      ValueError: a bad argument (the message names it), or fewer than ``num_tasks``
        distinct rulesets found.
    """
    num_tasks = _positive_int(num_tasks, "num_tasks")
    num_rules = _non_negative_int(num_rules, "num_rules")
    num_distractors = _non_negative_int(num_distractors, "num_distractors")
    kinds = tuple(goal_kinds) if not isinstance(goal_kinds, str) else (goal_kinds,)
    if not kinds or any(k not in _GOAL_IDS for k in kinds):
        raise ValueError(
            f"goal_kinds must be a non-empty subset of {GOAL_KINDS}, got {goal_kinds!r}"
        )
    # Each rule uses at most two fresh objects and the goal two: keep a margin of free objects.
    if 2 + 2 * num_rules + num_distractors > len(OBJECTS):
        raise ValueError(
            f"num_rules={num_rules} and num_distractors={num_distractors} need more than the "
            f"{len(OBJECTS)} distinct objects: use 2 + 2 * num_rules + num_distractors <= "
            f"{len(OBJECTS)}"
        )
    rng = np.random.default_rng(int(seed))
    seen: set[bytes] = set()
    made: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for _ in range(100 * num_tasks):
        goal, rules, tiles = _draw_ruleset(rng, kinds, num_rules, num_distractors)
        # Two rulesets are the same task if they differ only in the order of the objects.
        order = np.lexsort(tiles.T[::-1])
        signature = goal.tobytes() + rules.tobytes() + tiles[order].tobytes()
        if signature in seen:
            continue
        seen.add(signature)
        made.append((goal, rules, tiles))
        if len(made) == num_tasks:
            break
    else:
        raise ValueError(
            f"num_tasks={num_tasks}: found only {len(made)} distinct rulesets with goal_kinds="
            f"{kinds}, num_rules={num_rules}, num_distractors={num_distractors}"
        )
    return stack_rulesets([RuleSet(goal=g, rules=r, init_tiles=t) for g, r, t in made])


def _draw_ruleset(
    rng: np.random.Generator, kinds: tuple[str, ...], num_rules: int, num_distractors: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random ruleset as host arrays: goal ``[5]``, rules ``[max(R, 1), 7]``, tiles."""
    free = list(rng.permutation(len(OBJECTS)))  # object indices not used yet, in random order

    def fresh() -> tuple[int, int]:
        return OBJECTS[free.pop()]

    kind = kinds[rng.integers(len(kinds))]
    a = fresh()
    if kind == "tile_near":
        b = fresh()
        goal, needed = [_GOAL_IDS[kind], *a, *b], [a, b]
    else:
        goal, needed = [_GOAL_IDS[kind], *a], [a]
    rules = []
    for _ in range(num_rules):
        product = needed.pop()  # chain from the newest object: a sequence of sub-goals
        rule_kind = RULE_KINDS[rng.integers(len(RULE_KINDS))]
        inputs = [fresh()] if rule_kind != "tile_near" else [fresh(), fresh()]
        rules.append([_RULE_IDS[rule_kind], *[v for t in inputs for v in t], *product])
        needed.extend(inputs)
    tiles = needed + [fresh() for _ in range(num_distractors)]
    tiles = [tiles[i] for i in rng.permutation(len(tiles))]
    goal_row = np.zeros(GOAL_WIDTH, np.uint8)
    goal_row[: len(goal)] = goal
    rule_rows = np.zeros((max(num_rules, 1), RULE_WIDTH), np.uint8)
    for i, rule in enumerate(rules):
        rule_rows[i, : len(rule)] = rule
    return goal_row, rule_rows, np.asarray(tiles, np.uint8).reshape(-1, TILE_WIDTH)


def stack_rulesets(rulesets: Sequence[RuleSet]) -> RuleSet:
    """Stacks single rulesets into one with a leading task axis, padding ``rules`` and
    ``init_tiles`` with zero rows (empty rules, empty tiles) to the longest."""
    if len(rulesets) == 0:
        raise ValueError("rulesets must hold at least one RuleSet")
    goals = [np.asarray(r.goal, np.uint8).reshape(GOAL_WIDTH) for r in rulesets]
    rules = [np.asarray(r.rules, np.uint8).reshape(-1, RULE_WIDTH) for r in rulesets]
    tiles = [np.asarray(r.init_tiles, np.uint8).reshape(-1, TILE_WIDTH) for r in rulesets]

    def pad(rows: list[np.ndarray]) -> np.ndarray:
        longest = max(1, max(len(x) for x in rows))
        return np.stack([np.pad(x, ((0, longest - len(x)), (0, 0))) for x in rows])

    return RuleSet(
        goal=jnp.asarray(np.stack(goals)),
        rules=jnp.asarray(pad(rules)),
        init_tiles=jnp.asarray(pad(tiles)),
    )


def describe_ruleset(ruleset: RuleSet) -> str:
    """A one-line English description of one (unstacked) ruleset, for titles and logs."""
    goal = np.asarray(ruleset.goal).reshape(-1).tolist()
    text = _GOAL_TEXT.get(goal[0], "goal #{id}").format(
        id=goal[0], a=_tile_name(goal[1:3]), b=_tile_name(goal[3:5])
    )
    parts = [text]
    for rule in np.asarray(ruleset.rules).reshape(-1, RULE_WIDTH).tolist():
        if rule[0] == 0:
            continue
        two = rule[0] == _RULE_IDS["tile_near"]
        product = rule[5:7] if two else rule[3:5]
        template = _RULE_TEXT.get(rule[0], "rule #{id}")
        parts.append(
            template.format(
                id=rule[0], a=_tile_name(rule[1:3]), b=_tile_name(rule[3:5]), p=_tile_name(product)
            )
        )
    return "; ".join(parts)


def _tile_name(tile: Sequence[int]) -> str:
    shape, colour = int(tile[0]), int(tile[1])
    return f"{_COLOUR_NAMES.get(colour, colour)} {_TILE_NAMES.get(shape, shape)}"


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _non_negative_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _as_stacked_rulesets(rulesets) -> RuleSet:
    """A stacked ``RuleSet`` from a stacked one, a single one, or a sequence of single ones."""
    if isinstance(rulesets, RuleSet):
        goal = np.asarray(rulesets.goal)
        if goal.ndim == 1:  # one ruleset: a family of one task
            return stack_rulesets([rulesets])
        rules, tiles = np.asarray(rulesets.rules), np.asarray(rulesets.init_tiles)
        shapes_ok = (
            goal.ndim == 2
            and goal.shape[1] == GOAL_WIDTH
            and rules.ndim == 3
            and rules.shape[2] == RULE_WIDTH
            and tiles.ndim == 3
            and tiles.shape[2] == TILE_WIDTH
            and goal.shape[0] == rules.shape[0] == tiles.shape[0] >= 1
        )
        if not shapes_ok:
            raise ValueError(
                "rulesets: a stacked RuleSet needs goal [N, 5], rules [N, R, 7] and init_tiles "
                f"[N, K, 2], got {goal.shape}, {rules.shape}, {tiles.shape}"
            )
        return RuleSet(
            goal=jnp.asarray(goal, jnp.uint8),
            rules=jnp.asarray(rules, jnp.uint8),
            init_tiles=jnp.asarray(tiles, jnp.uint8),
        )
    if isinstance(rulesets, Sequence) and all(isinstance(r, RuleSet) for r in rulesets):
        return stack_rulesets(list(rulesets))
    raise ValueError(
        "rulesets must be an xminigrid RuleSet (stacked over tasks, or a single one) or a "
        f"sequence of RuleSets, got {type(rulesets).__name__}"
    )


class XLandMiniGridFamily(TaskFamily):
    """An ``xminigrid`` environment as a task family (see the module docstring).

    Args:
      env_id: a registered id, ``xminigrid.registered_environments()``.
      num_tasks: N. For ``XLand-*`` ids with generated rulesets, default 4; with ``rulesets``
        given it may be left out (it must otherwise match their number). For ``MiniGrid-*``
        ids, the number of levels (default 4).
      task_seed: seed of the generated rulesets, or of the level keys.
      rulesets: ``XLand-*`` ids only: the tasks' rulesets, a ``RuleSet`` stacked over tasks
        (e.g. from ``xminigrid.load_benchmark``), a single ``RuleSet``, or a sequence of them.
      view_size: side V of the agent's square view (odd, at least 3); default: the env's (5 for
        XLand, 7 for most MiniGrid ids).
      max_steps: the environment's time limit; default: the env's (``3 · H · W`` for XLand).
      goal_kinds, num_rules, num_distractors: the ruleset generator's arguments (see
        ``generate_rulesets``); ``XLand-*`` ids without ``rulesets`` only.
    """

    def __init__(
        self,
        env_id: str = "XLand-MiniGrid-R1-9x9",
        num_tasks: int | None = None,
        task_seed: int = 0,
        rulesets: RuleSet | Sequence[RuleSet] | None = None,
        view_size: int | None = None,
        max_steps: int | None = None,
        goal_kinds: Sequence[str] = ("hold", "near"),
        num_rules: int = 0,
        num_distractors: int = 2,
    ):
        known = xminigrid.registered_environments()
        if env_id not in known:
            raise ValueError(f"env_id: unknown id {env_id!r}; registered ids: {', '.join(known)}")
        if isinstance(task_seed, bool) or not isinstance(task_seed, (int, np.integer)):
            raise ValueError(f"task_seed must be an integer, got {task_seed!r}")
        overrides = {}
        if view_size is not None:
            view_size = _positive_int(view_size, "view_size")
            if view_size < 3 or view_size % 2 == 0:
                raise ValueError(f"view_size must be an odd integer >= 3, got {view_size!r}")
            overrides["view_size"] = view_size
        if max_steps is not None:
            overrides["max_steps"] = _positive_int(max_steps, "max_steps")
        if num_tasks is not None:
            num_tasks = _positive_int(num_tasks, "num_tasks")
        self.env_id = env_id
        self.is_xland = env_id.startswith("XLand-MiniGrid")
        self.env, params = xminigrid.make(env_id, **overrides)
        if params.render_mode != "rgb_array":
            params = params.replace(render_mode="rgb_array")
        self.env_params = params
        # Plain values (run signatures of checkpoints describe the family by its attributes).
        self.env_settings = {
            "height": int(params.height),
            "width": int(params.width),
            "view_size": int(params.view_size),
            "max_steps": int(params.max_steps),
        }

        if self.is_xland:
            if rulesets is None:
                self._tasks = generate_rulesets(
                    4 if num_tasks is None else num_tasks,
                    seed=int(task_seed),
                    goal_kinds=goal_kinds,
                    num_rules=num_rules,
                    num_distractors=num_distractors,
                )
            else:
                self._tasks = _as_stacked_rulesets(rulesets)
                given = int(self._tasks.goal.shape[0])
                if num_tasks is not None and num_tasks != given:
                    raise ValueError(
                        f"num_tasks={num_tasks} but rulesets holds {given} rulesets: leave "
                        "num_tasks out or make them agree"
                    )
            self._check_room_for_objects()
        else:
            if rulesets is not None:
                raise ValueError(
                    f"rulesets: only XLand-MiniGrid-* ids take rulesets; {env_id!r} has a fixed "
                    "goal (its tasks are levels, see the module docstring)"
                )
            count = 4 if num_tasks is None else num_tasks
            keys = jax.random.split(jax.random.key(int(task_seed)), count)
            self._tasks = MiniGridLevels(level_key=jax.random.key_data(keys))
            if count > 1:
                self._warn_if_levels_identical()

    # ----------------------------------------------------------------- TaskFamily protocol
    @property
    def num_tasks(self) -> int:
        return int(jax.tree_util.tree_leaves(self._tasks)[0].shape[0])

    @property
    def view_size(self) -> int:
        return int(self.env_params.view_size)

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.env.observation_shape(self.env_params))

    @property
    def observation_size(self) -> int:
        return int(np.prod(self.observation_shape))

    @property
    def observation_vocabulary(self) -> int:
        # Tile ids run to NUM_TILES − 1, colour ids to NUM_COLORS − 1; one table covers both.
        return int(max(NUM_TILES, NUM_COLORS))

    @property
    def action_size(self) -> int:
        return int(self.env.num_actions(self.env_params))

    @property
    def discrete(self) -> bool:
        return True

    @property
    def episode_length(self) -> int:
        """The environment's ``max_steps``: the time limit to give ``wrap_for_training``."""
        return int(self.env_params.max_steps)

    def tasks(self) -> PyTree:
        """``RuleSet`` (XLand ids) or ``MiniGridLevels`` (MiniGrid ids), leading axis N."""
        return self._tasks

    def reset(self, rng: jax.Array, task: PyTree) -> State:
        if self.is_xland:
            if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
                rng = jax.random.key_data(rng)  # raw keys: wrappers select states with where
            timestep = self.env.reset(self.env_params.replace(ruleset=task), rng)
        else:
            timestep = self.env.reset(self.env_params, task.level_key)
        # Strip weak types (xminigrid starts counters from Python scalars): the state must keep
        # one type through scan and the auto-reset's where.
        pipeline_state = jax.tree_util.tree_map(lambda x: x.astype(x.dtype), timestep.state)
        zero = jnp.zeros((), jnp.float32)
        return State(
            pipeline_state=pipeline_state,
            obs=jnp.asarray(timestep.observation, jnp.uint8),
            reward=zero,
            done=zero,
            metrics={"success": zero},
        )

    def step(self, state: State, action: jax.Array, task: PyTree) -> State:
        # The goal and rules travel in the xminigrid state (copied from the ruleset at reset),
        # so the step needs no task parameters.
        old = state.pipeline_state
        previous = TimeStep(
            state=old,
            step_type=jnp.asarray(1, jnp.uint8),
            reward=jnp.zeros((), jnp.float32),
            discount=jnp.ones((), jnp.float32),
            observation=state.obs,
        )
        action = jnp.asarray(action, jnp.int32)
        timestep = self.env.step(self.env_params, previous, action)
        pipeline_state = jax.tree_util.tree_map(
            lambda new, o: new.astype(o.dtype), timestep.state, old
        )
        # Termination only: xminigrid's time limit is also a LAST step, but with discount 1.
        terminated = (timestep.discount == 0).astype(jnp.float32)
        reward = jnp.asarray(timestep.reward, jnp.float32)
        return state.replace(
            pipeline_state=pipeline_state,
            obs=jnp.asarray(timestep.observation, jnp.uint8),
            reward=reward,
            done=terminated,
            metrics={"success": terminated * (reward > 0).astype(jnp.float32)},
        )

    # ----------------------------------------------------------------- helpers
    def describe_task(self, i: int) -> str:
        """Human-readable description of task ``i`` (its goal and rules, or its level)."""
        if not 0 <= int(i) < self.num_tasks:
            raise ValueError(f"i must be a task index in [0, {self.num_tasks}), got {i!r}")
        if self.is_xland:
            return describe_ruleset(jax.tree_util.tree_map(lambda x: x[int(i)], self._tasks))
        return f"{self.env_id} level {int(i)}"

    def render_rgb(
        self, state: State, task: PyTree | None = None, tile_size: int = 32
    ) -> np.ndarray:
        """Picture of ONE environment's state: uint8 ``[H · tile_size, W · tile_size, 3]``.

        Draws the whole grid, the agent and its field of view with xminigrid's renderer.
        Runs on the host (not jittable). ``task`` is accepted for symmetry with ``step`` and
        not needed: the grid holds everything there is to draw.
        """
        grid = np.asarray(state.pipeline_state.grid)
        if grid.ndim != 3:
            raise ValueError(
                f"state: render_rgb draws one environment, got a grid of shape {grid.shape} "
                "(index the batch axes first, e.g. with jax.tree_util.tree_map(lambda x: x[i, j], "
                "state))"
            )
        _positive_int(tile_size, "tile_size")
        agent = jax.tree_util.tree_map(np.asarray, state.pipeline_state.agent)
        # xminigrid's own renderer (what env.render calls), which also takes the tile size.
        image = rgb_render(grid, agent, self.view_size, int(tile_size))
        return np.asarray(image, np.uint8)

    def _check_room_for_objects(self) -> None:
        # xminigrid samples distinct free cells for the objects and the agent; too many objects
        # for the room would silently overlap. Half the interior is a safe bound for every
        # layout (internal walls take far less).
        height, width = self.env_params.height, self.env_params.width
        room = (height - 2) * (width - 2) // 2
        objects = int(self._tasks.init_tiles.shape[1])
        if objects + 1 > room:
            raise ValueError(
                f"rulesets: {objects} objects per ruleset do not fit {self.env_id} (at most "
                f"{room - 1} here)"
            )

    def _warn_if_levels_identical(self) -> None:
        def level(key):
            state = self.env.reset(self.env_params, key).state
            return state.grid, state.agent.position, state.agent.direction

        grids, positions, directions = jax.jit(jax.vmap(level))(self._tasks.level_key)
        same = all(
            bool(np.all(np.asarray(x) == np.asarray(x)[:1])) for x in (grids, positions, directions)
        )
        if same:
            warnings.warn(
                f"{self.env_id} builds the same level from every key: its {self.num_tasks} tasks "
                "are identical (use num_tasks=1, or an XLand-MiniGrid-* id for distinct tasks)",
                UserWarning,
                stacklevel=3,
            )
