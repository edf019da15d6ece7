"""Checkpoints: resume, load_policy, refusals, damaged files, the non-finite guard, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distral_jax import checkpoint, presets
from distral_jax.checkpoint import CheckpointError, load_policy
from distral_jax.envs.gridworld import spread_goals
from distral_jax.envs.registry import make_family
from distral_jax.sharding import make_mesh
from distral_jax.train import train
from distral_jax.trainer import Trainer

CONFIG = presets.tiny(
    total_env_steps=960, eval_every=480, checkpoint_every=480, hidden_sizes=(8,), episode_length=20
)


def _env(num_tasks: int = 3):
    return make_family("gridworld", layout="two_rooms", goals=spread_goals("two_rooms", num_tasks))


def _leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short checkpointed run: (its directory, the policy params train returned, metrics)."""
    directory = tmp_path_factory.mktemp("run") / "ckpt"
    _, params, metrics = train(_env(), CONFIG, checkpoint_dir=directory, show_progress=False)
    return directory, params, metrics


def test_checkpoints_are_written_every_checkpoint_every_steps_and_at_the_end(trained):
    directory, _, _ = trained
    steps = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())
    assert steps == [480, 960]
    assert (directory / "960" / checkpoint.CHECKSUMS).is_file()


def test_load_policy_gives_back_exactly_the_trained_parameters(trained):
    directory, params, _ = trained
    make_policy, loaded = load_policy(directory, _env())
    for a, b in zip(_leaves(params), _leaves(loaded), strict=True):
        np.testing.assert_array_equal(a, b)
    obs = jnp.zeros((3, 5, _env().observation_size)).at[..., 0].set(1.0)
    actions = make_policy(loaded, deterministic=True)(obs, jax.random.PRNGKey(0))
    assert actions.shape == (3, 5)


