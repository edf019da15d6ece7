"""Adam with a step count per task: a task that enters the objective late starts fresh.

``optax.scale_by_adam`` keeps one step count for all parameters. Its bias corrections
1/(1 − b^k) assume every moment has averaged gradients for k steps. A task kept out of the
objective until update k (a curriculum, ``TrainConfig.task_start_steps``) has zero moments then,
so its j-th step would be corrected as step k + j instead of j, too large by the factor
(1 − b1^j)/(1 − b1^(k+j)) · √((1 − b2^(k+j))/(1 − b2^j)) (3.75× on average over its first
100 steps at k = 1000). Here the moments and the count of task i's parameters (its policy θ_i
or column f_θi, its value) advance only at updates where task i is in the objective, and θ_0's
(and a shared network's) at updates where any task is: every parameter takes exactly the steps
Adam would take had training started when it entered. With every task in the objective the
updates are ``optax.scale_by_adam``'s (up to one float32 rounding).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from distral_jax.networks import DistralParams


class TaskAdamState(NamedTuple):
    """Adam's moments and per-leaf step counts.

    Attributes:
      count: int32 step counts shaped like ``DistralParams``: a scalar per θ_0 leaf, ``[N]`` per
        leaf of the stacked task and value parameters (a scalar where one network serves all).
      mu, nu: first and second moments, shaped like the parameters.
    """

    count: DistralParams
    mu: DistralParams
    nu: DistralParams


def scale_by_task_adam(
    stacked: bool, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformationExtraArgs:
    """Adam's scaling with per-task step counts; ``update(..., task_weights=[N] or None)``.

    Args:
      stacked: whether ``DistralParams.task`` and ``.value`` have a leading task axis N (every
        architecture but ``shared``).
      b1, b2, eps: Adam's decay rates and ε (optax's defaults).
    """

    def counts(params: DistralParams) -> DistralParams:
        scalar = lambda x: jnp.zeros((), jnp.int32)
        per_task = (lambda x: jnp.zeros(x.shape[:1], jnp.int32)) if stacked else scalar
        return DistralParams(
            prior=jax.tree_util.tree_map(scalar, params.prior),
            task=jax.tree_util.tree_map(per_task, params.task),
            value=jax.tree_util.tree_map(per_task, params.value),
        )

    def init(params: DistralParams) -> TaskAdamState:
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return TaskAdamState(count=counts(params), mu=zeros, nu=zeros)

    def active(count: DistralParams, task_weights: jax.Array | None) -> DistralParams:
        """A bool per count: whether that parameter is in the objective at this update."""
        if task_weights is None:
            return jax.tree_util.tree_map(lambda c: jnp.ones(c.shape, bool), count)
        anyone = jnp.any(task_weights > 0)
        per_task = (task_weights > 0) if stacked else anyone
        return DistralParams(
            prior=jax.tree_util.tree_map(lambda c: anyone, count.prior),
            task=jax.tree_util.tree_map(lambda c: per_task, count.task),
            value=jax.tree_util.tree_map(lambda c: per_task, count.value),
        )

    def update(updates, state: TaskAdamState, params=None, *, task_weights=None, **extra):
        del params, extra
        on = active(state.count, task_weights)

        def leaf(g, mu, nu, count, on):
            # Same operations as optax.scale_by_adam, leaf by leaf; ``on`` [N] or () is
            # broadcast over the leaf's trailing axes.
            mask = jnp.reshape(on, on.shape + (1,) * (g.ndim - on.ndim))
            new_mu = jnp.where(mask, (1 - b1) * g + b1 * mu, mu)
            new_nu = jnp.where(mask, (1 - b2) * g**2 + b2 * nu, nu)
            new_count = jnp.where(on, optax.safe_increment(count), count)
            correction = lambda b: jnp.reshape(
                1 - b ** jnp.maximum(new_count, 1), mask.shape
            ).astype(g.dtype)
            mu_hat = new_mu / correction(b1)
            nu_hat = new_nu / correction(b2)
            step = jnp.where(mask, mu_hat / (jnp.sqrt(nu_hat) + eps), 0.0)
            return step, new_mu, new_nu, new_count

        flat, treedef = jax.tree_util.tree_flatten(updates)
        others = [treedef.flatten_up_to(t) for t in (state.mu, state.nu, state.count, on)]
        out = [leaf(*xs) for xs in zip(flat, *others, strict=True)]
        steps, mu, nu, count = (treedef.unflatten([o[k] for o in out]) for k in range(4))
        return steps, TaskAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformationExtraArgs(init, update)
