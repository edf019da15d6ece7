"""Recurrent cores: memory that works, states reset where episodes end, states the learner
recomputes equal to the rollout's, recurrent policies and evaluation, image torsos."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distral_jax import acting
from distral_jax.configs import TrainConfig
from distral_jax.envs.cue_recall import CueRecall
from distral_jax.envs.point_mass import PointMassGoals
from distral_jax.networks import DistralNetworks
from distral_jax.train import train
from distral_jax.trainer import Trainer

CUE = CueRecall(num_tasks=2, num_cues=2, delay=2)


def _config(core: str, **kw) -> TrainConfig:
    base = dict(
        variant="distral_klent_2col",
        core=core,
        num_envs=16,
        unroll_length=8,
        iterations_per_call=25,
        total_env_steps=25_600,
        episode_length=CUE.episode_length,
        hidden_sizes=(32,),
        eval_every=25_600,
        eval_envs=64,
        learning_rate=3e-3,
        gamma=0.9,
        ppo_minibatches=2,
    )
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
@pytest.mark.parametrize(
    "core, learner, lowest, highest", [("gru", "ppo", 0.95, 1.0), ("mlp", "a2c", 0.3, 0.7)]
)
def test_cue_recall_needs_a_carried_state(core, learner, lowest, highest):
    # The decision's observation is the same for both cues: without the cue carried in the
    # core's state a policy is at chance (1/2); with it, both tasks are solved. (LSTM with A2C:
    # the README's recurrent example, tests/test_readme.py.)
    _, _, metrics = train(CUE, _config(core, learner=learner), show_progress=False)
    success = np.asarray(metrics["eval/success_greedy"])
    assert np.all(success >= lowest) and np.all(success <= highest), (core, learner, success)


def _two_rollouts(trainer: Trainer, seed: int = 0):
    """The second of two consecutive rollouts (so it starts from a carried, non-zero state)."""
    state = trainer.init(jax.random.PRNGKey(seed))
    run = jax.jit(trainer.rollout)
    env_state, core_state, _ = run(state, jax.random.PRNGKey(1))
    state = state.replace(env_state=env_state, core_state=core_state)
    return state, core_state, run(state, jax.random.PRNGKey(2))


def test_rollout_resets_the_state_where_an_episode_ended():
    trainer = Trainer(CUE, _config("lstm", unroll_length=9, num_envs=4))
    _, carried, (_, final, traj) = _two_rollouts(trainer)
    done = np.asarray(traj.done)
    for leaf, start, end in zip(
        jax.tree_util.tree_leaves(traj.core_state),
        jax.tree_util.tree_leaves(carried),
        jax.tree_util.tree_leaves(final),
        strict=True,
    ):
        leaf = np.asarray(leaf)  # [N, E, T, F]
        np.testing.assert_array_equal(leaf[:, :, 0], np.asarray(start))  # carried across calls
        after_end = done[:, :, :-1] > 0
        assert after_end.any() and (~after_end).any()
        assert np.all(leaf[:, :, 1:][after_end] == 0.0)  # reset after every episode end
        assert np.all(np.abs(leaf[:, :, 1:][~after_end]).sum(-1) > 0)  # carried otherwise
        np.testing.assert_array_equal(np.asarray(end)[done[:, :, -1] > 0], 0.0)


@pytest.mark.parametrize(
    "family, architecture, core",
    [
        (CUE, "1col", "lstm"),
        (CUE, "2col", "gru"),
        (CUE, "shared", "lstm"),
        (PointMassGoals(num_tasks=2), "2col", "gru"),  # continuous actions
    ],
)
def test_learner_recomputes_the_rollout_states(family, architecture, core):
    config = _config(core, variant="custom", architecture=architecture, unroll_length=6)
    config = config.replace(num_envs=4, episode_length=5)
    trainer = Trainer(family, config)
    state, _, (_, _, traj) = _two_rollouts(trainer)
    nets, hp = trainer.networks, state.hparams
    start = jax.tree_util.tree_map(lambda x: x[:, :, 0], traj.core_state)
    out = jax.jit(nets.unroll)(
        state.params, state.obs_stats, traj.obs, start, traj.done, hp.column_alpha, traj.final_obs
    )
    for got, want in zip(
        jax.tree_util.tree_leaves(out.states),
        jax.tree_util.tree_leaves(traj.core_state),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, atol=1e-5)
    # The learner's π_i is the one that acted: PPO's first ratios are exactly 1.
    np.testing.assert_allclose(
        nets.dist.log_prob(out.pi, traj.action), traj.behaviour_log_prob, atol=1e-4
    )
    # Bootstrapping: V(final_obs_t) is V(obs_{t+1}) wherever the episode went on.
    going_on = np.asarray(traj.done[:, :, :-1]) == 0
    np.testing.assert_allclose(
        np.asarray(out.final_value[:, :, :-1])[going_on],
        np.asarray(out.value[:, :, 1:])[going_on],
        atol=1e-5,
    )
    # Where an episode ended, V(final_obs_t) is computed from the value core's state after
    # step t, the episode's own history, not from the reset state the next step starts from:
    # a truncated step bootstraps from the state it reached (docs/maths.md §9).
    n, e, t = traj.done.shape
    flat = lambda x: x.reshape((n, e * t) + x.shape[3:])
    states = jax.tree_util.tree_map(flat, traj.core_state)
    obs, final_obs = (nets.preprocess(state.obs_stats, flat(x)) for x in (traj.obs, traj.final_obs))
    _, _, _, after = jax.jit(nets.step)(state.params, obs, states, hp.column_alpha)
    want = jax.jit(nets.value)(state.params, final_obs, after.value).reshape(n, e, t)
    ended = np.asarray(traj.done) > 0
    truncated = ended & (np.asarray(traj.discount) > 0)
    if family is not CUE:  # the point mass has no terminal state: every end is a time limit
        assert truncated.any()
    assert ended.any()
    np.testing.assert_allclose(
        np.asarray(out.final_value)[ended], np.asarray(want)[ended], atol=1e-5
    )
    reset_start = jax.jit(nets.value)(state.params, final_obs).reshape(n, e, t)
    assert not np.allclose(np.asarray(reset_start)[ended], np.asarray(want)[ended], atol=1e-3)


def test_recurrent_policy_and_evaluation():
    trainer = Trainer(CUE, _config("gru", num_envs=4, eval_envs=3))
    state = trainer.init(jax.random.PRNGKey(0))
    policy = trainer.make_policy(state.policy_params, deterministic=True)
    key = jax.random.PRNGKey(1)
    cue = jax.nn.one_hot(jnp.array([[0], [1]]), 4)  # [N=2, 1, 4]
    action, memory = policy(cue, None, key)
    assert action.shape == (2, 1)
    assert all(leaf.shape == (2, 1, 32) for leaf in jax.tree_util.tree_leaves(memory))
    blank = jnp.broadcast_to(jax.nn.one_hot(2, 4), (2, 1, 4))
    _, after_cue = policy(blank, memory, key)
    _, fresh = policy(blank, None, key)
    assert not np.allclose(after_cue.task, fresh.task)  # the state carries the cue
    one_task, _ = trainer.make_policy(state.policy_params, task=1)(jnp.ones((5, 4)), None, key)
    assert one_task.shape == (5,)
    metrics = jax.jit(trainer.evaluate)(state, key)
    assert metrics["episode_return"].shape == (2,)
    assert np.all((metrics["success"] >= 0) & (metrics["success"] <= 1))


@pytest.mark.parametrize("architecture", ["1col", "2col", "shared"])
def test_image_torso_with_embedded_ids(architecture):
    n, e, shape = 2, 3, (5, 5, 2)
    nets = DistralNetworks(
        50, 6, n, True, architecture, (16,), core="gru", observation_shape=shape,
        observation_vocabulary=13,
    )  # fmt: skip
    params = nets.init(jax.random.PRNGKey(0))
    obs = jax.random.randint(jax.random.PRNGKey(1), (n, e) + shape, 0, 13).astype(jnp.uint8)
    pi, pi0, v, state = nets.step(params, obs, nets.initial_state((n, e)), jnp.float32(0.5))
    assert pi.shape == pi0.shape == (n, e, 6) and v.shape == (n, e)
    assert state.task.shape == (n, e, 16)
    # Each channel has its own rows of the embedding: swapping tile and colour ids matters.
    swapped, _, _ = nets.apply(params, obs[..., ::-1], jnp.float32(0.5))
    assert not np.allclose(nets.apply(params, obs, jnp.float32(0.5))[0], swapped)
    with pytest.raises(ValueError, match="normalize_observations"):
        DistralNetworks(
            50, 6, n, True, architecture, (16,), normalize_observations=True,
            observation_shape=shape, observation_vocabulary=13,
        )  # fmt: skip


def test_a_loaded_recurrent_policy_plays_episodes(tmp_path, capfd):
    """``load_policy`` of a recurrent run gives policies that carry their initial state:
    ``run_episodes`` plays them without being handed one (it raised a TypeError before)."""
    from distral_jax.checkpoint import load_policy  # noqa: PLC0415

    config = _config("gru", num_envs=4, unroll_length=4, iterations_per_call=2)
    config = config.replace(total_env_steps=64, eval_every=64, eval_envs=2)
    train(CUE, config, checkpoint_dir=tmp_path / "ckpt", show_progress=False)
    capfd.readouterr()
    make_policy, params = load_policy(tmp_path / "ckpt", CUE)
    assert "read only" not in capfd.readouterr().err  # orbax's notice for a read-only manager
    policy = make_policy(params, deterministic=True)
    start = policy.initial_state((CUE.num_tasks, 3))
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree_util.tree_leaves(start))
    episodes = acting.run_episodes(
        CUE, policy, CUE.tasks(), jax.random.PRNGKey(0), 3, CUE.episode_length
    )
    assert episodes.returns.shape == (CUE.num_tasks, 3)
    given = acting.run_episodes(
        CUE, policy, CUE.tasks(), jax.random.PRNGKey(0), 3, CUE.episode_length, policy_state=start
    )
    np.testing.assert_array_equal(episodes.returns, given.returns)
