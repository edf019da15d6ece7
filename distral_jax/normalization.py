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

    def update(self, batch: jax.Array) -> RunningStats:
        """Folds in ``batch`` of shape ``[..., *shape]`` (parallel-variance formula)."""
        x = batch.reshape((-1,) + self.mean.shape).astype(jnp.float32)
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
