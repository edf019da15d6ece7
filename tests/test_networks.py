"""Networks: per-task parameters stacked on a task axis, the 2-column heads, one-hot lookups."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distral_jax.losses import gaussian_two_column
from distral_jax.networks import MLP, DistralNetworks


def test_one_hot_lookup_equals_dense_first_layer():
    dense = MLP((8, 8), 3)
    lookup = MLP((8, 8), 3, one_hot_input=True)
    x = jax.nn.one_hot(jnp.array([0, 4, 2, 4]), 5)
    p = dense.init(jax.random.PRNGKey(0), x)["params"]
    q = {
        "embed_kernel": p["Dense_0"]["kernel"],
        "embed_bias": p["Dense_0"]["bias"],
        "Dense_0": p["Dense_1"],
        "Dense_1": p["Dense_2"],
    }
    assert jax.tree_util.tree_structure(q) == jax.tree_util.tree_structure(
        lookup.init(jax.random.PRNGKey(0), x)["params"]
    )
    np.testing.assert_allclose(
        dense.apply({"params": p}, x), lookup.apply({"params": q}, x), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("architecture", ["1col", "2col", "shared"])
@pytest.mark.parametrize("discrete", [True, False])
def test_shapes_and_task_independence(architecture, discrete):
    n, b, obs_size, actions = 3, 5, 4, 2
    nets = DistralNetworks(obs_size, actions, n, discrete, architecture, hidden_sizes=(8,))
    params = nets.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (n, b, obs_size))
    pi, pi0, v = nets.apply(params, obs, jnp.float32(0.5))
    leaves = jax.tree_util.tree_leaves(pi)
    assert all(leaf.shape == (n, b, actions) for leaf in leaves)
    assert v.shape == (n, b)
    # π_0 is the same network for every task: equal inputs give equal π_0 across tasks.
    same = jnp.broadcast_to(obs[:1], obs.shape)
    _, pi0_same, _ = nets.apply(params, same, jnp.float32(0.5))
    for leaf in jax.tree_util.tree_leaves(pi0_same):
        np.testing.assert_allclose(leaf[0], leaf[1], rtol=1e-6)
    if architecture != "shared":
        # Task i depends on θ_i only: perturbing task 1's parameters leaves task 0 unchanged.
        task = jax.tree_util.tree_map(lambda x: x.at[1].add(1.0), params.task)
        pi_b, _, _ = nets.apply(params.replace(task=task), obs, jnp.float32(0.5))
        for a, c in zip(
            jax.tree_util.tree_leaves(pi), jax.tree_util.tree_leaves(pi_b), strict=True
        ):
            np.testing.assert_allclose(a[0], c[0], rtol=1e-6)
            assert not np.allclose(a[1], c[1])


def test_gaussian_two_column_head_is_the_product_of_prior_and_column():
    nets = DistralNetworks(3, 2, 2, False, "2col", hidden_sizes=(8,))
    params = nets.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 3))
    (mu, std), (mu0, std0), _ = nets.apply(params, obs, jnp.float32(0.5))
    one_col = DistralNetworks(3, 2, 2, False, "1col", hidden_sizes=(8,))
    (m, s), _, _ = one_col.apply(params, obs, jnp.float32(0.5))
    want_mu, want_std = gaussian_two_column(mu0, std0, m, s, 0.5)
    np.testing.assert_allclose(mu, want_mu, rtol=1e-5)
    np.testing.assert_allclose(std, want_std, rtol=1e-5)
