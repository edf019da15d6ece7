"""Adam with per-task step counts (``learners.optimizer``): optax's Adam for tasks in the
objective, fresh Adam for a task that enters late, nothing for a task that is out."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from distral_jax.learners.optimizer import scale_by_task_adam
from distral_jax.networks import DistralParams

N = 3


def _params(stacked: bool = True) -> DistralParams:
    lead = (N,) if stacked else ()
    return DistralParams(
        prior={"w": jnp.zeros((4, 2)), "b": jnp.zeros((2,))},
        task={"w": jnp.zeros(lead + (4, 2))},
        value={"b": jnp.zeros(lead + (1,))},
    )


def _grads(step: int, stacked: bool = True) -> DistralParams:
    key = jax.random.PRNGKey(step)
    leaves, treedef = jax.tree_util.tree_flatten(_params(stacked))
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [jax.random.normal(k, x.shape) * (1 + step % 3) for k, x in zip(keys, leaves, strict=True)]
    )


@pytest.mark.parametrize("stacked", [True, False])
def test_every_task_in_the_objective_is_optax_adam(stacked):
    """Equal to optax's Adam up to float rounding (one ulp: XLA may divide by a count per task
    as a multiplication by its reciprocal)."""
    ours, reference = scale_by_task_adam(stacked), optax.scale_by_adam()
    params = _params(stacked)
    state, ref_state = ours.init(params), reference.init(params)
    for step in range(5):
        g = _grads(step, stacked)
        weights = None if step % 2 else jnp.ones(N)
        u, state = jax.jit(ours.update)(g, state, params, task_weights=weights)
        v, ref_state = jax.jit(reference.update)(g, ref_state, params)
        for x, y in zip(jax.tree_util.tree_leaves(u), jax.tree_util.tree_leaves(v), strict=True):
            np.testing.assert_allclose(x, y, rtol=2e-7, atol=0)


def test_a_task_entering_late_takes_the_steps_of_a_fresh_adam():
    """Task 2 is out for the first 7 updates, then in: from its first step on, its updates
    equal those of a new optax Adam fed its gradients; while out it takes none. θ_0 and the
    other tasks keep the counts of the whole run."""
    late, entering = 2, 7
    ours = scale_by_task_adam(stacked=True)
    params = _params()
    state = ours.init(params)
    fresh = optax.scale_by_adam()
    fresh_state = fresh.init(jax.tree_util.tree_map(lambda x: x[late], params.task))
    update = jax.jit(ours.update)
    for step in range(20):
        weights = jnp.ones(N).at[late].set(float(step >= entering))
        g = _grads(step)
        # A task out of the objective has no gradient (its losses have weight 0).
        g = g.replace(task=jax.tree_util.tree_map(lambda x: x.at[late].mul(weights[late]), g.task))
        u, state = update(g, state, params, task_weights=weights)
        mine = jax.tree_util.tree_map(lambda x: x[late], u.task)
        if step < entering:
            assert all(np.all(np.asarray(x) == 0) for x in jax.tree_util.tree_leaves(mine))
            continue
        g_late = jax.tree_util.tree_map(lambda x: x[late], g.task)
        want, fresh_state = fresh.update(g_late, fresh_state)
        for x, y in zip(
            jax.tree_util.tree_leaves(mine), jax.tree_util.tree_leaves(want), strict=True
        ):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(state.count.task["w"], [20, 20, 20 - entering])
    np.testing.assert_array_equal(state.count.prior["w"], 20)


def test_no_task_in_the_objective_moves_nothing():
    ours = scale_by_task_adam(stacked=False)
    params = _params(stacked=False)
    state = ours.init(params)
    u, new_state = ours.update(_grads(0, False), state, params, task_weights=jnp.zeros(N))
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree_util.tree_leaves(u))
    for x, y in zip(
        jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(new_state), strict=True
    ):
        np.testing.assert_array_equal(x, y)
