"""Checkpoints of training runs (Orbax), resumed exactly, and trained policies loaded from them.

A checkpoint directory holds one run (``train(..., checkpoint_dir=...)``): one Orbax step folder
per save, named by the environment steps done, each with three Orbax items and a checksum file::

    <checkpoint_dir>/<env_steps>/state      the TrainState of every vmapped run (arrays, sharded
                                            as they were on the devices that saved them)
    <checkpoint_dir>/<env_steps>/host       what the host loop needs to continue identically:
                                            the evaluation key, counters, the metrics history
    <checkpoint_dir>/<env_steps>/run        what the run is: its TrainConfig, task family, number
                                            of runs and hyperparameters (checked on resume)
    <checkpoint_dir>/<env_steps>/checksums.json   SHA-256 of every file above

Orbax writes each step into a temporary folder and renames it when complete, so a save cut short
(a killed process) is never mistaken for a checkpoint. It does not detect a file damaged after
the fact (a flipped bit decodes to other numbers), hence the checksums: a mismatch is an error
naming the file. A step whose checksums were not yet written when the process died is complete
by Orbax's rename and is loaded unverified.

``load_policy`` gives the trained policies back without the trainer.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from distral_jax import acting, cli
from distral_jax.acting import PolicyParams
from distral_jax.configs import Hyperparams, TrainConfig, reset_fields_a_preset_fixes
from distral_jax.envs.base import TaskFamily
from distral_jax.learners.base import Metrics
from distral_jax.trainer import Trainer, TrainState, runs_hparams

FORMAT = 1
CHECKSUMS = "checksums.json"
# Config fields a resumed run may change: its budget (to extend a run) and the checkpointing.
RESUMABLE_FIELDS = ("total_env_steps", "checkpoint_every", "keep_checkpoints")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: another run's, damaged, or missing."""


# ----------------------------------------------------------------------------- what a run is


def run_signature(
    env: TaskFamily, config: TrainConfig, num_runs: int, hparams: Hyperparams
) -> dict[str, Any]:
    """What identifies a run: a resumed run must match its checkpoint in all of it.

    Args:
      env: the task family: its type, sizes, task parameters and attributes count.
      config: the run's configuration.
      num_runs: vmapped runs.
      hparams: traced hyperparameters ``[num_runs]``.
    """
    leaves, _ = jax.tree_util.tree_flatten_with_path(env.tasks())
    tasks = {jax.tree_util.keystr(path).lstrip(".") or "tasks": leaf for path, leaf in leaves}
    signature = {
        "format": FORMAT,
        "family": {
            "type": f"{type(env).__module__}.{type(env).__qualname__}",
            "num_tasks": int(env.num_tasks),
            "observation_size": int(env.observation_size),
            "action_size": int(env.action_size),
            "discrete": bool(env.discrete),
            "task_parameters": describe(tasks),
            "attributes": describe(env),
        },
        "num_runs": int(num_runs),
        "config": cli.to_dict(config),
        "hparams": {k: np.asarray(v).tolist() for k, v in dataclasses.asdict(hparams).items()},
    }
    return json.loads(json.dumps(signature))  # the form it has when read back


