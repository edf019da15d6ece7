"""Train any registered task family with any variant and learner; one run folder per run.

    python experiments/train.py two_rooms --variant distral_klent_2col --total-env-steps 300000 \
        --episode-length 50 --eval-every 25600 --iterations-per-call 10
    python experiments/train.py halfcheetah_vel --learner ppo --num-envs 512 --unroll-length 20 \
        --hidden-sizes 64 64 --learning-rate 3e-4 --ppo-minibatches 8 --episode-length 1000 \
        --total-env-steps 20000000 --eval-every 1000000 --normalize-observations
    python experiments/train.py --config runs/two_rooms_distral_klent_2col_a2c/config.yaml
    python experiments/train.py point_mass --checkpoint-dir ckpt/pm   # killed? rerun to resume
    python experiments/train.py two_rooms --num-tasks 8 --mesh tasks=8   # 8 devices of one host
    python experiments/train.py --help            # every flag, with its field's docstring

Every field of ``TrainConfig`` and of the family's options is a flag (``distral_jax.cli``).
The run folder ``<runs_dir>/<name>/`` gets ``config.yaml`` (the resolved config: rerun it with
``--config``), ``metrics.jsonl`` (one line per evaluation), TensorBoard event files
(``tensorboard --logdir runs/``), ``summary.json`` and ``curves.png`` (each task's return and
π_0's over the run). An earlier run of the same name is moved
aside, never overwritten, except by the run it was: with ``--checkpoint-dir`` holding this run's
checkpoint, the relaunch resumes it in the same folder and rewrites ``metrics.jsonl`` and the
TensorBoard curves from the checkpoint's evaluations onwards, identical up to where they were.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import jax
import numpy as np

from distral_jax import analysis, checkpoint, cli
from distral_jax.train import check_arguments, train
from distral_jax.writers import JsonlWriter, TensorBoardWriter, WandbWriter, progress_writer

# Shown after each evaluation (when not --quiet); the success rates where the family has one.
PRINTED = ("eval/episode_return_mean", "eval/pi0_episode_return_mean", "training/sps")
PRINTED_IF_DEFINED = ("eval/success_mean",)


def print_progress(step: int, metrics: dict) -> None:
    from tqdm.auto import tqdm  # noqa: PLC0415 (tqdm.write keeps the bar below the lines)

    names = list(PRINTED) + [
        name
        for name in PRINTED_IF_DEFINED
        if name in metrics and np.all(np.isfinite(metrics[name]))
    ]
    cells = [f"{name.split('/')[-1]} {np.mean(metrics[name]):.4g}" for name in names]
    tqdm.write(f"step {step:>10,d} | " + " | ".join(cells))


def with_family_episode_length(launch: cli.Launch, env, explicit: bool) -> cli.Launch:
    """``launch`` with ``episode_length`` set to the family's own time limit where it has one
    (``env.episode_length``: gymnax's Gym limits, XLand-MiniGrid's ``max_steps``, the cue
    recall's length) and the command line did not set it. One it set is kept (``train`` warns
    when it differs from the family's)."""
    limit = getattr(env, "episode_length", None)
    if limit is None or explicit:
        return launch
    return dataclasses.replace(launch, train=launch.train.replace(episode_length=int(limit)))


def sets_episode_length(argv: list[str]) -> bool:
    """Whether the command line chooses ``episode_length`` (a flag, or a saved config)."""
    return any(
        a in ("--episode-length", "--config") or a.startswith(("--episode-length=", "--config="))
        for a in argv
    )


def run(launch: cli.Launch, episode_length_set: bool = True) -> Path | None:
    """Trains as ``launch`` says; returns the run folder (None: the run had already finished,
    nothing was written).

    In a multi-host job every process trains; process 0 alone writes the run folder.
    ``episode_length_set``: False when the command line left ``episode_length`` at its
    default, which then becomes the family's own time limit where it has one.
    """
    mesh = launch.devices.initialize()
    launch.persistence.apply()
    env = launch.family.build()
    launch = with_family_episode_length(launch, env, episode_length_set)
    if launch.tensorboard:
        import tensorboardX  # noqa: F401, PLC0415 (fail before the run folder is made)
    # Everything train would refuse (family, config, mesh) is refused before any folder is
    # touched: a refused launch must not move a good run folder aside.
    check_arguments(env, launch.train, launch.num_runs, mesh)
    checkpoint_dir = launch.persistence.checkpoint_dir
    run_dir = Path(launch.runs_dir) / launch.run_name
    # Checked before the run folder is touched: another run's checkpoint is refused here.
    step = None
    if checkpoint_dir is not None:
        step = checkpoint.resume_step(checkpoint_dir, env, launch.train, launch.num_runs)
    resuming = step is not None
    primary = jax.process_index() == 0
    if step is not None and step == launch.train.final_env_step(env.num_tasks):
        # A requeued job whose run already finished: nothing to train, nothing to rewrite.
        print(f"{run_dir}: this run already finished at env step {step:,d} (checkpoint in "
              f"{checkpoint_dir}); nothing to do")  # fmt: skip
        return None
    if resuming and primary:
        print(f"resuming {run_dir} from env step {step:,d} (checkpoint in {checkpoint_dir})")
    writers = []
    if primary:
        if not (resuming and run_dir.is_dir()):
            run_dir = analysis.fresh_output_dir(run_dir)
        cli.save(run_dir / "config.yaml", launch)
        writers.append(JsonlWriter(run_dir / "metrics.jsonl", rewrite=resuming))
        if launch.tensorboard:
            writers.append(TensorBoardWriter(run_dir, launch.num_runs, rewrite=resuming))
        if launch.wandb:
            config = cli.to_dict(launch)
            writers.append(
                WandbWriter(launch.wandb_project, launch.run_name, config, launch.num_runs)
            )
        if not launch.quiet:
            writers.append(_Printer())
        history = _History()
        writers.append(history)
    start = time.perf_counter()
    with progress_writer(*writers) as progress_fn:
        _, _, metrics = train(
            env,
            launch.train,
            progress_fn=progress_fn,
            num_runs=launch.num_runs,
            show_progress=not launch.quiet,
            checkpoint_dir=checkpoint_dir,
            mesh=mesh,
        )
    summary = {
        "family": launch.family.name,
        "num_tasks": env.num_tasks,
        "device": jax.devices()[0].device_kind,
        "devices": len(jax.devices()),
        "processes": jax.process_count(),
        "wall_time_s": time.perf_counter() - start,
        "final": metrics,
    }
    if primary:
        analysis.write_json(run_dir / "summary.json", summary)
        history.plot(run_dir / "curves.png", f"{launch.run_name}: evaluation returns")
    return run_dir


class _History:
    """Keeps the evaluations' returns for the run's learning-curve PNG."""

    def __init__(self):
        self.steps, self.returns, self.pi0 = [], [], []

    def __call__(self, step: int, metrics: dict) -> None:
        self.steps.append(step)
        self.returns.append(np.asarray(metrics["eval/episode_return"]))
        self.pi0.append(np.asarray(metrics["eval/pi0_episode_return"]))

    def plot(self, path: Path, title: str) -> None:
        """``curves.png``: each task's return, and π_0's, over the run (median over runs)."""
        if self.steps:
            analysis.plot_task_curves(
                path, np.asarray(self.steps), np.stack(self.returns), np.stack(self.pi0), title
            )

    def close(self) -> None:
        pass


class _Printer:
    def __call__(self, step: int, metrics: dict) -> None:
        print_progress(step, metrics)

    def close(self) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.import_family_modules(argv)  # families of the user's own (cli.register_family)
    except ValueError as error:
        print(f"{Path(sys.argv[0]).name}: error: {error}", file=sys.stderr)
        return 2
    launch = cli.parse(cli.Launch, argv)
    try:
        run_dir = run(launch, episode_length_set=sets_episode_length(argv))
    except (ValueError, ImportError) as error:  # bad family options, missing optional packages
        print(f"{Path(sys.argv[0]).name}: error: {error}", file=sys.stderr)
        return 2
    except FloatingPointError as error:  # the trainer stopped a run that went non-finite
        print(f"{Path(sys.argv[0]).name}: training stopped: {error}", file=sys.stderr)
        return 1
    if run_dir is not None and not launch.quiet:
        print(f"wrote {run_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
