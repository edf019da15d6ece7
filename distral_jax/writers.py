"""Metric writers: JSON lines, TensorBoard and Weights & Biases behind ``progress_fn``.

The trainer does no I/O: it calls ``progress_fn(env_steps, metrics)`` after every evaluation.
These writers are such callables; ``progress_writer`` bundles several into one::

    with progress_writer(JsonlWriter(run / "metrics.jsonl"), TensorBoardWriter(run)) as write:
        train(env, config, progress_fn=write)

Metrics are the trainer's: scalars, per-task arrays ``[N]`` and, for several vmapped runs,
``[runs, N]``. JSON lines keep them whole (arrays as lists); TensorBoard and W&B get scalars:
an array is written element by element under ``<name>/task_<i>`` (``<name>/run_<r>/task_<i>``
for several vmapped runs), with its task mean under ``<name>/mean`` unless the trainer reports
one (``..._mean``).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from distral_jax.analysis import jsonable


class Writer(Protocol):
    def __call__(self, step: int, metrics: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


def scalars(metrics: Mapping[str, Any], num_runs: int = 1) -> dict[str, float]:
    """Flattens metrics to named scalars.

    With one run, arrays are per task: ``name/task_i``, plus their task mean ``name/mean``
    where the metrics hold none (``name_mean``). With ``num_runs > 1`` the first axis of every
    array is the run: ``name/run_r`` and ``name/run_r/task_i``.
    """
    out: dict[str, float] = {}
    for name, value in metrics.items():
        array = np.asarray(value)
        if array.dtype.kind not in "fiub" or array.ndim > 2:
            continue
        if array.ndim == 0:
            out[name] = float(array)
        elif num_runs > 1:
            for r, row in enumerate(array):
                if np.ndim(row) == 0:
                    out[f"{name}/run_{r}"] = float(row)
                else:
                    for i, v in enumerate(row):
                        out[f"{name}/run_{r}/task_{i}"] = float(v)
        elif array.ndim == 1:
            for i, v in enumerate(array):
                out[f"{name}/task_{i}"] = float(v)
            if f"{name}_mean" not in metrics and np.isfinite(array).any():
                out[f"{name}/mean"] = float(np.nanmean(array))
    return out


class JsonlWriter:
    """One JSON object per call in ``path``: ``{"step": ..., "<metric>": value or list}``.

    Each line is flushed when written. Appends to an existing file, unless ``rewrite``: a
    resumed ``train`` replays every saved evaluation first, so its file is written anew.
    """

    def __init__(self, path: str | Path, rewrite: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w" if rewrite else "a", encoding="utf-8")

    def __call__(self, step: int, metrics: Mapping[str, Any]) -> None:
        record = {"step": int(step)}
        record.update({name: jsonable(value) for name, value in metrics.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorBoardWriter:
    """TensorBoard event files in ``logdir`` (``tensorboard --logdir <parent>`` shows them).

    ``rewrite``: hide the events already in ``logdir`` (TensorBoard's purge from step 0), for a
    resumed ``train`` that replays every saved evaluation.
    """

    def __init__(self, logdir: str | Path, num_runs: int = 1, rewrite: bool = False):
        from tensorboardX import SummaryWriter  # noqa: PLC0415 (optional at import time)

        self.logdir = Path(logdir)
        self.num_runs = num_runs
        purge_step = 0 if rewrite else None
        self._writer = SummaryWriter(logdir=str(self.logdir), purge_step=purge_step)

    def __call__(self, step: int, metrics: Mapping[str, Any]) -> None:
        for tag, value in scalars(metrics, self.num_runs).items():
            if math.isfinite(value):
                self._writer.add_scalar(tag, value, global_step=int(step))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class WandbWriter:
    """Weights & Biases: scalars logged at each step of a run started here.

    Raises:
      ImportError: ``wandb`` is not installed (``pip install wandb``).
    """

    def __init__(self, project: str, name: str, config: Mapping[str, Any], num_runs: int = 1):
        self.num_runs = num_runs
        try:
            import wandb  # noqa: PLC0415
        except ImportError as error:
            raise ImportError("--wandb needs the wandb package: pip install wandb") from error
        self._run = wandb.init(project=project, name=name, config=dict(config))

    def __call__(self, step: int, metrics: Mapping[str, Any]) -> None:
        self._run.log(scalars(metrics, self.num_runs), step=int(step))

    def close(self) -> None:
        self._run.finish()


@contextlib.contextmanager
def progress_writer(*writers: Writer) -> Iterator[Callable[[int, Mapping[str, Any]], None]]:
    """One ``progress_fn`` that calls every writer; closes them all on exit."""

    def write(step: int, metrics: Mapping[str, Any]) -> None:
        for writer in writers:
            writer(step, metrics)

    try:
        yield write
    finally:
        for writer in writers:
            writer.close()