def describe(value: Any, depth: int = 0) -> Any:
    """Plain data that identifies an object: numbers, strings, arrays as dtype, shape and a
    digest, and the public attributes of this package's objects (a grid world's layout, a
    point mass's constants; nested up to three levels). Other objects are named by their type
    (and a Brax environment's backend); callables (reward functions) and private attributes
    (caches) are left out."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        array = np.asarray(value)
        digest = hashlib.sha256(array.tobytes()).hexdigest()[:16]
        return f"{array.dtype}{list(array.shape)} sha256:{digest}"
    if isinstance(value, (tuple, list)):
        return [describe(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): describe(v, depth + 1) for k, v in sorted(value.items(), key=str)}
    if (
        depth < 3
        and type(value).__module__.startswith("distral_jax")
        and hasattr(value, "__dict__")
    ):
        return {
            name: describe(v, depth + 1)
            for name, v in sorted(vars(value).items())
            if not name.startswith("_") and not callable(v)
        }
    name = f"<{type(value).__module__}.{type(value).__qualname__}>"
    backend = getattr(value, "backend", None)  # a Brax environment's physics
    return f"{name} backend={backend}" if isinstance(backend, str) else name


def signature_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"config.variant: 'a3c' in the checkpoint, 'distral_klent_2col' now"`` for each field
    that differs, ignoring ``RESUMABLE_FIELDS``."""
    ignored = {f"config.{name}" for name in RESUMABLE_FIELDS}
    flat_saved, flat_current = _flatten(saved), _flatten(current)
    out = []
    for name in sorted(set(flat_saved) | set(flat_current)):
        if name in ignored:
            continue
        a, b = flat_saved.get(name, "<absent>"), flat_current.get(name, "<absent>")
        if a != b:
            out.append(f"{name}: {a!r} in the checkpoint, {b!r} now")
    return out


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: tree}


# ----------------------------------------------------------------------------- host state


