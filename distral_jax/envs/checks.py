"""The task-family contract, checked once where a trainer is built.

``check_family`` traces ``reset`` and ``step`` of one task with ``jax.eval_shape`` (no
compilation, no simulation) and turns a broken contract into an error that names the family,
the method and the field, instead of a shape error deep inside ``jit``, ``vmap`` or ``scan``.
"""

from __future__ import annotations

import contextlib
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from distral_jax.envs.base import TaskFamily


class FamilyError(ValueError):
    """A task family breaks the ``TaskFamily`` contract."""


# Families that passed: a family checked at construction is not traced again by the trainer.
_PASSED: weakref.WeakSet = weakref.WeakSet()


def check_family(env: TaskFamily) -> None:
    """Checks the contract of ``env`` on its first task; raises ``FamilyError`` on a breach.

    Checked: ``num_tasks``, ``observation_size`` and ``action_size`` are positive integers;
    every leaf of ``tasks()`` is an array with leading axis ``num_tasks``; ``reset`` and
    ``step`` return observations of shape ``observation_shape`` (whose size is
    ``observation_size``), a scalar reward and a scalar
    ``done``, and the same state structure (every leaf of the same shape and dtype, ``reward``
    and ``done`` aside: the time-limit wrapper casts those to float32).
    """
    with contextlib.suppress(TypeError):  # an unhashable family is checked every time
        if env in _PASSED:
            return
    name = type(env.unwrapped).__name__

    def fail(method: str, field: str, message: str):
        raise FamilyError(f"{name}.{method}: `{field}` {message}")

    for field in ("num_tasks", "observation_size", "action_size"):
        value = getattr(env, field)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            fail(field, field, f"must be a positive integer, got {value!r}")
    num_tasks = int(env.num_tasks)

    tasks = env.tasks()
    leaves = jax.tree_util.tree_leaves_with_path(tasks)
    if not leaves:
        fail("tasks", "tasks()", "holds no arrays")
    for path, leaf in leaves:
        shape = np.shape(leaf)
        if not shape or shape[0] != num_tasks or not hasattr(leaf, "dtype"):
            fail(
                "tasks",
                f"tasks(){jax.tree_util.keystr(path)}",
                f"must be an array with leading axis num_tasks={num_tasks}, got "
                f"{type(leaf).__name__} of shape {shape} (stack the tasks' parameters with "
                "jnp.asarray, do not return a Python list)",
            )
    task = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[0], tasks)

    state = jax.eval_shape(env.reset, jax.random.PRNGKey(0), task)
    shape = _observation_shape(fail, env)
    _check_state(fail, "reset", env, state, shape)
    if env.discrete:
        action = jax.ShapeDtypeStruct((), jnp.int32)
    else:
        action = jax.ShapeDtypeStruct((env.action_size,), jnp.float32)
    stepped = jax.eval_shape(env.step, state, action, task)
    _check_state(fail, "step", env, stepped, shape)

    before = _leaf_specs(state)
    after = _leaf_specs(stepped)
    if set(before) != set(after):
        missing = sorted(set(before) - set(after))
        added = sorted(set(after) - set(before))
        fail("step", "state", f"changes structure: missing {missing}, added {added} after step")
    for key, spec in before.items():
        if key in (".reward", ".done"):
            continue
        if after[key] != spec:
            fail("step", f"state{key}", f"is {after[key]} after step but {spec} after reset")
    with contextlib.suppress(TypeError):
        _PASSED.add(env)


def _observation_shape(fail, env: TaskFamily) -> tuple[int, ...]:
    shape = tuple(int(d) for d in env.observation_shape)
    if len(shape) not in (1, 3) or int(np.prod(shape)) != int(env.observation_size):
        fail(
            "observation_shape",
            "observation_shape",
            f"must be (observation_size,) or (H, W, C) with H*W*C = observation_size="
            f"{env.observation_size}, got {shape}",
        )
    vocabulary = env.observation_vocabulary
    if vocabulary is not None and (len(shape) != 3 or int(vocabulary) < 1):
        fail(
            "observation_vocabulary",
            "observation_vocabulary",
            f"must be None or a positive integer for (H, W, C) observations, got {vocabulary!r} "
            f"with observation_shape {shape}",
        )
    return shape


def _declared(env: TaskFamily, shape: tuple[int, ...]) -> str:
    """What the family declared about its observations, in the attribute it set: a family that
    only sets ``observation_size`` is told about ``observation_size``."""
    own_shape = type(env.unwrapped).observation_shape is not TaskFamily.observation_shape
    if own_shape or len(shape) != 1:
        return f"observation_shape says {shape}"
    return f"observation_size says {shape[0]}"


def _check_state(fail, method: str, env: TaskFamily, state, shape: tuple[int, ...]) -> None:
    for field in ("obs", "reward", "done"):
        if not hasattr(state, field):
            fail(method, field, "is missing: return a distral_jax.envs.base.State")
    if tuple(state.obs.shape) != shape:
        fail(method, "obs", f"has shape {tuple(state.obs.shape)} but {_declared(env, shape)}")
    for field in ("reward", "done"):
        value = getattr(state, field)
        if tuple(value.shape) != ():
            fail(method, field, f"must be a scalar, got shape {tuple(value.shape)}")
        if not (jnp.issubdtype(value.dtype, jnp.number) or value.dtype == jnp.bool_):
            fail(method, field, f"must be numeric, got {value.dtype}")


def _leaf_specs(state) -> dict[str, str]:
    leaves = jax.tree_util.tree_leaves_with_path(state)
    return {jax.tree_util.keystr(path): f"{leaf.dtype}{list(leaf.shape)}" for path, leaf in leaves}
