"""Command lines and config files generated from the configuration dataclasses.

Every field of ``TrainConfig`` (and of a family's options) becomes a flag through ``tyro``, with
the field's docstring as its help: no hand-kept argument list can drift from the dataclasses.
A run's resolved configuration is saved as YAML (or JSON) and read back by ``--config FILE``;
flags given after it override what it holds::

    launch = cli.parse(Launch, sys.argv[1:])       # flags, or --config run.yaml plus flags
    cli.save(run_dir / "config.yaml", launch)

``parse`` turns every mistake (an unknown family, a value of the wrong type, a config file with
keys this version does not know, a value a config rejects) into a one-paragraph message and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import types
import typing
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union

import jax
import tyro

from distral_jax import sharding
from distral_jax.configs import TrainConfig, reset_fields_a_preset_fixes
from distral_jax.envs import registry
from distral_jax.envs.base import TaskFamily

T = TypeVar("T")
CONFIG_VERSION = 1


# ----------------------------------------------------------------------------- family options


@dataclasses.dataclass(frozen=True)
class GridWorldOptions:
    """A grid world (``envs.gridworld.GridWorld``): one goal cell per task."""

    name: ClassVar[str] = "gridworld"
    layout: str = "two_rooms"
    """a shipped map: two_rooms or four_rooms"""
    num_tasks: int = 4
    """tasks; their goals are spread over the map's rooms"""
    goal_reward: float = 1.0
    """reward for entering the goal"""
    step_reward: float = -0.01
    """reward of every other step"""
    slip: float = 0.0
    """probability that a uniformly random action replaces the chosen one"""
    obs: Literal["onehot", "coords"] = "onehot"
    """one-hot of the cell, or its (row, column) scaled to [0, 1]"""

    def build(self) -> TaskFamily:
        from distral_jax.envs.gridworld import goals_for_tasks  # noqa: PLC0415

        return registry.make_family(
            self.name,
            layout=self.layout,
            goals=goals_for_tasks(self.layout, self.num_tasks),
            goal_reward=self.goal_reward,
            step_reward=self.step_reward,
            slip=self.slip,
            obs=self.obs,
        )


@dataclasses.dataclass(frozen=True)
class _ArgumentOptions:
    """Options whose fields are the registered family's keyword arguments, by the same names;
    a field left at None is not passed (the family's own default applies)."""

    name: ClassVar[str] = ""

    def build(self) -> TaskFamily:
        arguments = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        given = {key: value for key, value in arguments.items() if value is not None}
        return registry.make_family(self.name, **given)


@dataclasses.dataclass(frozen=True)
class _DesignOptions(_ArgumentOptions):
    """A grid-world study design: a registered family whose one option is ``num_tasks``."""

    num_tasks: int = 8


@dataclasses.dataclass(frozen=True)
class TwoRoomsOptions(_DesignOptions):
    """The grid-world study's two-room design (episodes of 50 steps in the study)."""

    name: ClassVar[str] = "two_rooms"
    num_tasks: int = 8
    """tasks; goals spread over both rooms"""


@dataclasses.dataclass(frozen=True)
class CorridorOptions(_DesignOptions):
    """The grid-world study's corridor design (episodes of 60 steps in the study)."""

    name: ClassVar[str] = "corridor"
    num_tasks: int = 8
    """tasks; goals at growing distances along the corridor"""


@dataclasses.dataclass(frozen=True)
class BanditOptions:
    """A one-state bandit; task i pays ``rewards[i * num_actions + a]`` for action a."""

    name: ClassVar[str] = "bandit"
    rewards: tuple[float, ...] = (1.0, 0.0, 0.5, 0.0, 0.1, 0.05)
    """the reward table, task by task"""
    num_actions: int = 3
    """arms per task"""

    def build(self) -> TaskFamily:
        if self.num_actions < 1 or len(self.rewards) % self.num_actions:
            raise ValueError(
                f"`rewards` must hold num_tasks x num_actions values with num_actions="
                f"{self.num_actions}, got {len(self.rewards)} values"
            )
        table = [
            list(self.rewards[i : i + self.num_actions])
            for i in range(0, len(self.rewards), self.num_actions)
        ]
        return registry.make_family(self.name, rewards=table)


