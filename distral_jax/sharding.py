"""Where a run's state lives on a device mesh: which axes of which leaves are split.

The trainer's state for ``R`` vmapped runs has a leading run axis on every leaf, and the
per-task leaves (θ_i, the per-task values, their optimiser moments, environment states, task
parameters) have the task axis ``N`` next. A ``jax.sharding.Mesh`` whose axis names are
``"runs"`` and/or ``"tasks"`` splits those two axes::

    leaf                         shape            PartitionSpec
    θ_i, values, Adam moments    [R, N, ...]      ("runs", "tasks")
    environment states, tasks    [R, N, E, ...]   ("runs", "tasks")
    θ_0, observation statistics  [R, ...]         ("runs",)          replicated over "tasks"
    keys, hyperparameters        [R, ...]         ("runs",)

Everything else is XLA's: the programs are compiled with these shardings (``jax.jit``'s
``in_shardings``/``out_shardings``) and the sums over tasks that θ_0's gradient and the global
gradient clipping need become its collectives. Metrics come back replicated, so that every
process of a multi-host job can read them.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

RUNS = "runs"
TASKS = "tasks"
AXES = (RUNS, TASKS)


def check_mesh(mesh: Any, num_runs: int, num_tasks: int) -> None:
    """Named errors for a mesh the trainer cannot use; ``None`` (one device) is always fine.

    Raises:
      TypeError: ``mesh`` is not a ``jax.sharding.Mesh``.
      ValueError: an axis name other than ``"runs"``/``"tasks"``, or an axis whose size does not
        divide the number of runs or tasks.
    """
    if mesh is None:
        return
    if not isinstance(mesh, Mesh):
        raise TypeError(f"`mesh` must be a jax.sharding.Mesh or None, got {type(mesh).__name__}")
    unknown = [name for name in mesh.axis_names if name not in AXES]
    if unknown or not mesh.axis_names:
        raise ValueError(
            f"`mesh` axis names must be 'runs' and/or 'tasks', got {tuple(mesh.axis_names)}"
        )
    for axis, count, what in ((RUNS, num_runs, "num_runs"), (TASKS, num_tasks, "num_tasks")):
        size = mesh.shape.get(axis, 1)
        if count % size:
            raise ValueError(
                f"`mesh` axis {axis!r} has {size} devices, which does not divide "
                f"{what}={count}; choose a mesh whose {axis!r} size divides {count}"
            )


def make_mesh(spec: str) -> Mesh | None:
    """A mesh from a command-line spec: ``"tasks=8"``, ``"runs=2,tasks=4"``; ``""``: ``None``.

    The sizes' product must be the number of devices of the job (all processes together).

    Raises:
      ValueError: a malformed spec, an axis name other than runs/tasks, or a size that does not
        match the devices.
    """
    spec = spec.strip()
    if not spec:
        return None
    axes: dict[str, int] = {}
    for part in spec.split(","):
        name, _, size = part.partition("=")
        name = name.strip()
        if name not in AXES or name in axes or not size.strip().isdigit() or int(size) < 1:
            raise ValueError(
                f"`mesh` {spec!r}: expected comma-separated runs=<size> and/or tasks=<size>, "
                "e.g. 'tasks=8' or 'runs=2,tasks=4'"
            )
        axes[name] = int(size)
    count = len(jax.devices())
    wanted = 1
    for size in axes.values():
        wanted *= size
    if wanted != count:
        raise ValueError(
            f"`mesh` {spec!r} needs {wanted} devices; this job has {count} "
            f"({jax.devices()[0].platform}, {jax.process_count()} process(es))"
        )
    sizes = tuple(axes.values())
    return jax.make_mesh(sizes, tuple(axes), axis_types=(AxisType.Auto,) * len(sizes))


def auto_axes(mesh: Mesh) -> Mesh:
    """The same devices and names with every axis in ``Auto`` mode.

    The trainer places its state with explicit shardings and leaves the rest to XLA's
    propagation; a mesh in ``Explicit`` mode (``jax.make_mesh``'s default) would instead make
    every vmapped operation check that its operands agree.
    """
    if all(t == AxisType.Auto for t in mesh.axis_types):
        return mesh
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * mesh.devices.ndim)


def leaf_sharding(mesh: Mesh, per_task: bool) -> NamedSharding:
    """The sharding of a state leaf ``[R, ...]`` (``[R, N, ...]`` when ``per_task``)."""
    runs = RUNS if RUNS in mesh.axis_names else None
    tasks = TASKS if per_task and TASKS in mesh.axis_names else None
    return NamedSharding(mesh, PartitionSpec(runs, tasks) if per_task else PartitionSpec(runs))


def tree_sharding(mesh: Mesh, tree: Any, per_task: bool) -> Any:
    """``leaf_sharding`` for every leaf of ``tree``."""
    sharding = leaf_sharding(mesh, per_task)
    return jax.tree_util.tree_map(lambda _: sharding, tree)


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole value (the programs' metrics)."""
    return NamedSharding(mesh, PartitionSpec())
