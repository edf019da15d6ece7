"""The launcher's command line, config files and metric writers."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
from pathlib import Path

import jax
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from distral_jax import cli, writers
from distral_jax.checkpoint import load_policy
from distral_jax.configs import TrainConfig
from distral_jax.envs.gridworld import two_rooms_design
from distral_jax.train import train

ROOT = Path(__file__).resolve().parents[1]

# A value other than the default for every TrainConfig field (valid together).
NON_DEFAULT = dict(
    variant="custom",
    architecture="shared",
    c_kl=0.02,
    c_ent=0.03,
    distill=False,
    beta=50.0,
    learner="ppo",
    regularizer="sampled",
    num_envs=8,
    unroll_length=4,
    iterations_per_call=3,
    total_env_steps=1234,
    episode_length=7,
    hidden_sizes=(5, 6),
    core="gru",
    eval_every=999,
    eval_envs=3,
    learning_rate=1e-4,
    gamma=0.9,
    lambda_=0.8,
    value_coef=0.25,
    distill_coef=0.5,
    freeze_prior=True,
    task_start_steps=(0, 500, 900),
    max_grad_norm=2.0,
    ppo_epochs=2,
    ppo_minibatches=2,
    ppo_clip=0.3,
    ppo_normalize_advantages=True,
    normalize_observations=True,
    action_squash=False,
    replay_capacity=5000,
    sac_batch_size=32,
    sac_grad_updates=3,
    sac_warmup_steps=100,
    sac_tau=0.01,
    sac_auto_temperature=True,
    sac_target_entropy=-1.5,
    seed=7,
    checkpoint_every=12_345,
    keep_checkpoints=5,
)


def _flags(values: dict) -> list[str]:
    out = []
    for name, value in values.items():
        flag = "--" + name.rstrip("_").replace("_", "-") + ("_" if name.endswith("_") else "")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, tuple):
            out += [flag, *map(str, value)]
        else:
            out += [flag, str(value)]
    return out


def _launcher():
    spec = importlib.util.spec_from_file_location("launcher", ROOT / "experiments" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_train_config_field_is_a_flag_and_round_trips(tmp_path):
    custom_c_kl = dict(NON_DEFAULT, c_kl=0.0)  # no KL to an undistilled prior
    assert set(custom_c_kl) == {f.name for f in dataclasses.fields(TrainConfig)}
    launch = cli.parse(cli.Launch, ["point_mass", "--num-tasks", "3", *_flags(custom_c_kl)])
    assert launch.train == TrainConfig(**custom_c_kl)
    assert launch.family == cli.PointMassOptions(num_tasks=3)
    for name in ("run.yaml", "run.json"):
        cli.save(tmp_path / name, launch)
        assert cli.load(tmp_path / name, cli.Launch) == launch
        # Flags after --config override the file.
        again = cli.parse(cli.Launch, ["--config", str(tmp_path / name), "--seed", "9"])
        assert again == dataclasses.replace(launch, train=launch.train.replace(seed=9))


def _config_file(tmp_path: Path, **edits) -> str:
    data = cli.to_dict(cli.Launch(family=cli.TwoRoomsOptions()))
    for key, value in edits.items():
        section, _, field = key.partition("__")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return str(path)


BAD_COMMAND_LINES = [
    (lambda p: ["nope"], "nope"),
    (lambda p: ["gridworld", "--num-envs", "x"], "--num-envs"),
    (lambda p: ["gridworld", "--variant", "zzz"], "invalid choice 'zzz' for argument '--variant'"),
    (lambda p: ["gridworld", "--learner", "dqn"], "--learner"),
    (lambda p: ["--config", str(p / "missing.yaml")], "no such file"),
    (lambda p: ["--config"], "expected a file name"),
    (lambda p: ["--config", _config_file(p, train__bogus=1)], "unknown key(s) ['bogus']"),
    (lambda p: ["--config", _config_file(p, family={"name": "nope"})], "unknown family 'nope'"),
    (lambda p: ["--config", _config_file(p, version=99)], "config version 99"),
    (
        lambda p: ["--config", _config_file(p, train__learner="dqn")],
        "must be one of ['a2c', 'ppo', 'sac']",
    ),
    (lambda p: ["--config", _config_file(p, train__num_envs=2.5)], "expected an integer, got 2.5"),
    (lambda p: ["--config", _config_file(p, train__seed="x")], "expected int, got 'x'"),
    (lambda p: ["--config", _config_file(p, train__distill="yes")], "expected true or false"),
]


@pytest.mark.parametrize("make_argv, message", BAD_COMMAND_LINES)
def test_bad_command_lines_exit_with_a_message(tmp_path, capsys, make_argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(cli.Launch, make_argv(tmp_path))
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    text = " ".join((captured.out + captured.err).split())  # undo the help boxes' wrapping
    for box in "│╭╮╰╯─":
        text = text.replace(box, " ")
    assert message in " ".join(text.split())


def test_launcher_reports_bad_family_options(tmp_path, capsys):
    code = _launcher().main(["gridworld", "--layout", "nowhere", "--runs-dir", str(tmp_path)])
    assert code == 2
    assert "layout: unknown name 'nowhere'" in capsys.readouterr().err


TIMING = ("training/sps", "training/sps_all_runs", "training/compile_time_s")


def _metric_lines(path: Path) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in line.items() if k not in TIMING} for line in lines]


def _tiny_two_rooms(runs_dir, name: str, total: int, eval_every: int = 3200) -> list[str]:
    """The launcher's command line for a few seconds of two tiny two-rooms tasks."""
    return [
        "two_rooms", "--num-tasks", "2", "--total-env-steps", str(total), "--eval-every",
        str(eval_every), "--iterations-per-call", "10", "--num-envs", "8", "--episode-length",
        "30", "--hidden-sizes", "16", "--runs-dir", str(runs_dir), "--name", name,
    ]  # fmt: skip