@dataclasses.dataclass(frozen=True)
class CueRecallOptions(_ArgumentOptions):
    """Cue recall: answer a cue seen ``delay`` steps earlier (needs a recurrent core)."""

    name: ClassVar[str] = "cue_recall"
    num_tasks: int = 2
    """task i answers cue c with action (c + i) mod num_cues"""
    num_cues: int = 2
    """cues and actions"""
    delay: int = 2
    """blank steps between the cue and the decision"""


@dataclasses.dataclass(frozen=True)
class PointMassOptions(_ArgumentOptions):
    """The point mass going round a wall to one of several goals (pure JAX)."""

    name: ClassVar[str] = "point_mass"
    num_tasks: int = 4
    """goals on the arc beyond the wall"""
    ctrl_cost: float = 0.01
    """cost of the squared force"""
    success_bonus: float = 0.0
    """reward for arriving"""


@dataclasses.dataclass(frozen=True)
class BraxOptions(_ArgumentOptions):
    """A Brax task family."""

    name: ClassVar[str] = ""
    num_tasks: int = 4
    """tasks drawn from the family's default task set"""
    backend: str | None = None
    """Brax backend (default: the family's, spring)"""
    task_seed: int | None = None
    """draw the tasks from the family's distribution with this seed (default: evenly spread)"""


@dataclasses.dataclass(frozen=True)
class HalfcheetahVelOptions(BraxOptions):
    """halfcheetah running at target speeds (Brax)."""

    name: ClassVar[str] = "halfcheetah_vel"


@dataclasses.dataclass(frozen=True)
class AntDirOptions(BraxOptions):
    """ant running in target directions (Brax)."""

    name: ClassVar[str] = "ant_dir"


@dataclasses.dataclass(frozen=True)
class AntGoalOptions(BraxOptions):
    """ant reaching goal positions (Brax)."""

    name: ClassVar[str] = "ant_goal"
    definition: Literal["circle", "pearl"] = "circle"
    """circle: goals on a circle, L2 distance; pearl: PEARL's ant-goal (disk, L1)"""


@dataclasses.dataclass(frozen=True)
class HalfcheetahMassOptions(BraxOptions):
    """halfcheetah with scaled masses and frictions (Brax)."""

    name: ClassVar[str] = "halfcheetah_mass"


@dataclasses.dataclass(frozen=True)
class XLandMiniGridOptions(_ArgumentOptions):
    """XLand-MiniGrid: partially observed grid worlds; a task is a generated ruleset."""

    name: ClassVar[str] = "xland_minigrid"
    env_id: str = "XLand-MiniGrid-R1-9x9"
    """an xminigrid environment id (XLand-* ids: rulesets; MiniGrid-* ids: fixed levels)"""
    num_tasks: int = 4
    """rulesets (or levels) drawn by the seeded generator"""
    task_seed: int = 0
    """seed of the ruleset generator"""
    num_rules: int = 0
    """production rules chained before each goal"""
    num_distractors: int = 2
    """objects placed that the goal does not need"""
    max_steps: int | None = None
    """the environment's time limit (default: xminigrid's); match --episode-length to it"""


@dataclasses.dataclass(frozen=True)
class GymnaxOptions(_ArgumentOptions):
    """gymnax classic control; tasks differ in a physical parameter (pole length, gravity...)."""

    name: ClassVar[str] = "gymnax"
    env_id: str = "CartPole-v1"
    """CartPole-v1, Pendulum-v1, Acrobot-v1, MountainCar-v0 or MountainCarContinuous-v0"""
    num_tasks: int = 4
    """tasks spread over the environment's default parameter range"""
    task_seed: int | None = None
    """draw the parameters at random with this seed (default: evenly spread)"""


