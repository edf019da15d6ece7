"""Replay on the device: one ring buffer of transitions per task, inside the jitted state.

An off-policy learner (``learners.sac``) keeps the last ``capacity`` transitions of every task in
its training state, so a whole run (acting, storing, sampling, learning) stays one compiled
program that ``vmap``s over runs and tasks and shards over a mesh's ``tasks`` axis. The buffers
are flashbax item buffers (its ``make_item_buffer``: a ring buffer with wrap-around and uniform
sampling over the filled slots), vmapped over the task axis here, so every task samples its own
buffer with its own key: ``[N, 1, capacity, ...]`` leaves.

Memory: ``N × capacity × transition_bytes`` (``replay_bytes``), all on the device; a buffer
that cannot fit is refused before anything is compiled (``check_replay_fits``).
"""

from __future__ import annotations

import math
import os
from typing import Any

import flashbax
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from distral_jax.acting import Transition

Buffer = Any  # flashbax's TrajectoryBuffer of ``Item``s
BufferState = Any  # its state: ``experience`` leaves [N, 1, capacity, ...], ``current_index``


@struct.dataclass
class Item:
    """One stored transition (leaves ``[N, B, ...]`` when sampled).

    Attributes:
      obs: the observation the action was taken in.
      action: the environment's action (after any tanh squash; an index for discrete actions).
      reward: the reward received.
      discount: γ, or 0 where the episode terminated (a truncation keeps γ).
      next_obs: the observation the step reached (the true last one where an episode ended).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_obs: jax.Array


def transition_bytes(observation_shape: tuple[int, ...], action_size: int, discrete: bool) -> int:
    """Bytes one ``Item`` takes: two float32 observations, the action (one int32 index, or D
    float32 values), the reward and the discount."""
    obs = int(np.prod(observation_shape))
    return 4 * (2 * obs + (1 if discrete else action_size) + 2)


def replay_bytes(num_tasks: int, capacity: int, per_transition: int, num_runs: int = 1) -> int:
    """Bytes the buffers of ``num_runs`` runs take: runs × N × capacity × per transition."""
    return num_runs * num_tasks * capacity * per_transition


def device_memory_bytes(devices: list[jax.Device]) -> int | None:
    """Memory the devices have together: an accelerator's ``bytes_limit``; for CPU devices the
    host's physical memory (once: they share it); None when unknown."""
    limits = [(d.memory_stats() or {}).get("bytes_limit") for d in devices]
    if all(limit is not None for limit in limits):
        return int(sum(limits))
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


# The rest of the state, the programs' temporaries and (on the host) everything else need room.
MEMORY_FRACTION = 0.75


def check_replay_fits(
    num_runs: int,
    num_tasks: int,
    capacity: int,
    per_transition: int,
    devices: list[jax.Device],
) -> int:
    """The buffers' bytes; ValueError naming the fields when they exceed ``MEMORY_FRACTION`` of
    the devices' memory (checked before compiling: a buffer that cannot fit would otherwise
    fail deep inside XLA's allocator, or swap)."""
    total = replay_bytes(num_tasks, capacity, per_transition, num_runs)
    memory = device_memory_bytes(devices)
    if memory is not None and total > MEMORY_FRACTION * memory:
        gib = lambda b: f"{b / 2**30:.2f} GiB"
        fit = int(MEMORY_FRACTION * memory // (num_runs * num_tasks * per_transition))
        raise ValueError(
            f"`replay_capacity`={capacity} does not fit: num_runs={num_runs} × num_tasks="
            f"{num_tasks} × replay_capacity × {per_transition} bytes per transition = "
            f"{gib(total)}, above {MEMORY_FRACTION:.0%} of the {gib(memory)} of "
            f"{len(devices)} {devices[0].platform} device(s). Lower `replay_capacity` "
            f"(at most {fit} here), the runs, or spread the tasks over a mesh."
        )
    return total


def make_buffer(capacity: int, batch_size: int, items_per_add: int) -> Buffer:
    """A flashbax item buffer of ``capacity`` transitions (one task's), sampling ``batch_size``
    uniformly from the filled slots; ``add`` takes ``[items_per_add, ...]`` at once."""
    if items_per_add > capacity:
        raise ValueError(
            f"`replay_capacity`={capacity} must hold one iteration's {items_per_add} transitions"
        )
    return flashbax.make_item_buffer(
        max_length=capacity,
        min_length=1,
        sample_batch_size=batch_size,
        add_sequences=True,
        add_batches=False,
    )


def empty_item(observation_shape: tuple[int, ...], action_size: int, discrete: bool) -> Item:
    """An all-zero ``Item`` of one transition: the structure the buffers are built from."""
    obs = jnp.zeros(observation_shape, jnp.float32)
    action = jnp.zeros((), jnp.int32) if discrete else jnp.zeros((action_size,), jnp.float32)
    zero = jnp.zeros((), jnp.float32)
    return Item(obs=obs, action=action, reward=zero, discount=zero, next_obs=obs)


def init(buffer: Buffer, item: Item, num_tasks: int) -> BufferState:
    """Empty buffers for ``num_tasks`` tasks (leaves ``[N, 1, capacity, ...]`` of zeros)."""
    one = buffer.init(item)
    return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (num_tasks,) + x.shape), one)


def items(traj: Transition, postprocess) -> Item:
    """A rollout ``[N, E, T]`` as ``Item``s ``[N, E·T]`` (environment-major), with the
    actions the environments received (``postprocess``: the policies' squash)."""
    flat = lambda x: x.reshape(x.shape[:1] + (math.prod(x.shape[1:3]),) + x.shape[3:])
    return Item(
        obs=flat(traj.obs),
        action=flat(postprocess(traj.action)),
        reward=flat(traj.reward),
        discount=flat(traj.discount),
        next_obs=flat(traj.final_obs),
    )


def add(buffer: Buffer, state: BufferState, new: Item) -> BufferState:
    """Every task's ``new`` items ``[N, M, ...]`` written into its own buffer (oldest first out)."""
    return jax.vmap(buffer.add)(state, new)


def sample(buffer: Buffer, state: BufferState, key: jax.Array) -> Item:
    """``batch_size`` items per task ``[N, B, ...]``, uniform over each buffer's filled slots,
    with an independent key per task."""
    num_tasks = jax.tree_util.tree_leaves(state)[0].shape[0]
    keys = jax.random.split(key, num_tasks)
    return jax.vmap(buffer.sample)(state, keys).experience


def filled(state: BufferState) -> jax.Array:
    """``[N]`` the number of filled slots of each task's buffer."""
    capacity = jax.tree_util.tree_leaves(state.experience)[0].shape[2]
    return jnp.where(state.is_full, capacity, state.current_index)
