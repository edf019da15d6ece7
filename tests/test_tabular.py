"""Tests of exact tabular Distral (float64 where exactness is checked)."""

import ast

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distral_jax import tabular
from distral_jax.envs.gridworld import GridWorld, spread_goals


@pytest.fixture
def x64():
    # Scoped to the test: other test files keep JAX's float32 default.
    with jax.enable_x64(True):
        yield


def random_mdp(seed, num_tasks=3, S=6, A=3, terminal=True):
    """Dense random MDPs; the last state is terminal (zero rows) when ``terminal``."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(S, 0.5), size=(num_tasks, S, A))
    R = rng.normal(size=(num_tasks, S, A))
    d0 = rng.dirichlet(np.ones(S), size=num_tasks)
    if terminal:
        P[:, -1], R[:, -1], d0[:, -1] = 0.0, 0.0, 0.0
        d0 /= d0.sum(-1, keepdims=True)
    log_pi0 = np.log(rng.dirichlet(np.ones(A), size=S))
    return tuple(jnp.asarray(x) for x in (P, R, d0, log_pi0))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alpha, beta", [(0.5, 2.0), (1.0, 10.0), (0.2, 50.0)])
def test_alternation_never_decreases_joint_objective(x64, seed, alpha, beta):
    P, R, d0, _ = random_mdp(seed)
    res = tabular.distral(P, R, d0, alpha, beta, 0.9, num_rounds=8)
    joint = np.asarray(res.objective_history.sum(-1))
    assert res.objective_history.shape == (17, 3)
    assert np.all(np.diff(joint) >= -1e-10), np.diff(joint)
    assert joint[-1] > joint[0]
    # The returned π0 is the distillation of the returned task policies.
    np.testing.assert_allclose(res.log_pi0, tabular.distill(P, res.log_pi, d0, 0.9), atol=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("beta", [0.5, 5.0, 1e5])
def test_soft_bellman_equations_hold(x64, alpha, beta):
    P, R, _, log_pi0 = random_mdp(7, num_tasks=1)
    P, R, gamma = P[0], R[0], 0.9
    Q, V, log_pi = tabular.soft_value_iteration(P, R, log_pi0, alpha, beta, gamma)
    assert Q.dtype == jnp.float64
    live = ~np.asarray(tabular.terminal_states(P))
    np.testing.assert_allclose(Q, R + gamma * jnp.einsum("sat,t->sa", P, V), atol=1e-8)
    soft_v = jax.nn.logsumexp(alpha * log_pi0 + beta * Q, axis=-1) / beta
    np.testing.assert_allclose(V[live], soft_v[live], atol=1e-8)
    assert V[-1] == 0.0  # terminal
    expected = alpha * log_pi0 + beta * Q - beta * V[:, None]
    np.testing.assert_allclose(log_pi[live], expected[live], atol=1e-8)
    np.testing.assert_allclose(jnp.exp(log_pi).sum(-1), 1.0, atol=1e-12)
    assert np.all(np.isfinite(np.asarray(log_pi)))


def test_distill_matches_monte_carlo(x64):
    P, R, d0, _ = random_mdp(3, num_tasks=2, S=5, A=3)
    rng = np.random.default_rng(0)
    pi = rng.dirichlet(np.ones(3), size=(2, 5))
    gamma, T, E = 0.8, 60, 20_000  # γ^60 ≈ 2e-6: truncation is negligible
    log_pi0 = tabular.distill(P, jnp.log(jnp.asarray(pi)), d0, gamma)

    # Plain numpy simulation of E episodes per task, γ^t-weighted (s, a) counts of both tasks.
    P_np, d0_np = np.asarray(P), np.asarray(d0)
    counts = np.zeros((5, 3))

    def sample(probs):  # one categorical draw per row
        return (rng.random((probs.shape[0], 1)) > probs.cumsum(-1)).sum(-1).clip(max=4)

    for i in range(2):
        s = sample(np.broadcast_to(d0_np[i], (E, 5)))
        alive = np.ones(E, bool)
        for t in range(T):
            alive &= s != 4  # state 4 is terminal: nobody acts there
            a = sample(pi[i, s]).clip(max=2)
            np.add.at(counts, (s[alive], a[alive]), gamma**t)
            s = np.where(alive, sample(np.where(alive[:, None], P_np[i, s, a], 1.0)), 4)
    pi0_mc = counts[:4] / counts[:4].sum(-1, keepdims=True)
    # Standard error of a mixture frequency from 2 x 20000 episodes is below 0.005;
    # 0.02 leaves a 4-sigma margin.
    np.testing.assert_allclose(jnp.exp(log_pi0)[:4], pi0_mc, atol=0.02)
    np.testing.assert_allclose(jnp.exp(log_pi0)[4], 1 / 3, atol=1e-12)  # terminal: uniform


def test_alpha_zero_ignores_pi0_and_large_beta_is_greedy(x64):
    P, R, _, log_pi0 = random_mdp(11, num_tasks=1)
    P, R, gamma = P[0], R[0], 0.9
    other = jax.nn.log_softmax(jnp.asarray(np.random.default_rng(5).normal(size=log_pi0.shape)))
    a = tabular.soft_value_iteration(P, R, log_pi0, 0.0, 3.0, gamma)
    b = tabular.soft_value_iteration(P, R, other, 0.0, 3.0, gamma)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-12)

    beta = 1e5
    Q, V, log_pi = tabular.soft_value_iteration(P, R, log_pi0, 0.0, beta, gamma)
    Q_star, V_star = tabular.hard_value_iteration(P, R, gamma)
    live = ~np.asarray(tabular.terminal_states(P))
    gap = np.asarray(V - V_star)
    assert np.all(gap >= -1e-10) and np.all(gap <= np.log(3) / (beta * (1 - gamma)) + 1e-10)
    np.testing.assert_array_equal(log_pi.argmax(-1)[live], Q_star.argmax(-1)[live])
    assert np.all(np.exp(np.asarray(log_pi)).max(-1)[live] > 0.999)


def test_objective_of_soft_optimal_policies_is_their_soft_value(x64):
    P, R, d0, log_pi0 = random_mdp(2)
    alpha, beta, gamma = 0.5, 4.0, 0.85
    svi = jax.vmap(tabular.soft_value_iteration, in_axes=(0, 0, None, None, None, None))
    _, V, log_pi = svi(P, R, log_pi0, alpha, beta, gamma)
    J = tabular.objective(P, R, log_pi, log_pi0, d0, alpha, beta, gamma)
    np.testing.assert_allclose(J, jnp.einsum("ns,ns->n", d0, V), atol=1e-9)
    # Any other policy does worse for the same π0.
    J_uniform = tabular.objective(P, R, jnp.full_like(log_pi, -np.log(3)), log_pi0, d0,
                                  alpha, beta, gamma)  # fmt: skip
    assert np.all(np.asarray(J_uniform) < np.asarray(J))


def test_two_rooms_prior_is_sharp_to_the_doorway_and_diffuse_in_the_goal_room(x64):
    env = GridWorld("two_rooms", goals=spread_goals("two_rooms", 8, rooms=[1]))
    P, R, d0, terminal = env.tabular_model()
    gamma = 0.95
    res = tabular.distral(P, R, d0, alpha=0.5, beta=100.0, gamma=gamma, num_rounds=15)
    pi0 = jnp.exp(res.log_pi0)
    entropy = -(pi0 * res.log_pi0).sum(-1)
    occ = jax.vmap(tabular.discounted_occupancy, (0, 0, 0, None))(P, jnp.exp(res.log_pi), d0, gamma)
    occ = np.asarray(jnp.where(terminal, 0.0, occ).sum(0))
    room = env.layout.room
    h = {r: float((entropy * occ)[room == r].sum() / occ[room == r].sum()) for r in (0, 1)}
    # Measured: 0.25 nats in the start room, 1.08 in the goal room (max log 4 = 1.39).
    assert h[0] < 0.35 and h[1] > 0.9 and h[1] > 3 * h[0], h
    # Next to the doorway π0 goes through it.
    assert float(pi0[env.layout.cell((3, 5)), 1]) > 0.95
    # Greedy task policies are optimal (horizon 50 covers every shortest path).
    greedy = jax.nn.one_hot(res.log_pi.argmax(-1), 4)
    np.testing.assert_allclose(env.policy_returns(greedy, 50), env.optimal_returns(50), atol=1e-9)


def test_tabular_does_not_import_the_environments():
    # The exact solvers work on arrays; gridworld imports them, so the reverse would be a cycle.
    tree = ast.parse(open(tabular.__file__, encoding="utf-8").read())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if "envs" in m or "gridworld" in m], imported
