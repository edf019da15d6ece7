"""Host simulators called from inside compiled programs: one ordered callback per call site.

A family whose simulator lives outside JAX (a C++ pool of environments, say) is still written
like every family, for ONE environment of ONE task (``envs.base``), and the trainer still
``vmap``s it over environments, tasks, runs and evaluation modes. Two things stand in the way
of a plain ``jax.experimental.io_callback`` there:

  * an *ordered* ``io_callback`` cannot be ``vmap``-ed at all, and an unordered one is
    ``vmap``-ed into a sequential ``lax.map``: one host call per environment, where a pool wants
    the whole batch at once (it steps its environments in parallel threads);
  * an unordered callback may be reordered with other host calls, and one whose outputs are
    unused may be dropped: a simulator whose state lives on the host must see every step,
    once, in program order.

``host_call`` gives both. Under ``jit``, ``lax.scan`` and any stack of ``vmap``s it is exactly
one ordered ``io_callback`` per execution of its call site, which receives the whole batch: a
``custom_vmap`` rule turns each ``vmap`` into one more leading axis of the arguments (outermost
``vmap`` first) instead of a loop. Calls happen in program order, each once per execution of
the compiled program (never at trace or compile time; a recompiled program calls again only
when it runs), and are never dropped, even when their results are unused.

What it cannot do: be differentiated (nothing flows back through a simulator), or run on more
than one device (JAX orders host effects on one device only: a family built on it refuses a
mesh before compiling).
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
      callback: a host function ``args -> results`` on numpy arrays. Each leaf it receives
        has the leading batch axes ``B`` (one per enclosing ``vmap``, outermost first; none
        outside any ``vmap``) followed by the leaf's own shape; every leaf of ``args`` has all
        of ``B``, broadcast where a ``vmap`` did not map it. It returns ``results`` with the
        same leading axes ``B`` on every leaf, then ``result_shape``'s.
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

    def host(*leaves):
        results = callback(jax.tree_util.tree_unflatten(treedef, [np.asarray(x) for x in leaves]))
        want, got = jax.tree_util.tree_flatten(shapes), jax.tree_util.tree_flatten(results)
        if want[1] != got[1]:
            raise ValueError(f"host callback {callback!r} returned {got[1]}, expected {want[1]}")
        out = []
        for spec, value in zip(want[0], got[0], strict=True):
            value = np.asarray(value, dtype=spec.dtype)
            if value.shape != tuple(spec.shape):
                raise ValueError(
                    f"host callback {callback!r} returned shape {value.shape}, expected "
                    f"{tuple(spec.shape)} (the batch axes, then the result's own)"
                )
            out.append(value)
        return jax.tree_util.tree_unflatten(want[1], out)

    return host
