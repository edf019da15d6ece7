"""Running mean/variance of observations, a pytree that lives in the training state."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class RunningStats:
    """Welford-style running statistics over all leading axes of the observations seen.

    Attributes:
      mean, var: ``[observation_size]``.
      count: scalar float32 number of observations folded in.
    """

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, size: int) -> RunningStats:
        return cls(
            mean=jnp.zeros((size,), jnp.float32),
            var=jnp.ones((size,), jnp.float32),
            count=jnp.zeros((), jnp.float32),
        )

    def update(self, batch: jax.Array) -> RunningStats:
        """Folds in ``batch`` of shape ``[..., observation_size]`` (parallel-variance formula)."""
        x = batch.reshape(-1, batch.shape[-1])
        n = jnp.asarray(x.shape[0], jnp.float32)
        batch_mean = x.mean(axis=0)
        batch_var = x.var(axis=0)
        total = self.count + n
        delta = batch_mean - self.mean
        mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        return RunningStats(mean=mean, var=m2 / total, count=total)

    def normalize(self, obs: jax.Array, clip: float = 10.0) -> jax.Array:
        std = jnp.sqrt(self.var + 1e-8)
        return jnp.clip((obs - self.mean) / std, -clip, clip)