@dataclasses.dataclass
class HostState:
    """What the host loop carries between jitted calls (saved with every checkpoint).

    Attributes:
      env_steps: environment steps done (all tasks and environments of one run).
      calls: jitted ``run`` calls done.
      eval_key: the evaluation PRNG key, ``[2]`` uint32.
      train_time_s: seconds spent in ``run`` calls (for the steps-per-second figures).
      history: ``(env_steps, metrics)`` of every evaluation, as given to ``progress_fn``.
    """

    env_steps: int
    calls: int
    eval_key: np.ndarray
    train_time_s: float
    history: list[tuple[int, Metrics]]

    def to_json(self) -> dict[str, Any]:
        return {
            "env_steps": self.env_steps,
            "calls": self.calls,
            "eval_key": np.asarray(self.eval_key).tolist(),
            "train_time_s": self.train_time_s,
            "history": [[step, encode_metrics(m)] for step, m in self.history],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostState:
        return cls(
            env_steps=int(data["env_steps"]),
            calls=int(data["calls"]),
            eval_key=np.asarray(data["eval_key"], np.uint32),
            train_time_s=float(data["train_time_s"]),
            history=[(int(step), decode_metrics(m)) for step, m in data["history"]],
        )


def encode_metrics(metrics: Metrics) -> dict[str, Any]:
    """Metrics as JSON that decodes bit for bit: arrays as base64 bytes with dtype and shape."""
    out: dict[str, Any] = {}
    for name, value in metrics.items():
        if isinstance(value, (bool, int)) and not isinstance(value, np.generic):
            out[name] = value
        elif isinstance(value, float) and not isinstance(value, np.generic):
            out[name] = {"float": repr(value)}  # repr round-trips, NaN and inf included
        else:
            array = np.asarray(value)
            out[name] = {
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "scalar": isinstance(value, np.generic),  # np.float32(...) vs a 0-d array
                "data": base64.b64encode(array.tobytes()).decode("ascii"),
            }
    return out


def decode_metrics(data: dict[str, Any]) -> Metrics:
    """The inverse of ``encode_metrics``."""
    out: Metrics = {}
    for name, value in data.items():
        if not isinstance(value, dict):
            out[name] = value
        elif "float" in value:
            out[name] = float(value["float"])
        else:
            raw = base64.b64decode(value["data"])
            array = np.frombuffer(raw, np.dtype(value["dtype"])).reshape(value["shape"]).copy()
            out[name] = array[()] if value.get("scalar") else array
    return out


# ----------------------------------------------------------------------------- the directory


class RunCheckpoints:
    """One run's checkpoint directory: Orbax's manager plus the run's signature and checksums.

    Local or shared file systems (a multi-host job needs one that every host sees).

    Args:
      directory: the folder (created here unless ``read_only``); a file there is an error.
      keep: how many steps to keep (older ones are deleted after a newer save completes).
      read_only: open an existing directory without saving or deleting anything.
    """

    def __init__(self, directory: str | os.PathLike, keep: int = 3, read_only: bool = False):
        if not str(directory).strip():
            raise CheckpointError("`checkpoint_dir` is empty; give a folder name")
        self.directory = Path(directory).expanduser().absolute()
        if self.directory.exists() and not self.directory.is_dir():
            raise CheckpointError(f"`checkpoint_dir` {str(self.directory)!r} is a file")
        if read_only and not self.directory.is_dir():
            raise CheckpointError(f"`checkpoint_dir` {str(self.directory)!r} does not exist")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None if read_only else keep,
            save_interval_steps=0 if read_only else 1,
            create=not read_only,
            read_only=read_only,
            cleanup_tmp_directories=not read_only,
        )
        # Orbax logs "Given directory is read only" at WARNING level for every read-only
        # manager, i.e. on every load_policy and resume check: it is what was asked for.
        absl_logger = logging.getLogger("absl")
        level = absl_logger.level
        if read_only:
            absl_logger.setLevel(logging.ERROR)
        try:
            self._manager = ocp.CheckpointManager(
                self.directory, options=options, item_names=("state", "host", "run")
            )
        finally:
            absl_logger.setLevel(level)
        self._pending: int | None = None  # a step saved asynchronously, not yet checksummed
        self._verified: set[tuple[int, str | None]] = set()

    def latest_step(self) -> int | None:
        """The newest complete step, ``None`` for an empty or absent directory."""
        return self._manager.latest_step()

    def read_run(self, step: int) -> dict[str, Any]:
        """The ``run`` item (the run's signature) of a step; only its files are verified here,
        the whole step when it is restored."""
        self.verify(step, item="run")
        restored = self._restore(step, ocp.args.Composite(run=ocp.args.JsonRestore()))
        return restored.run

    def check_run(self, signature: dict[str, Any], final_step: int | None = None) -> int | None:
        """The step to resume from, after checking that the checkpoint is of this run.

        ``final_step``: where this run ends (``TrainConfig.final_env_step``); a checkpoint past
        it is refused, one at it is a finished run (``train`` then trains no further).

        Raises:
          CheckpointError: the directory holds a checkpoint of another run (each differing
            field named) or a damaged one.
        """
        step = self.latest_step()
        if step is None:
            return None
        saved = self.read_run(step)
        # A run saved with a preset and, say, a c_kl it ignored resumes as the run it was.
        saved["config"] = reset_fields_a_preset_fixes(saved["config"])[0]
        differences = signature_differences(saved, signature)
        if differences:
            raise CheckpointError(
                f"`checkpoint_dir` {str(self.directory)!r} holds a checkpoint of a different run "
                f"(step {step}): " + "; ".join(differences) + ". Use another directory, or "
                "delete this one to start over."
            )
        budget = signature["config"]["total_env_steps"]
        if final_step is not None and step > final_step:
            raise CheckpointError(
                f"`checkpoint_dir` {str(self.directory)!r} holds this run at env step {step}, "
                f"past total_env_steps={budget} (which ends at {final_step}): raise "
                f"total_env_steps to at least {step}, or load the result with load_policy"
            )
        return step

    def restore(self, step: int, like: Any) -> tuple[TrainState, HostState]:
        """The state and the host state saved at ``step``.

        Args:
          step: a saved step.
          like: arrays or ``jax.ShapeDtypeStruct`` with shardings, the structure of the state:
            the restored arrays have their shapes, types and placement (a checkpoint written on
            one placement restores onto another); leaves that are ``ocp.PLACEHOLDER`` are not
            read (and stay placeholders).
        """
        self.verify(step)
        target = jax.tree_util.tree_map(
            lambda a: (
                a
                if a is ocp.PLACEHOLDER
                else jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding)
            ),
            like,
        )
        leaves = jax.tree_util.tree_leaves(target)
        if any(a is ocp.PLACEHOLDER for a in leaves):
            # Orbax's standard handler reads every leaf; its PyTree handler skips placeholders
            # (the files are the same).
            restore_args = jax.tree_util.tree_map(
                lambda a: (
                    a
                    if a is ocp.PLACEHOLDER
                    else ocp.ArrayRestoreArgs(
                        sharding=a.sharding, global_shape=a.shape, dtype=a.dtype
                    )
                ),
                target,
            )
            state_args = ocp.args.PyTreeRestore(item=target, restore_args=restore_args)
        else:
            state_args = ocp.args.StandardRestore(target)
        restored = self._restore(
            step, ocp.args.Composite(state=state_args, host=ocp.args.JsonRestore())
        )
        return restored.state, HostState.from_json(restored.host)

    def save(self, state: TrainState, host: HostState, signature: dict[str, Any]) -> None:
        """Starts saving ``state`` at ``host.env_steps``; the files are written in the background.

        The state is copied off the devices before this returns, so the caller may donate its
        buffers to the next jitted call.
        """
        self.wait_until_finished()
        self._manager.save(
            host.env_steps,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                host=ocp.args.JsonSave(host.to_json()),
                run=ocp.args.JsonSave(signature),
            ),
        )
        self._pending = host.env_steps

    def has_step(self, step: int) -> bool:
        return step in self._manager.all_steps()

    def close(self) -> None:
        """Waits for the last save, checksums it and releases the manager."""
        self.wait_until_finished()
        self._manager.close()

    def poll(self) -> None:
        """Checksums the last save if it has reached the disk; never blocks on it.

        Called between jitted calls, so that a step is checksummed soon after it is complete
        rather than at the next save.
        """
        if self._pending is not None and not self._manager.is_saving_in_progress():
            self.wait_until_finished()

    def wait_until_finished(self) -> None:
        """Blocks until the last save is on disk, then writes its checksums."""
        self._manager.wait_until_finished()
        if self._pending is not None and jax.process_index() == 0:
            step_dir = self.directory / str(self._pending)
            if step_dir.is_dir():  # not already deleted by max_to_keep
                sums = {str(f.relative_to(step_dir)): _sha256(f) for f in _files(step_dir)}
                tmp = step_dir / f".{CHECKSUMS}.tmp"
                tmp.write_text(json.dumps(sums, indent=1, sort_keys=True))
                os.replace(tmp, step_dir / CHECKSUMS)
        self._pending = None

    def verify(self, step: int, item: str | None = None) -> None:
        """Checks the files of a step (of one of its items, if given) against its checksums.

        Raises:
          CheckpointError: a file is missing or differs, named with its path.
        """
        if (step, None) in self._verified or (step, item) in self._verified:
            return
        step_dir = self.directory / str(step)
        manifest = step_dir / CHECKSUMS
        if not manifest.is_file():
            return  # saved, but the process ended before checksumming: complete, unverified
        try:
            sums = json.loads(manifest.read_text())
        except (OSError, ValueError) as error:
            raise CheckpointError(f"checkpoint file {manifest} is damaged: {error}") from None
        for name, expected in sums.items():
            if item is not None and not name.startswith(f"{item}/"):
                continue
            path = step_dir / name
            if not path.is_file():
                raise CheckpointError(f"checkpoint file {path} is missing")
            if _sha256(path) != expected:
                raise CheckpointError(
                    f"checkpoint file {path} is damaged (its SHA-256 differs from the one "
                    f"recorded when it was saved). Delete {step_dir} to resume from an earlier "
                    "step."
                )
        self._verified.add((step, item))

    def _restore(self, step: int, args: ocp.args.Composite) -> Any:
        try:
            return self._manager.restore(step, args=args)
        except Exception as error:  # noqa: BLE001 (Orbax and TensorStore raise many types)
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} cannot be read: "
                f"{type(error).__name__}: {error}"
            ) from error


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != CHECKSUMS)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resume_step(
    checkpoint_dir: str | os.PathLike,
    env: TaskFamily,
    config: TrainConfig,
    num_runs: int = 1,
    hparams: Hyperparams | None = None,
) -> int | None:
    """The step ``train`` with these arguments would resume from (``None``: a fresh run).

    Lets a launcher decide what to do with its output folder before training starts.

    Raises:
      CheckpointError: the directory holds another run's checkpoint (what differs is named),
        or one past the end of this run (``config.final_env_step``), or a damaged one. A
        finished run returns its final step.
    """
    exists = Path(checkpoint_dir).expanduser().is_dir()
    if jax.process_count() > 1:
        # Every process must take the same branch: opening an orbax manager synchronises the
        # processes, and a process that looks after another has started training (and made
        # the folder) would open one the others never open. Process 0's answer decides.
        from jax.experimental import multihost_utils  # noqa: PLC0415

        exists = bool(multihost_utils.broadcast_one_to_all(np.asarray(exists)))
    if not exists:
        return None
    hparams = runs_hparams(config, hparams, num_runs)
    checkpoints = RunCheckpoints(checkpoint_dir, read_only=True)
    try:
        signature = run_signature(env, config, num_runs, hparams)
        return checkpoints.check_run(signature, config.final_env_step(env.num_tasks))
    finally:
        checkpoints.close()