@dataclasses.dataclass(frozen=True)
class _HostOptions(_ArgumentOptions):
    """Options every EnvPool family shares."""

    simulator_seed: int | None = None
    """the simulators' seeds (this + task index); default: drawn from the run's PRNG keys"""
    num_threads: int | None = None
    """EnvPool threads per task (default: its environments, at most the CPU count)"""


@dataclasses.dataclass(frozen=True)
class _MetaWorldOptions(_HostOptions):
    task_id_in_obs: bool = True
    """append the task's one-hot index to the observation (the MT protocol)"""


@dataclasses.dataclass(frozen=True)
class MetaWorldOptions(_MetaWorldOptions):
    """Meta-World v3 tasks of your choice (EnvPool's C++ port): 500-step episodes, success."""

    name: ClassVar[str] = "metaworld"
    tasks: tuple[str, ...] = ("reach-v3",)
    """v3 task names (reach-v3, push-v3, pick-place-v3, ...)"""


@dataclasses.dataclass(frozen=True)
class MetaWorldMT10Options(_MetaWorldOptions):
    """Meta-World MT10 (EnvPool's C++ port): ten manipulation tasks, 500-step episodes."""

    name: ClassVar[str] = "metaworld_mt10"


@dataclasses.dataclass(frozen=True)
class MetaWorldMT50Options(_MetaWorldOptions):
    """Meta-World MT50 (EnvPool's C++ port): all fifty v3 tasks, 500-step episodes."""

    name: ClassVar[str] = "metaworld_mt50"


@dataclasses.dataclass(frozen=True)
class _DMCOptions(_HostOptions):
    task_id_in_obs: bool = False
    """append the task's one-hot index to the observation"""


@dataclasses.dataclass(frozen=True)
class DMCWalkerOptions(_DMCOptions):
    """DeepMind Control walker: stand, walk, run (EnvPool's C++ port, 1000-step episodes)."""

    name: ClassVar[str] = "dmc_walker"
    tasks: tuple[str, ...] | None = None
    """a subset of stand, walk, run (default: all)"""


@dataclasses.dataclass(frozen=True)
class DMCCheetahOptions(_DMCOptions):
    """DeepMind Control cheetah running at target speeds (EnvPool's C++ port)."""

    name: ClassVar[str] = "dmc_cheetah"
    speeds: tuple[float, ...] = (2.5, 5.0, 7.5, 10.0)
    """target speeds in (0, 10] m/s"""


@dataclasses.dataclass(frozen=True)
class DMCFingerOptions(_DMCOptions):
    """DeepMind Control finger: spin, turn_easy, turn_hard (EnvPool's C++ port)."""

    name: ClassVar[str] = "dmc_finger"
    tasks: tuple[str, ...] | None = None
    """a subset of spin, turn_easy, turn_hard (default: all)"""


@dataclasses.dataclass(frozen=True)
class DMCCartpoleOptions(_DMCOptions):
    """DeepMind Control cart-pole: balance and swing-up, dense and sparse (EnvPool's C++)."""

    name: ClassVar[str] = "dmc_cartpole"
    tasks: tuple[str, ...] | None = None
    """a subset of balance, balance_sparse, swingup, swingup_sparse (default: all)"""


FAMILY_OPTIONS: dict[str, type] = {
    cls.name: cls
    for cls in (
        GridWorldOptions,
        TwoRoomsOptions,
        CorridorOptions,
        BanditOptions,
        CueRecallOptions,
        PointMassOptions,
        HalfcheetahVelOptions,
        AntDirOptions,
        AntGoalOptions,
        HalfcheetahMassOptions,
        XLandMiniGridOptions,
        GymnaxOptions,
        MetaWorldOptions,
        MetaWorldMT10Options,
        MetaWorldMT50Options,
        DMCWalkerOptions,
        DMCCheetahOptions,
        DMCFingerOptions,
        DMCCartpoleOptions,
    )
}
assert set(FAMILY_OPTIONS) == set(registry.FAMILIES), "every registered family has options"


