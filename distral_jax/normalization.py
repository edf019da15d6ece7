"""Running mean/variance of observations, a pytree that lives in the training state."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class RunningStats:
    """Welford-style running statistics over all leading axes of the observations seen.

    Attributes:
      mean, var: the observation shape (``[observation_size]`` for flat observations).
      count: scalar float32 number of observations folded in.
    """

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, shape: int | tuple[int, ...]) -> RunningStats:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return cls(
            mean=jnp.zeros(shape, jnp.float32),
            var=jnp.ones(shape, jnp.float32),
            count=jnp.zeros((), jnp.float32),
        )

    def update(self, batch: jax.Array, weights: jax.Array | None = None) -> RunningStats:
        """Folds in ``batch`` of shape ``[..., *shape]`` (parallel-variance formula).

        Args:
          batch: observations; every leading axis is a sample axis.
          weights: optional 0/1 weights over a prefix of the leading axes (e.g. ``[N]`` for a
            batch ``[N, E, T, *shape]``): only observations of weight 1 are folded in, and a
            batch of weight 0 everywhere leaves the statistics exactly as they are.
        """
        x = batch.reshape((-1,) + self.mean.shape).astype(jnp.float32)
        if weights is None:
            n = jnp.asarray(x.shape[0], jnp.float32)
            batch_mean = x.mean(axis=0)
            batch_var = x.var(axis=0)
        else:
            lead = batch.shape[: batch.ndim - self.mean.ndim]
            w = jnp.asarray(weights, jnp.float32)
            w = jnp.broadcast_to(w.reshape(w.shape + (1,) * (len(lead) - w.ndim)), lead)
            w = w.reshape((-1,) + (1,) * self.mean.ndim)
            n = jnp.sum(w)
            batch_mean = jnp.sum(w * x, axis=0) / jnp.maximum(n, 1.0)
            batch_var = jnp.sum(w * (x - batch_mean) ** 2, axis=0) / jnp.maximum(n, 1.0)
        total = self.count + n
        safe_total = jnp.maximum(total, 1.0)
        delta = batch_mean - self.mean
        mean = self.mean + delta * n / safe_total
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / safe_total
        updated = RunningStats(mean=mean, var=m2 / safe_total, count=total)
        if weights is None:
            return updated
        # Nothing folded in: the same statistics, bit for bit (not recomputed from them).
        return jax.tree_util.tree_map(lambda new, old: jnp.where(n > 0, new, old), updated, self)

    def normalize(self, obs: jax.Array, clip: float = 10.0) -> jax.Array:
        std = jnp.sqrt(self.var + 1e-8)
        return jnp.clip((obs - self.mean) / std, -clip, clip)