def test_launcher_run_folder_and_rerun_from_its_config(tmp_path):
    launcher = _launcher()
    argv = [*_tiny_two_rooms(tmp_path, "tiny", total=6400), "--quiet"]
    assert launcher.main(argv) == 0
    run = tmp_path / "tiny"
    assert {p.name for p in run.iterdir()} >= {
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
        "curves.png",
    }
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())
    first = _metric_lines(run / "metrics.jsonl")
    assert [line["step"] for line in first] == [0, 3200, 6400]
    assert launcher.main(["--config", str(run / "config.yaml")]) == 0
    assert _metric_lines(run / "metrics.jsonl") == first
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("tiny-")]
    assert len(moved) == 1, "the first run is kept, not overwritten"


def test_launcher_resumes_in_the_same_run_folder(tmp_path, capsys):
    """With SAC (discrete actions): its replay buffers, target critics and temperatures are in
    the checkpoint, so the resumed run's evaluations are the uninterrupted run's."""
    launcher = _launcher()
    argv = [
        "two_rooms", "--num-tasks", "2", "--eval-every", "3200", "--iterations-per-call", "10",
        "--num-envs", "8", "--episode-length", "30", "--hidden-sizes", "16", "--quiet",
        "--checkpoint-every", "3200", "--no-compilation-cache", "--learner", "sac",
        "--replay-capacity", "2000", "--sac-batch-size", "32", "--sac-grad-updates", "2",
        "--sac-warmup-steps", "400", "--sac-auto-temperature",
    ]  # fmt: skip
    straight = [*argv, "--runs-dir", str(tmp_path / "a"), "--name", "x"]
    assert launcher.main([*straight, "--total-env-steps", "6400"]) == 0
    # The same run in two launches: the second resumes the first's checkpoint.
    ckpt = ["--checkpoint-dir", str(tmp_path / "ckpt"), "--runs-dir", str(tmp_path / "b")]
    assert launcher.main([*argv, *ckpt, "--name", "x", "--total-env-steps", "3200"]) == 0
    capsys.readouterr()
    assert launcher.main([*argv, *ckpt, "--name", "x", "--total-env-steps", "6400"]) == 0
    assert "from env step 3,200" in capsys.readouterr().out  # says where it resumed
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["x"]  # resumed in place
    resumed = _metric_lines(tmp_path / "b" / "x" / "metrics.jsonl")
    assert [line["step"] for line in resumed] == [0, 3200, 6400]
    assert resumed == _metric_lines(tmp_path / "a" / "x" / "metrics.jsonl")
    # load_policy reads the policies alone (the replay stays on disk), and they act.
    make_policy, params = load_policy(tmp_path / "ckpt", two_rooms_design(2))
    obs = np.zeros((2, 3, two_rooms_design(2).observation_size), np.float32)
    assert make_policy(params)(obs, jax.random.PRNGKey(0)).shape == (2, 3)
    events = EventAccumulator(str(tmp_path / "b" / "x"))
    events.Reload()
    assert [e.step for e in events.Scalars("eval/episode_return_mean")] == [0, 3200, 6400]
    # Another run's checkpoint: a named error, exit status 2, and the run folder untouched.
    before = {p.name: p.read_bytes() for p in (tmp_path / "b" / "x").iterdir()}
    other = [*argv, *ckpt, "--name", "x", "--total-env-steps", "6400", "--learning-rate", "0.1"]
    assert launcher.main(other) == 2
    assert {p.name: p.read_bytes() for p in (tmp_path / "b" / "x").iterdir()} == before
    assert "config.learning_rate: 0.003 in the checkpoint, 0.1 now" in capsys.readouterr().err
    # A budget below the checkpoint's step: refused too.
    assert launcher.main([*argv, *ckpt, "--name", "x", "--total-env-steps", "3200"]) == 2