def _family_union():
    return Union[  # noqa: UP007 (tyro reads the Annotated members of this Union)
        tuple(Annotated[cls, tyro.conf.subcommand(name)] for name, cls in FAMILY_OPTIONS.items())
    ]


FamilyOptions = _family_union()


def register_family(options: type[T]) -> type[T]:
    """Makes a family of your own launchable by ``experiments/train.py`` (a class decorator).

    ``options`` is a frozen dataclass like the ones above: a ``name: ClassVar[str]`` (the
    subcommand), fields that become flags (their docstrings the help), and ``build() ->
    TaskFamily``. Put it in a module and launch with ``--imports that_module`` (the module is
    imported before the command line is read; a run's saved config remembers it)::

        @cli.register_family
        @dataclasses.dataclass(frozen=True)
        class MyFamilyOptions:
            name: ClassVar[str] = "my_family"
            num_tasks: int = 4
            \"\"\"tasks\"\"\"

            def build(self) -> TaskFamily:
                return MyFamily(self.num_tasks)

    Raises:
      ValueError: not a dataclass with a string ``name`` and a ``build`` method, or a name
        another options class already has.
    """
    name = getattr(options, "name", None)
    if not dataclasses.is_dataclass(options) or not isinstance(name, str) or not name:
        raise ValueError(
            f"`options` must be a dataclass with a `name: ClassVar[str]`, got {options!r}"
        )
    if not callable(getattr(options, "build", None)):
        raise ValueError(f"`options` {options.__name__} needs a build() -> TaskFamily method")
    if FAMILY_OPTIONS.get(name, options) is not options:
        raise ValueError(
            f"`options`: the family name {name!r} is taken by {FAMILY_OPTIONS[name].__name__}"
        )
    global FamilyOptions
    FAMILY_OPTIONS[name] = options
    FamilyOptions = _family_union()
    return options


def import_family_modules(argv: Sequence[str]) -> list[str]:
    """Imports the modules a command line names with ``--imports`` (or its ``--config`` file
    lists under ``imports``), so that the families they register are known before it is
    parsed; the current directory is importable. Returns the module names."""
    import importlib  # noqa: PLC0415

    argv = list(argv)
    names: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--imports":
            for value in argv[i + 1 :]:
                if value.startswith("--"):
                    break
                names.append(value)
        elif arg.startswith("--imports="):
            names.append(arg.split("=", 1)[1])
    _, config_path = _pop_config(argv)
    if config_path is not None and Path(config_path).is_file():
        try:
            names += list(_read(Path(config_path)).get("imports") or [])
        except (OSError, ValueError):
            pass  # ``parse`` reports an unreadable file
    if names and "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ValueError(f"--imports: cannot import {name!r}: {error}") from None
    return names


# ----------------------------------------------------------------------------- the launcher


DEFAULT_COMPILATION_CACHE = "~/.cache/distral_jax/xla"


@dataclasses.dataclass(frozen=True)
class Persistence:
    """What survives a launch: checkpoints to resume from, and compiled programs."""

    checkpoint_dir: str | None = None
    """save checkpoints here (TrainConfig.checkpoint_every); rerun the same command to resume"""
    compilation_cache: bool = True
    """reuse compiled programs across launches (JAX's persistent cache, in
    $JAX_COMPILATION_CACHE_DIR or ~/.cache/distral_jax/xla)"""

    def apply(self) -> None:
        """Turns JAX's persistent compilation cache on (unless ``compilation_cache`` is off)."""
        if self.compilation_cache:
            enable_compilation_cache()