# ----------------------------------------------------------------------------- policies


def load_policy(
    checkpoint_dir: str | os.PathLike, env: TaskFamily, step: int | None = None
) -> tuple[Callable[..., acting.Policy], PolicyParams]:
    """The trained policies of a checkpoint, ready to act; no trainer state is kept.

    Args:
      checkpoint_dir: a directory written by ``train(..., checkpoint_dir=...)``.
      env: the task family the run trained on (checked against the checkpoint).
      step: which saved step (default: the latest).
    Returns:
      ``(make_policy, policy_params)`` as ``train`` returns them: ``make_policy(policy_params,
      deterministic=False, prior=False, task=None)`` gives ``policy(obs, key) -> action``;
      ``policy_params`` has a leading run axis when the run vmapped several.
    Raises:
      CheckpointError: no checkpoint there, one of another family, or a damaged one.
    """
    checkpoints = RunCheckpoints(checkpoint_dir, read_only=True)
    try:
        return _load_policy(checkpoints, env, step)
    finally:
        checkpoints.close()


def _load_policy(
    checkpoints: RunCheckpoints, env: TaskFamily, step: int | None
) -> tuple[Callable[..., acting.Policy], PolicyParams]:
    where = str(checkpoints.directory)
    if step is None:
        step = checkpoints.latest_step()
        if step is None:
            raise CheckpointError(f"`checkpoint_dir` {where!r} holds no checkpoint")
    elif not checkpoints.has_step(step):
        raise CheckpointError(f"`step` {step} is not in {where!r}")
    saved = checkpoints.read_run(step)
    if saved.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint format {saved.get('format')!r}; this version reads 1")
    try:
        config = cli.from_dict(TrainConfig, saved["config"], f"checkpoint {where}")
    except ValueError as error:  # written by a version with other config fields
        raise CheckpointError(str(error)) from None
    num_runs = saved["num_runs"]
    hparams = Hyperparams(**{k: np.asarray(v, np.float32) for k, v in saved["hparams"].items()})
    family = run_signature(env, config, num_runs, hparams)["family"]
    differences = signature_differences({"family": saved["family"]}, {"family": family})
    if differences:
        raise CheckpointError(
            f"`env` is not the family the checkpoint in {where!r} trained on: "
            + "; ".join(differences)
        )
    trainer = Trainer(env, config)
    keys = jax.random.split(jax.random.PRNGKey(config.seed), num_runs)
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    like = jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
        jax.eval_shape(jax.vmap(trainer.init), keys, hparams),
    )
    # Only what acting reads is read from disk: the optimiser, the environments and the
    # learner's state (SAC's replay: N × capacity transitions) are skipped.
    skip = lambda tree: jax.tree_util.tree_map(lambda _: ocp.PLACEHOLDER, tree)
    like = like.replace(
        opt_state=skip(like.opt_state),
        learner_state=skip(like.learner_state),
        env_state=skip(like.env_state),
        core_state=skip(like.core_state),
    )
    state, _ = checkpoints.restore(step, like)
    policy_params = state.policy_params
    if num_runs == 1:
        policy_params = jax.tree_util.tree_map(lambda x: x[0], policy_params)
    return functools.partial(acting.make_policy, trainer.networks), policy_params