def test_writers_record_what_progress_fn_received(tmp_path):
    received: list[tuple[int, dict]] = []
    config = TrainConfig(
        total_env_steps=3200, eval_every=1600, iterations_per_call=10, num_envs=8,
        episode_length=30, hidden_sizes=(16,), eval_envs=4,
    )  # fmt: skip
    jsonl = writers.JsonlWriter(tmp_path / "metrics.jsonl")
    board = writers.TensorBoardWriter(tmp_path / "tb")
    with writers.progress_writer(jsonl, board) as write:
        train(
            two_rooms_design(2),
            config,
            progress_fn=lambda s, m: (received.append((s, m)), write(s, m)),
            show_progress=False,
        )
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    checked = 0
    for step, metrics in received:
        for tag, value in writers.scalars(metrics).items():
            if not np.isfinite(value):
                continue
            recorded = {e.step: e.value for e in events.Scalars(tag)}
            assert recorded[step] == pytest.approx(np.float32(value), rel=1e-6), tag
            checked += 1
    assert {"eval/episode_return/task_0", "eval/episode_return_mean", "training/kl/mean"} <= tags
    assert {"eval/pi0_episode_return_mean", "training/entropy/task_1", "training/sps"} <= tags
    assert checked > 50
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [step for step, _ in received]
    for line, (_, metrics) in zip(lines, received, strict=True):
        np.testing.assert_allclose(
            line["eval/episode_return"], np.asarray(metrics["eval/episode_return"]), rtol=1e-6
        )


def test_help_lists_every_field_with_its_docstring(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse(cli.Launch, ["gridworld", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for field in dataclasses.fields(TrainConfig):
        flag = _flags({field.name: getattr(TrainConfig(), field.name)})[0]
        flag = flag.replace("--no-", "--")
        assert flag in text, flag
    assert "environments per task (E)" in text and "PPO's clipping ε" in text


def test_yaml_numbers_written_by_hand_are_read_as_numbers(tmp_path):
    path = tmp_path / "hand.yaml"
    path.write_text("family:\n  name: point_mass\ntrain:\n  learning_rate: 3e-4\n  seed: 2\n")
    launch = cli.load(path, cli.Launch)
    assert launch.train.learning_rate == 3e-4 and launch.family == cli.PointMassOptions()


def test_several_runs_are_named_by_run_not_by_task():
    metrics = {"eval/episode_return": np.zeros((2, 3)), "eval/episode_return_mean": np.ones(2)}
    names = writers.scalars(metrics, num_runs=2)
    assert "eval/episode_return/run_1/task_2" in names
    assert names["eval/episode_return_mean/run_1"] == 1.0
    assert not any("task" in name for name in names if "_mean" in name)


def test_the_launcher_trains_at_the_family_s_own_time_limit(tmp_path):
    """gymnax CartPole-v1 trained at episode_length 100 made a return of 100 look like
    success: the launcher now defaults to the family's own limit, keeps one the user sets, and
    ``train`` warns when it differs."""
    launcher = _launcher()
    cartpole = cli.parse(cli.Launch, ["gymnax", "--env-id", "CartPole-v1", "--quiet"])
    env = cartpole.family.build()
    assert env.episode_length == 500
    resolved = launcher.with_family_episode_length(cartpole, env, explicit=False)
    assert resolved.train.episode_length == 500
    chosen = cli.parse(cli.Launch, ["gymnax", "--episode-length", "200"])
    assert (
        launcher.with_family_episode_length(chosen, env, explicit=True).train.episode_length == 200
    )
    assert not launcher.sets_episode_length(["gymnax", "--env-id", "CartPole-v1"])
    assert launcher.sets_episode_length(["gymnax", "--episode-length=200"])
    assert launcher.sets_episode_length(["--config", "run.yaml"])
    # End to end on the cue recall (the cheapest family with a time limit of its own).
    argv = [
        "cue_recall", "--total-env-steps", "64", "--eval-every", "64", "--num-envs", "4",
        "--unroll-length", "4", "--iterations-per-call", "2", "--hidden-sizes", "8",
        "--runs-dir", str(tmp_path), "--name", "cue", "--quiet",
    ]  # fmt: skip
    assert launcher.main(argv) == 0
    saved = cli.load(tmp_path / "cue" / "config.yaml", cli.Launch)
    assert saved.train.episode_length == saved.family.build().episode_length
    with pytest.warns(UserWarning, match="episode_length"):
        assert (
            launcher.main([*argv[:-3], "--name", "cue5", "--episode-length", "5", "--quiet"]) == 0
        )


def test_a_finished_run_relaunched_is_done_and_rewrites_nothing(tmp_path, capsys):
    """The budget is rounded up to whole calls (5,000 → 6,400 here); relaunching the same
    command, or its saved config, once the run finished exits 0 and touches no file (it was
    refused: "past total_env_steps")."""
    launcher = _launcher()
    argv = [
        *_tiny_two_rooms(tmp_path / "runs", "done", total=5000),
        *("--checkpoint-dir", str(tmp_path / "ckpt")),
    ]
    assert launcher.main([*argv, "--quiet"]) == 0
    run = tmp_path / "runs" / "done"
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert launcher.main(argv) == 0
    out = capsys.readouterr().out
    assert "already finished at env step 6,400" in out and "wrote" not in out
    assert launcher.main(["--config", str(run / "config.yaml")]) == 0
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["done"]


def test_a_refused_launch_leaves_the_run_folder_alone(tmp_path, capsys):
    """Everything ``train`` refuses is refused before the run folder is touched (a mesh that
    does not divide the tasks, a curriculum of the wrong length...): the earlier run's folder is
    not moved aside (it was, leaving an empty metrics.jsonl in its place)."""
    launcher = _launcher()
    argv = [*_tiny_two_rooms(tmp_path, "good", total=3200), "--quiet"]
    assert launcher.main(argv) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "good").iterdir()}
    capsys.readouterr()
    assert launcher.main([*argv, "--task-start-steps", "0"]) == 2
    assert "task_start_steps" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["good"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "good").iterdir()} == before