@dataclasses.dataclass(frozen=True)
class StudySize:
    """Which of a study's sizes runs (``--tiny``, ``--small`` or ``--profile NAME``)."""

    small: bool = False
    """the CPU profile (about ten minutes on 2 cores): same as --profile small"""
    tiny: bool = False
    """a smoke test: same as --profile tiny"""
    profile: Literal["tiny", "small", "full"] | None = None
    """sizes and budget (default: full, or small/tiny with their flags)"""

    def __post_init__(self):
        if sum([self.small, self.tiny, self.profile is not None]) > 1:
            raise ValueError("choose one of --small, --tiny and --profile")

    @property
    def name(self) -> str:
        return self.profile or ("small" if self.small else "tiny" if self.tiny else "full")

    def resolve(self, profiles: dict[str, dict], **given: Any) -> tuple[str, dict]:
        """The chosen profile's name and settings, with the ``given`` values that are set (not
        empty or 0) in place of the profile's."""
        settings = dict(profiles[self.name])
        settings.update({key: value for key, value in given.items() if value})
        return self.name, settings


def chosen_profile(
    argv: Sequence[str], choices: Sequence[str], shortcuts: Sequence[str]
) -> str | None:
    """The profile a study's command line names: ``--profile NAME`` or a shortcut flag
    (``--small``: the profile ``small``); ``None`` where it names none.

    For studies whose profile sets the defaults of their other flags, so that it is read before
    ``parse``. Exits with status 2 where a ``--config`` file is given too (it holds its own
    defaults) or where the flags name different profiles.
    """
    prog = Path(sys.argv[0]).name
    pre = argparse.ArgumentParser(add_help=False)
    for shortcut in shortcuts:
        pre.add_argument(f"--{shortcut}", action="store_true")
    pre.add_argument("--profile", default=None, choices=sorted(choices))
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(list(argv))
    chosen = [shortcut for shortcut in shortcuts if getattr(known, shortcut)]
    if known.profile:
        chosen.append(known.profile)
    if known.config is not None and chosen:
        flags = [f"--{shortcut}" for shortcut in shortcuts]
        print(
            f"{prog}: error: {', '.join(flags)} and --profile choose defaults; a --config file "
            "holds its own: give one or the other",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if len(set(chosen)) > 1:
        print(f"{prog}: error: choose one profile, got {chosen}", file=sys.stderr)
        raise SystemExit(2)
    return chosen[0] if chosen else None


def check_shared_train(train: TrainConfig, episode_length: str | None = None) -> None:
    """Refuses what a study sets per run in the ``train`` config its runs share: the variant
    (``--variants`` chooses them) and, where ``episode_length`` says why, the episode length.

    Raises:
      ValueError: ``--variant`` or ``--episode-length`` was changed from TrainConfig's default.
    """
    if train.variant != TrainConfig.variant:
        raise ValueError("--variant is set per run: choose the variants with --variants")
    if episode_length is not None and train.episode_length != TrainConfig.episode_length:
        raise ValueError(f"--episode-length {episode_length}")


def config_table(
    base: TrainConfig, fields: Sequence[str], rows: dict[str, Sequence[Any]]
) -> dict[str, TrainConfig]:
    """``base`` with each row's values in ``fields``, row by row: a study's profiles written as
    one table, so that their sizes read side by side (and no profile can miss a field).

    Raises:
      ValueError: a row does not hold one value per field.
    """
    return {name: base.replace(**dict(zip(fields, row, strict=True))) for name, row in rows.items()}


@dataclasses.dataclass(frozen=True)
class Devices:
    """Which devices a run uses: one (default), a mesh of this host's, or several hosts'."""

    mesh: str = ""
    """split runs and tasks over devices: 'tasks=8', 'runs=2,tasks=4' (the sizes' product is
    the job's device count); empty: one device"""
    distributed: bool = False
    """multi-host: call jax.distributed.initialize() first (every host runs the same command;
    SLURM, Open MPI and Cloud TPU are detected, else give the three options below)"""
    coordinator_address: str | None = None
    """host:port of process 0, for --distributed without a detected cluster"""
    num_processes: int | None = None
    """processes in the job, for --distributed without a detected cluster"""
    process_id: int | None = None
    """this process's rank, for --distributed without a detected cluster"""

    def initialize(self):
        """Starts the multi-host runtime if asked, then builds the mesh (``None``: one device)."""
        if self.distributed:
            jax.distributed.initialize(
                coordinator_address=self.coordinator_address,
                num_processes=self.num_processes,
                process_id=self.process_id,
            )
        return sharding.make_mesh(self.mesh)


def enable_compilation_cache(directory: str | None = None) -> Path:
    """Points JAX's persistent compilation cache at ``directory`` and returns it.

    Default: ``$JAX_COMPILATION_CACHE_DIR`` if set, else ``~/.cache/distral_jax/xla``. A relaunch
    then loads the programs it compiled before instead of compiling them again.
    """
    directory = (
        directory or os.environ.get("JAX_COMPILATION_CACHE_DIR") or (DEFAULT_COMPILATION_CACHE)
    )
    path = Path(directory).expanduser()
    jax.config.update("jax_compilation_cache_dir", str(path))
    return path


@dataclasses.dataclass(frozen=True)
class Launch:
    """Train one task family with one configuration; results under ``<runs_dir>/<name>/``."""

    family: Annotated[FamilyOptions, tyro.conf.OmitSubcommandPrefixes]
    """the task family and its options"""
    train: Annotated[TrainConfig, tyro.conf.OmitArgPrefixes] = TrainConfig()
    """the training configuration"""
    name: str = ""
    """run folder name (default: <family>_<variant>_<learner>)"""
    runs_dir: str = "runs"
    """parent folder of the run folders"""
    num_runs: int = 1
    """independent seeds vmapped in one program"""
    tensorboard: bool = True
    """write TensorBoard event files into the run folder"""
    wandb: bool = False
    """also log to Weights & Biases (needs the wandb package)"""
    wandb_project: str = "distral_jax"
    """the W&B project"""
    quiet: bool = False
    """no progress bar or per-evaluation lines"""
    persistence: Annotated[Persistence, tyro.conf.OmitArgPrefixes] = Persistence()
    """checkpoints and the compilation cache"""
    devices: Annotated[Devices, tyro.conf.OmitArgPrefixes] = Devices()
    """one device, a mesh, several hosts"""
    imports: tuple[str, ...] = ()
    """modules to import first: those that register families of your own (cli.register_family)"""

    @property
    def run_name(self) -> str:
        return self.name or f"{self.family.name}_{self.train.variant}_{self.train.learner}"


# ----------------------------------------------------------------------------- files


def to_dict(obj: Any) -> Any:
    """A config dataclass as plain data (family options carry their ``name``)."""
    if dataclasses.is_dataclass(obj):
        out: dict[str, Any] = {}
        if type(obj) in FAMILY_OPTIONS.values():
            out["name"] = type(obj).name
        for field in dataclasses.fields(obj):
            out[field.name] = to_dict(getattr(obj, field.name))
        return out
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    return obj


def save(path: str | Path, config: Any) -> None:
    """Writes a config as YAML (``.yaml``/``.yml``) or JSON (anything else)."""
    path = Path(path)
    data = {"version": CONFIG_VERSION, **to_dict(config)}
    if path.suffix in (".yaml", ".yml"):
        import yaml  # noqa: PLC0415

        path.write_text(yaml.safe_dump(data, sort_keys=False))
    else:
        path.write_text(json.dumps(data, indent=1))


def load(path: str | Path, cls: type[T]) -> T:
    """Reads a config written by ``save`` (or by hand) into ``cls``.

    Raises:
      ValueError: the file is missing or unreadable, or holds keys ``cls`` does not have (a
        config of another version), each named with the keys this version knows.
    """
    path = Path(path)
    data = _read(path)
    version = data.pop("version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        raise ValueError(
            f"--config {path}: written by config version {version}; this version reads "
            f"{CONFIG_VERSION}"
        )
    return from_dict(cls, data, f"--config {path}")


def _read(path: Path) -> dict:
    """A config file's mapping (YAML or JSON); ValueError naming the file otherwise."""
    if not path.is_file():
        raise ValueError(f"--config: no such file {str(path)!r}")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml  # noqa: PLC0415

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as error:  # noqa: BLE001 (any parse error becomes one message)
        raise ValueError(f"--config {path}: cannot be parsed: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping, got {type(data).__name__}")
    return data


def from_dict(tp: Any, data: Any, where: str) -> Any:
    """Plain data (``to_dict``'s, or a file's) -> ``tp``, each value checked against its type.

    Raises:
      ValueError: unknown keys or values of the wrong type, named after ``where``.
    """
    tp = _strip_annotated(tp)
    if _is_union(tp):
        members = [_strip_annotated(m) for m in typing.get_args(tp)]
        families = [m for m in members if m in FAMILY_OPTIONS.values()]
        if families:
            if not isinstance(data, dict) or data.get("name") not in FAMILY_OPTIONS:
                got = data.get("name") if isinstance(data, dict) else data
                raise ValueError(
                    f"{where}: unknown family {got!r}; allowed names: {sorted(FAMILY_OPTIONS)}"
                )
            data = dict(data)
            return from_dict(FAMILY_OPTIONS[data.pop("name")], data, where)
        if data is None and type(None) in members:
            return None
        others = [m for m in members if m is not type(None)]
        return _coerce(others[0], data, where) if len(others) == 1 else data
    if dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a mapping for {tp.__name__}, got {data!r}")
        hints = typing.get_type_hints(tp, include_extras=True)
        fields = {f.name for f in dataclasses.fields(tp)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {unknown} for {tp.__name__} (a config of another "
                f"version?); known keys: {sorted(fields)}"
            )
        kwargs = {k: from_dict(hints[k], v, f"{where}: {k}") for k, v in data.items()}
        if tp is TrainConfig:  # after each value is checked: a bad one is still named
            kwargs, reset = reset_fields_a_preset_fixes(kwargs)
            if reset:
                warnings.warn(
                    f"{where}: {reset} reset to their defaults: variant={kwargs['variant']!r} "
                    "fixes them, and a run of that variant trained as if they were",
                    stacklevel=2,
                )
        return tp(**kwargs)
    return _coerce(tp, data, where)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """A leaf value read from a file, checked against (and converted to) its annotated type."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ValueError(f"{where}: must be one of {list(allowed)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return tuple(_coerce(args[0], v, where) for v in value) if args else tuple(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp in (int, float):
        if isinstance(value, bool):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        try:
            number = tp(value)  # YAML reads 3e-4 as a string
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}") from None
        if tp is int and isinstance(value, float) and number != value:
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return number
    if tp is str and not isinstance(value, str):
        raise ValueError(f"{where}: expected a string, got {value!r}")
    return value


def _strip_annotated(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


# ----------------------------------------------------------------------------- parsing


def parse(cls: type[T], argv: Sequence[str] | None = None, default: T | None = None) -> T:
    """Flags (and ``--config FILE``) -> a validated ``cls``; mistakes exit with status 2.

    Args:
      cls: the dataclass to fill (``Launch`` or a study's own).
      argv: the arguments (default ``sys.argv[1:]``).
      default: defaults to start from; a ``--config`` file replaces them.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = Path(sys.argv[0]).name
    try:
        argv, config_path = _pop_config(argv)
        if config_path is not None:
            default = load(config_path, cls)
        description = (cls.__doc__ or "").strip() + (
            "\n\n--config FILE loads a saved config (YAML or JSON); flags after it override it."
        )
        return tyro.cli(
            cls,
            args=argv,
            default=default,
            prog=prog,
            description=description,
            config=(tyro.conf.CascadeSubcommandArgs,),
        )
    except (ValueError, TypeError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _pop_config(argv: list[str]) -> tuple[list[str], str | None]:
    for i, arg in enumerate(argv):
        if arg == "--config":
            if i + 1 >= len(argv):
                raise ValueError("--config: expected a file name")
            return argv[:i] + argv[i + 2 :], argv[i + 1]
        if arg.startswith("--config="):
            return argv[:i] + argv[i + 1 :], arg.split("=", 1)[1]
    return argv, None