def test_a_finished_run_relaunched_returns_its_results_without_training(trained):
    directory, params, metrics = trained
    history = []
    _, again, final = train(
        _env(),
        CONFIG,
        checkpoint_dir=directory,
        show_progress=False,
        progress_fn=lambda s, m: history.append(s),
    )
    assert history == [0, 480, 960]  # replayed to progress_fn
    for a, b in zip(_leaves(params), _leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(final["eval/episode_return"], metrics["eval/episode_return"])


def test_a_longer_budget_continues_the_run_as_if_it_had_been_planned(trained, tmp_path):
    directory, _, _ = trained
    import shutil  # noqa: PLC0415

    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    longer = CONFIG.replace(total_env_steps=1440)
    _, resumed, _ = train(_env(), longer, checkpoint_dir=copy, show_progress=False)
    _, straight, _ = train(_env(), longer, show_progress=False)
    for a, b in zip(_leaves(resumed), _leaves(straight), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "change, named",
    [
        (dict(config=CONFIG.replace(variant="a3c")), "config.variant"),
        (dict(config=CONFIG.replace(hidden_sizes=(16,))), "config.hidden_sizes"),
        (dict(env=_env(4)), "family.num_tasks"),
        (
            dict(env=make_family("gridworld", layout="two_rooms", goals=[0, 1, 2])),
            "family.task_parameters.goal",
        ),
        (dict(num_runs=2), "num_runs"),
    ],
    ids=["variant", "hidden_sizes", "task_count", "goals", "num_runs"],
)
def test_a_checkpoint_of_another_run_is_refused_naming_what_differs(trained, change, named):
    directory, _, _ = trained
    kwargs = dict(env=_env(), config=CONFIG, num_runs=1) | change
    with pytest.raises(CheckpointError, match=named.replace(".", r"\.")):
        train(
            kwargs["env"],
            kwargs["config"],
            num_runs=kwargs["num_runs"],
            checkpoint_dir=directory,
            show_progress=False,
        )


def test_a_family_with_the_same_sizes_and_tasks_but_other_walls_is_refused(tmp_path):
    wide = "#####\n#...#\n#...#\n#####"
    tall = "####\n#..#\n#..#\n#..#\n####"
    family = lambda layout: make_family("gridworld", layout=layout, goals=[5, 0])
    assert family(wide).observation_size == family(tall).observation_size == 6
    config = CONFIG.replace(total_env_steps=240, eval_every=240)
    train(family(wide), config, checkpoint_dir=tmp_path, show_progress=False)
    with pytest.raises(CheckpointError, match=r"family\.attributes\.layout\.free"):
        train(family(tall), config, checkpoint_dir=tmp_path, show_progress=False)


def test_load_policy_refuses_another_family(trained):
    directory, _, _ = trained
    with pytest.raises(CheckpointError, match="family.num_tasks"):
        load_policy(directory, _env(4))


@pytest.mark.parametrize("damage", ["truncate", "flip_a_bit"])
def test_a_damaged_checkpoint_file_is_an_error_naming_the_file(trained, tmp_path, damage):
    import shutil  # noqa: PLC0415

    copy = tmp_path / "copy"
    shutil.copytree(trained[0], copy)
    # The largest array file of the last step: the parameters and optimiser state.
    files = sorted((copy / "960" / "state").rglob("*"), key=lambda p: p.stat().st_size)
    victim = [p for p in files if p.is_file()][-1]
    data = bytearray(victim.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=str(victim.relative_to(copy / "960"))):
        load_policy(copy, _env())
    with pytest.raises(CheckpointError, match="damaged"):
        train(_env(), CONFIG, checkpoint_dir=copy, show_progress=False)


def test_history_metrics_round_trip_bit_for_bit():
    metrics = {
        "a": np.array([1.5, np.nan, -np.inf], np.float32),
        "b": np.float32(0.1),
        "c": np.zeros((2, 3), np.int32),
        "d": float("nan"),
        "e": 7,
        "f": np.array(2.0),
    }
    back = checkpoint.decode_metrics(checkpoint.encode_metrics(metrics))
    for name, value in metrics.items():
        assert type(back[name]) is type(value), name
        np.testing.assert_array_equal(np.asarray(back[name]), np.asarray(value))
        assert np.asarray(back[name]).dtype == np.asarray(value).dtype


@pytest.mark.parametrize("poisoned", ["params", "obs_stats"])
def test_non_finite_state_stops_training_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch, poisoned
):
    steps_per_update = 3 * CONFIG.num_envs * CONFIG.unroll_length  # 60
    original = Trainer.iteration

    def poison(self, state):  # NaN from the 11th update on
        state, metrics = original(self, state)
        bad = state.iteration > 10
        tree = getattr(state, poisoned)
        tree = jax.tree_util.tree_map(lambda p: jnp.where(bad, jnp.nan, p), tree)
        return state.replace(**{poisoned: tree}), metrics

    monkeypatch.setattr(Trainer, "iteration", poison)
    directory = tmp_path / "ckpt"
    config = CONFIG.replace(checkpoint_every=240, total_env_steps=1440, normalize_observations=True)
    with pytest.raises(FloatingPointError, match=f"non-finite .* env step {11 * steps_per_update}"):
        train(_env(), config, checkpoint_dir=directory, show_progress=False)
    steps = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())
    assert steps == [240, 480]  # the save due at 720 would have held the NaN state
    _, params = load_policy(directory, _env())
    assert all(np.isfinite(leaf).all() for leaf in _leaves(params))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(config=dict(checkpoint_every=0)), ValueError, "checkpoint_every"),
        (dict(config=dict(keep_checkpoints=0)), ValueError, "keep_checkpoints"),
        (dict(config=dict(checkpoint_every=1.5)), ValueError, "checkpoint_every"),
        (dict(checkpoint_dir="FILE"), CheckpointError, "is a file"),
        (dict(mesh="tasks"), TypeError, "`mesh` must be a jax.sharding.Mesh"),
        (dict(mesh="DATA_AXIS"), ValueError, "axis names must be 'runs' and/or 'tasks'"),
        (dict(num_runs=0), ValueError, "num_runs"),
    ],
    ids=lambda v: str(v) if not isinstance(v, dict) else "-".join(map(str, v)),
)
def test_bad_arguments_get_named_errors(tmp_path, kwargs, error, message):
    if "config" in kwargs:
        with pytest.raises(error, match=message):
            CONFIG.replace(**kwargs["config"])
        return
    if kwargs.get("checkpoint_dir") == "FILE":
        (tmp_path / "file").write_text("not a directory")
        kwargs = dict(checkpoint_dir=tmp_path / "file")
    if kwargs.get("mesh") == "DATA_AXIS":
        kwargs = dict(mesh=jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",)))
    with pytest.raises(error, match=message):
        train(_env(), CONFIG, show_progress=False, **kwargs)


def test_load_policy_named_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_policy(tmp_path / "nothing", _env())
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        load_policy(tmp_path / "empty", _env())


@pytest.mark.parametrize(
    "spec, message",
    [
        ("data=1", "expected comma-separated runs=<size> and/or tasks=<size>"),
        ("tasks=two", "expected comma-separated"),
        ("tasks=1,tasks=1", "expected comma-separated"),
        ("tasks=3", "needs 3 devices; this job has 1"),
    ],
)
def test_mesh_specs_of_the_command_line_get_named_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        make_mesh(spec)


def test_a_mesh_spec_builds_the_mesh():
    assert make_mesh("") is None
    mesh = make_mesh("tasks=1")
    assert mesh.axis_names == ("tasks",) and mesh.devices.size == 1
