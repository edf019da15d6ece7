"""What a relaunch and a checkpoint cost: compile time with a cold and a warm persistent
compilation cache, and the seconds per checkpoint save, for the programs of two experiments.

    python benchmarks/relaunch.py              # both cases, a few minutes on a 2-core CPU
    python benchmarks/relaunch.py --cases gridworld_deep

Each case runs twice in a fresh process: first with an empty compilation cache (a first
launch), then with the cache the first filled (a second launch). Each process compiles the
experiment's largest program, runs one jitted call, and saves the state five times:
``save_blocking_s`` is the time training waits (the state copied off the device),
``save_total_s`` the time until the checkpoint is on disk and checksummed.
Writes ``benchmarks/results/relaunch.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAVES = 5


def _experiment(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _case(name: str):
    """(family, config, runs) of an experiment's largest program."""
    if name == "gridworld_deep":  # the 2-column group: 3 variants x 8 seeds in one program
        study = _experiment("gridworld_deep")
        env, episode_length = study.make_design("two_rooms")
        config = study.Study().train.replace(episode_length=episode_length)
        return env, config, 3 * study.Study().seeds
    if name == "brax_multitask_small":  # halfcheetah_vel, 4 tasks, one run per program
        from distral_jax.envs import registry  # noqa: PLC0415

        config, seeds = _experiment("brax_multitask").PROFILES["small"]
        return registry.make_family("halfcheetah_vel", num_tasks=4), config, seeds
    raise ValueError(f"unknown case {name!r}")


def measure(name: str, workdir: Path) -> dict:
    """In this process: compile, one call, ``SAVES`` checkpoint saves."""
    import jax  # noqa: PLC0415

    from distral_jax.checkpoint import HostState, RunCheckpoints, run_signature  # noqa: PLC0415
    from distral_jax.cli import enable_compilation_cache  # noqa: PLC0415
    from distral_jax.trainer import Trainer  # noqa: PLC0415

    enable_compilation_cache()  # $JAX_COMPILATION_CACHE_DIR, set per case by main
    env, config, runs = _case(name)
    trainer = Trainer(env, config)
    keys = jax.random.split(jax.random.PRNGKey(0), runs)
    hparams = jax.tree_util.tree_map(lambda x: x.repeat(runs), config.hyperparams())
    compiled = trainer.compile(keys, hparams)
    state, _ = compiled.run(compiled.state)
    jax.block_until_ready(state)
    signature = run_signature(env, config, runs, hparams)
    checkpoints = RunCheckpoints(workdir / "ckpt", keep=SAVES)
    blocking, total = [], []
    for i in range(1, SAVES + 1):
        host = HostState(i, i, jax.device_get(keys[0]), 0.0, [])
        start = time.perf_counter()
        checkpoints.save(state, host, signature)
        blocking.append(time.perf_counter() - start)
        checkpoints.wait_until_finished()
        total.append(time.perf_counter() - start)
    checkpoints.close()
    step_dir = workdir / "ckpt" / str(SAVES)
    size = sum(f.stat().st_size for f in step_dir.rglob("*") if f.is_file())
    return {
        "runs_in_program": runs,
        "compile_s": compiled.compile_time_s,
        "save_blocking_s": blocking,
        "save_total_s": total,
        "checkpoint_mb": size / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["gridworld_deep", "brax_multitask_small"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, Path(args.workdir))))
        return 0
    import jax  # noqa: PLC0415

    results = {"device": jax.devices()[0].device_kind, "jax": jax.__version__, "cases": {}}
    for name in args.cases:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(Path(tmp) / "cache")}
            launches = {}
            for launch in ("first_launch", "second_launch"):
                workdir = Path(tmp) / launch
                command = [sys.executable, __file__, "--child", name, "--workdir", str(workdir)]
                done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
                launches[launch] = json.loads(done.stdout.strip().splitlines()[-1])
                row = launches[launch]
                print(
                    f"{name:22s} {launch:14s} compile {row['compile_s']:6.1f} s | save "
                    f"{min(row['save_blocking_s']):.3f} s blocking, "
                    f"{min(row['save_total_s']):.3f} s to disk | {row['checkpoint_mb']:.2f} MB",
                    flush=True,
                )
            results["cases"][name] = launches
    out = ROOT / "benchmarks" / "results" / "relaunch.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
