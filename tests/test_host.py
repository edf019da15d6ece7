"""``envs.host.host_call``: one ordered host call per call site and step, with the whole batch,
under ``jit``, ``lax.scan`` and stacked ``vmap``s; none dropped, repeated or reordered."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distral_jax.envs.host import host_call

N, E, T = 2, 3, 4


class Simulator:
    """A host 'simulator': one position per environment id, moved by each step's action; it
    logs every call (its name and the batch's shape)."""

    def __init__(self, log: list):
        self.position: dict[int, float] = {}
        self.log = log

    def step(self, args):
        ids, action = args["ids"], args["action"]
        self.log.append(("step", ids.shape))
        out = np.empty(ids.shape, np.float32)
        for index in np.ndindex(ids.shape):
            i = int(ids[index])
            self.position[i] = self.position.get(i, 0.0) + float(action[index])
            out[index] = self.position[i]
        return out


def _step(sim: Simulator):
    """One environment's step, as a family writes it."""
    shape = jax.ShapeDtypeStruct((), jnp.float32)
    return lambda ids, action: host_call(sim.step, shape, {"ids": ids, "action": action})


def _rollout(step):
    """T steps of [N, E] environments, each step's action the last result + 1."""
    batched = jax.vmap(jax.vmap(step))

    def run(ids, action):
        def body(a, _):
            out = batched(ids, a)
            return out + 1.0, out

        return jax.lax.scan(body, action, None, length=T)[1]

    return run


def _numpy_rollout(action: np.ndarray) -> np.ndarray:
    position, outs = np.zeros_like(action), []
    for _ in range(T):
        position = position + action
        outs.append(position)
        action = position + 1.0
    return np.stack(outs)


def test_one_call_per_step_receives_the_whole_batch_in_order():
    log = []
    sim = Simulator(log)
    ids = jnp.arange(N * E).reshape(N, E)
    action = jnp.arange(N * E, dtype=jnp.float32).reshape(N, E) / 10
    out = jax.jit(_rollout(_step(sim)))(ids, action)
    assert log == [("step", (N, E))] * T  # not N × E calls of one environment each
    np.testing.assert_allclose(out, _numpy_rollout(np.asarray(action)), rtol=1e-6)


def test_an_outer_vmap_adds_a_leading_axis_and_broadcasts_what_it_does_not_map():
    log = []
    sim = Simulator(log)
    runs = 5  # unlike N and E: the runs' axis must come first
    ids = jnp.arange(runs * N * E).reshape(runs, N, E)
    action = jnp.ones((N, E), jnp.float32)  # shared by every run: in_axes None
    out = jax.jit(jax.vmap(_rollout(_step(sim)), in_axes=(0, None)))(ids, action)
    assert log == [("step", (runs, N, E))] * T
    want = _numpy_rollout(np.ones((N, E), np.float32))  # out: [runs, T, N, E]
    for run in range(runs):  # the same, each run from environments of its own
        np.testing.assert_allclose(out[run], want)
    # Actions of each run its own: each run's results follow its own actions.
    sim.position.clear()
    actions = jnp.arange(runs, dtype=jnp.float32)[:, None, None] * jnp.ones((runs, N, E))
    out = jax.jit(jax.vmap(_rollout(_step(sim))))(ids, actions)
    for run in range(runs):
        np.testing.assert_allclose(out[run], _numpy_rollout(np.asarray(actions[run])))


def test_two_call_sites_keep_program_order_and_an_unused_result_is_not_dropped():
    log = []
    first = lambda args: (log.append("first"), np.zeros(args.shape, np.float32))[1]
    second = lambda args: (log.append("second"), np.ones(args.shape, np.float32))[1]
    shape = jax.ShapeDtypeStruct((), jnp.float32)

    def one(x):
        host_call(first, shape, x)  # result unused: an ordered effect stays in the program
        return host_call(second, shape, x)

    def run(x):
        return jax.lax.scan(lambda c, _: (c, jax.vmap(one)(c)), x, None, length=3)[1]

    x = jnp.zeros((E,), jnp.float32)
    out = jax.jit(run)(x)
    assert log == ["first", "second"] * 3
    # What guarantees that order (the CPU also runs unordered callbacks in program order, so the
    # log alone cannot tell): an ordered effect, whose token threads the calls one after another.
    effects = jax.make_jaxpr(run)(x).effects
    assert [type(e).__name__ for e in effects] == ["OrderedIOEffect"]
    np.testing.assert_array_equal(out, np.ones((3, E)))


def test_compiling_calls_nothing_and_every_execution_calls_once_per_step():
    log = []
    sim = Simulator(log)
    run = jax.jit(_rollout(_step(sim)))
    ids, action = jnp.arange(N * E).reshape(N, E), jnp.zeros((N, E), jnp.float32)
    compiled = run.lower(ids, action).compile()
    assert log == []  # tracing and XLA compilation never reach the simulator
    compiled(ids, action)
    compiled(ids, action)
    assert len(log) == 2 * T
    # Another shape compiles another program: it calls the host only when it runs.
    other = jnp.arange(E).reshape(1, E), jnp.zeros((1, E), jnp.float32)
    run.lower(*other).compile()
    assert len(log) == 2 * T
    run(*other)
    assert log[-T:] == [("step", (1, E))] * T


def test_a_result_of_the_wrong_shape_names_the_callback():
    shape = jax.ShapeDtypeStruct((2,), jnp.float32)
    wrong = lambda args: np.zeros((3,), np.float32)
    with pytest.raises(Exception, match="returned shape \\(3,\\), expected \\(2,\\)"):
        jax.block_until_ready(jax.jit(lambda x: host_call(wrong, shape, x))(jnp.zeros(())))


def test_a_call_without_arrays_is_refused():
    with pytest.raises(ValueError, match="`args` of host_call must hold at least one array"):
        host_call(lambda args: 0.0, jax.ShapeDtypeStruct((), jnp.float32), {})


def test_a_result_of_another_structure_names_the_callback():
    shape = jax.ShapeDtypeStruct((), jnp.float32)
    as_list = lambda args: [args, args]  # a list where the result's structure is a tuple
    with pytest.raises(Exception, match="returned PyTreeDef\\(\\[\\*, \\*\\]\\), expected"):
        jax.block_until_ready(
            jax.jit(lambda x: host_call(as_list, (shape, shape), x))(jnp.zeros(()))
        )


def test_it_cannot_be_differentiated():
    shape = jax.ShapeDtypeStruct((), jnp.float32)
    double = lambda x: host_call(lambda a: a * 2, shape, x)
    with pytest.raises(ValueError, match="IO callbacks do not support JVP"):
        jax.grad(double)(1.0)
