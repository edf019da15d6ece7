"""Host simulators called from inside compiled programs: one ordered callback per call site.

A family whose simulator lives outside JAX (a C++ pool of environments, say) is still written
like every family, for ONE environment of ONE task (``envs.base``), and the trainer still
``vmap``s it over environments, tasks, runs and evaluation modes. A plain
``jax.experimental.io_callback`` does not fit there: an *ordered* one cannot be ``vmap``-ed at
all, and an unordered one is ``vmap``-ed into a sequential ``lax.map``, one host call per
environment, where a pool wants the whole batch at once (it steps its environments in parallel
threads); an unordered one may also run out of program order with other host calls.

``host_call`` gives both. Under ``jit``, ``lax.scan`` and stacked ``vmap``s it is exactly one
ordered ``io_callback`` per execution of its call site, which receives the whole batch: a
``custom_vmap`` rule turns each ``vmap`` into one more leading axis of the arguments (outermost
``vmap`` first) instead of a loop. Calls happen in program order (a token threads them), each
once per execution of the compiled program (never at trace or compile time; a recompiled
program calls again only when it runs), also when their results are unused.

Limits, each JAX's:
  * a ``vmap`` that maps none of the arguments adds no axis (JAX batches a call only through
    its arguments): pass a leaf that every ``vmap`` maps, such as an environment's id, so that
    the host sees one element per environment;
  * inside a ``vmap``-ed ``lax.cond``/``lax.switch``/``lax.while_loop`` (or ``jax.checkpoint``
    under ``grad``) JAX refuses the ordered effect: call it from straight-line code or ``scan``;
  * it cannot be differentiated (nothing flows back through a simulator);
  * on several devices JAX gathers the whole batch to one device for the call: a family built
    on it must refuse a mesh itself, or accept that cost;
  * leaves a ``vmap`` did not map are broadcast to the batch before they go to the host;
  * the callback runs on XLA's thread while Python dispatches ahead: touch the simulator from
    Python only after ``jax.block_until_ready`` of what the program returned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import custom_batching
from jax.experimental import io_callback

PyTree = Any


def host_call(callback: Callable[[PyTree], PyTree], result_shape: PyTree, args: PyTree) -> PyTree:
    """Calls ``callback`` on the host with ``args``, batched over every enclosing ``vmap``.

    Args:
      callback: a host function ``args -> results`` on numpy arrays (read-only). Each leaf it
        receives has the leading batch axes ``B`` (one per enclosing ``vmap`` that maps some
        leaf of ``args``, outermost first; none outside any ``vmap``) followed by the leaf's
        own shape; every leaf has all of ``B``, broadcast where a ``vmap`` did not map it. It
        returns ``results`` of ``result_shape``'s structure, each leaf with the axes ``B`` and
        then its own shape (values are cast to its dtype).
      result_shape: the results of ONE call (no batch axes), a pytree of
        ``jax.ShapeDtypeStruct``.
      args: a pytree of at least one array (of ONE call, as the caller sees it).
    Returns:
      ``results``, shaped as ``result_shape`` (with the batch axes of any enclosing ``vmap``).
    """
    leaves, treedef = jax.tree_util.tree_flatten(args)
    if not leaves:
        raise ValueError("`args` of host_call must hold at least one array (the batch's shape)")
    return _batched(callback, treedef, result_shape, 0)(*leaves)


def _batched(callback, treedef, result_shape, batch_ndim: int):
    """The call on leaves with ``batch_ndim`` leading batch axes: one ordered callback, whose
    ``vmap`` is the same call with one axis more."""

    @custom_batching.custom_vmap
    def call(*leaves):
        batch = jnp.shape(leaves[0])[:batch_ndim]
        shapes = jax.tree_util.tree_map(
            lambda s: jax.ShapeDtypeStruct(batch + tuple(s.shape), s.dtype), result_shape
        )
        host = _checked(callback, treedef, shapes)
        return io_callback(host, shapes, *leaves, ordered=True)

    @call.def_vmap
    def _vmap(axis_size, in_batched, *leaves):
        leaves = [
            x if batched else jnp.broadcast_to(x, (axis_size,) + jnp.shape(x))
            for x, batched in zip(leaves, in_batched, strict=True)
        ]
        out = _batched(callback, treedef, result_shape, batch_ndim + 1)(*leaves)
        return out, jax.tree_util.tree_map(lambda _: True, out)

    return call


def _checked(callback, treedef, shapes):
    """``callback`` on numpy leaves, its results cast to ``shapes``' dtypes and their shapes
    checked (a mismatch names the callback instead of failing inside XLA's runtime)."""

    specs, structure = jax.tree_util.tree_flatten(shapes)  # once, not at every call

    def host(*leaves):
        results = callback(jax.tree_util.tree_unflatten(treedef, [np.asarray(x) for x in leaves]))
        values, got = jax.tree_util.tree_flatten(results)
        if got != structure:
            raise ValueError(f"host callback {callback!r} returned {got}, expected {structure}")
        out = []
        for spec, value in zip(specs, values, strict=True):
            value = np.asarray(value, dtype=spec.dtype)
            if value.shape != tuple(spec.shape):
                raise ValueError(
                    f"host callback {callback!r} returned shape {value.shape}, expected "
                    f"{tuple(spec.shape)} (the batch axes, then the result's own)"
                )
            out.append(value)
        return jax.tree_util.tree_unflatten(structure, out)

    return host