def test_progress_redirected_to_a_file_has_no_bar_frames(tmp_path, capfd):
    """Not on a terminal (a log file, a batch job), the launcher prints one line per
    evaluation and no carriage-return progress-bar frames."""
    launcher = _launcher()
    argv = _tiny_two_rooms(tmp_path, "log", total=3200, eval_every=1600)
    assert launcher.main(argv) == 0
    out, err = capfd.readouterr()
    assert "\r" not in out + err
    steps = [line.split("|")[0].split()[1] for line in out.splitlines() if line.startswith("step")]
    assert steps == ["0", "1,600", "3,200"]


def test_help_lists_the_variants_and_errors_name_the_flag(capsys):
    with pytest.raises(SystemExit):
        cli.parse(cli.Launch, ["two_rooms", "--help"])
    help_text = capsys.readouterr().out
    assert "--variant {a3c,a3c_multitask,a3c_2col,distral_kl_1col," in help_text
    launcher = _launcher()
    for family in ("two_rooms", "gridworld"):
        assert launcher.main([family, "--num-tasks", "0", "--quiet"]) == 2
        assert "`num_tasks`: expected 1..50 here, got 0" in capsys.readouterr().err


def _readme_family_module() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- tested: own family -->\s*```python\n(.*?)```", text, re.S)
    assert match, "the README lost its tested own-family example"
    return match.group(1)


def test_a_family_of_one_s_own_is_launched_by_registering_it(tmp_path, monkeypatch):
    """The README's example: a module that registers its options (``cli.register_family``),
    named with ``--imports``; the saved config remembers it, so ``--config`` repeats the run."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "FAMILY_OPTIONS", dict(cli.FAMILY_OPTIONS))  # undone after the test
    monkeypatch.setattr(cli, "FamilyOptions", cli.FamilyOptions)
    (tmp_path / "my_families.py").write_text(_readme_family_module())
    launcher = _launcher()
    argv = [
        "two_arms", "--num-tasks", "3", "--imports", "my_families", "--total-env-steps", "960",
        "--eval-every", "960", "--iterations-per-call", "10", "--num-envs", "8",
        "--unroll-length", "2", "--episode-length", "1", "--hidden-sizes", "4",
        "--runs-dir", "runs", "--name", "mine", "--quiet",
    ]  # fmt: skip
    assert launcher.main(argv) == 0
    saved = (tmp_path / "runs" / "mine" / "config.yaml").read_text()
    assert "two_arms" in saved and "my_families" in saved
    assert launcher.main(["--config", "runs/mine/config.yaml", "--name", "again"]) == 0
    assert (tmp_path / "runs" / "again" / "summary.json").is_file()
    with pytest.raises(ValueError, match="taken"):
        cli.register_family(
            dataclasses.make_dataclass(
                "Other", [], namespace={"name": "two_arms", "build": lambda s: None}
            )
        )
    assert launcher.main(["two_arms", "--imports", "no_such_module"]) == 2
