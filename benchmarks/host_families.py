"""Throughput of the EnvPool families (Meta-World MT10, DMC walker) and SAC on reach-v3.

    python benchmarks/host_families.py                     # throughput, MT50 start-up, reach
    python benchmarks/host_families.py --only throughput   # or: startup, reach

Writes ``benchmarks/results/host_families.json`` and renders it, after ``compare.py``'s
sections, into ``benchmarks/RESULTS.md`` (``compare_report.py``).

  * **throughput**, per family: the simulator alone, stepped from Python (EnvPool's ``send`` to
    every task's pool, then ``recv``, random actions: no JAX at all); the same simulator
    stepped through the family inside a jitted ``lax.scan`` (one host call per step, random
    actions: what the compiled loop costs around it); and training, ``Trainer.run`` of
    Distral-SAC (``distral_klent_2col``) at the Meta-World study's ``small`` settings (one
    gradient step of 128 transitions per 4 env steps of each task, hidden 64 x 64), after its
    warm-up. Env steps per second over all tasks; each row the best of ``--repeats`` windows.
  * **startup**: MT50 with ``--startup-envs`` environments per task: the family's
    construction, then its first reset (every task's pool created and reset), wall time and
    the resident memory of a fresh process before and after.
  * **reach**: independent SAC (``a3c``) on ``metaworld`` with the single task reach-v3 until
    the sampled policy's success rate (10 evaluation episodes) first reaches 0.9: env steps
    and wall time (compilation included), and the success curve.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Literal

import jax
import numpy as np
import tyro

from distral_jax.envs.base import batch_reset, batch_step
from distral_jax.envs.registry import make_family
from distral_jax.envs.wrappers import wrap_for_training
from distral_jax.train import train
from distral_jax.trainer import Trainer, runs_hparams

sys.path.insert(0, str(Path(__file__).parent))
import compare_report  # noqa: E402

OUT = Path(__file__).with_name("results") / "host_families.json"

sys.path.insert(0, str(Path(__file__).parents[1] / "experiments"))
import metaworld_mt  # noqa: E402

# The Meta-World study's small profile, per task: one gradient step of 128 per 4 env steps,
# hidden 64 x 64; a short warm-up and one evaluation episode, since only Trainer.run is timed.
# (Hidden 256 x 256 at one gradient step per env step, 32 of 128 per iteration, measured 237
# env steps/s on MT10 and 228 on the walker.)
SAC_SMALL = metaworld_mt.PROFILES["small"].train.replace(
    variant="distral_klent_2col", sac_warmup_steps=32, iterations_per_call=10, eval_envs=1
)

# Independent SAC on reach-v3: the same learner with 8 envs x 4 steps per iteration.
SAC_REACH = SAC_SMALL.replace(
    variant="a3c",
    num_envs=8,
    unroll_length=4,
    replay_capacity=150_000,
    sac_warmup_steps=2_000,
    iterations_per_call=100,
    eval_envs=10,
    episode_length=500,
    total_env_steps=150_000,
    eval_every=9_600,
)


@dataclasses.dataclass(frozen=True)
class Args:
    """Throughput of the EnvPool families and SAC on reach-v3 (flags from these fields)."""

    only: Literal["all", "throughput", "startup", "reach"] = "all"
    """which measurement"""
    families: tuple[str, ...] = ("metaworld_mt10", "dmc_walker")
    """families of the throughput rows"""
    envs: int = 4
    """environments per task (throughput)"""
    steps: int = 500
    """env steps per window of the simulator rows"""
    calls: int = 3
    """Trainer.run calls per window (each iterations_per_call iterations)"""
    repeats: int = 3
    """windows per row (the best is kept)"""
    startup_envs: int = 4
    """environments per task of the MT50 start-up"""
    reach_seed: int = 0
    """the reach run's seed"""
    out: str = str(OUT)
    """the JSON written (other measurements already in it are kept)"""


def _rss_mib() -> float:
    """The process's resident memory now, MiB (Linux; the peak so far elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def simulator_alone(family, envs: int, steps: int, repeats: int) -> float:
    """EnvPool's pools of every task stepped from Python (send all, then recv all)."""
    pools = [family.make_pool(t, envs, seed=t) for t in range(family.num_tasks)]
    for pool in pools:
        pool.reset()
    rng = np.random.default_rng(0)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            for pool in pools:
                action = rng.uniform(-1, 1, (envs, family.action_size))
                pool.send(action.astype(pool.action_space.dtype), np.arange(envs))
            for pool in pools:
                pool.recv()
        best = max(best, steps * envs * family.num_tasks / (time.perf_counter() - start))
    return best


def through_the_family(family, envs: int, steps: int, repeats: int) -> float:
    """The family's reset and step under jit, ``steps`` host calls in one ``lax.scan``."""
    env = wrap_for_training(family, family.episode_length)
    tasks, n = family.tasks(), family.num_tasks
    state = jax.jit(lambda k: batch_reset(env, jax.random.split(k, (n, envs)), tasks))(
        jax.random.PRNGKey(0)
    )

    @jax.jit
    def run(state, key):
        def body(s, k):
            a = jax.random.uniform(k, (n, envs, family.action_size), minval=-1, maxval=1)
            return batch_step(env, s, a, tasks), None

        return jax.lax.scan(body, state, jax.random.split(key, steps))[0]

    state = jax.block_until_ready(run(state, jax.random.PRNGKey(1)))  # compiles
    best = 0.0
    for r in range(repeats):
        start = time.perf_counter()
        state = jax.block_until_ready(run(state, jax.random.PRNGKey(2 + r)))
        best = max(best, steps * envs * n / (time.perf_counter() - start))
    return best


def training(family, envs: int, calls: int, repeats: int) -> dict:
    """``Trainer.run`` of Distral-SAC at the study's small settings, after its warm-up."""
    config = SAC_SMALL.replace(num_envs=envs, episode_length=family.episode_length)
    trainer = Trainer(family, config)
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    start = time.perf_counter()
    compiled = trainer.compile(keys, runs_hparams(config, None, 1))
    compile_s = time.perf_counter() - start
    state = compiled.state
    state = jax.block_until_ready(compiled.run(state)[0])  # the warm-up (one call)
    steps = config.iterations_per_call * trainer.env_steps_per_iteration * calls
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            state = compiled.run(state)[0]
        jax.block_until_ready(state)
        best = max(best, steps / (time.perf_counter() - start))
    return {"sps": best, "compile_s": compile_s, "rss_mib": _rss_mib()}


def measure_throughput(args: Args) -> list[dict]:
    rows = []
    for name in args.families:
        family = make_family(name)
        row = {"family": name, "tasks": family.num_tasks, "envs_per_task": args.envs}
        row["simulator_alone_sps"] = simulator_alone(family, args.envs, args.steps, args.repeats)
        row["family_jitted_sps"] = through_the_family(family, args.envs, args.steps, args.repeats)
        row["training"] = training(family, args.envs, args.calls, args.repeats)
        row["training_config"] = {
            k: getattr(SAC_SMALL, k)
            for k in ("variant", "hidden_sizes", "sac_batch_size", "sac_grad_updates")
        } | {"unroll_length": SAC_SMALL.unroll_length}
        print(
            f"{name}: simulator alone {row['simulator_alone_sps']:,.0f}, through the family "
            f"{row['family_jitted_sps']:,.0f}, training {row['training']['sps']:,.0f} env "
            f"steps/s (compile {row['training']['compile_s']:.1f} s)",
            flush=True,
        )
        rows.append(row)
    return rows


def measure_startup(envs: int) -> dict:
    """MT50's construction, then its first reset (every pool created) timed apart from its
    compilation, and a second reset; wall times and the peak resident memory."""
    rss0 = _rss_mib()
    start = time.perf_counter()
    family = make_family("metaworld_mt50")
    built = time.perf_counter() - start
    env = wrap_for_training(family, family.episode_length)
    fn = jax.jit(lambda k: batch_reset(env, jax.random.split(k, (50, envs)), family.tasks()))
    start = time.perf_counter()
    compiled = fn.lower(jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(compiled(jax.random.PRNGKey(0)))  # every pool created and reset
    first = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(compiled(jax.random.PRNGKey(0)))  # the pools exist: a reset only
    again = time.perf_counter() - start
    result = {
        "tasks": 50,
        "envs_per_task": envs,
        "construction_s": built,
        "compile_s": compile_s,
        "first_reset_s": first,
        "reset_again_s": again,
        "rss_before_mib": rss0,
        "rss_after_mib": _rss_mib(),
    }
    print(
        f"MT50 x {envs} envs: construction {built:.2f} s, first reset (pools made) {first:.2f} "
        f"s, reset {again:.3f} s, peak RSS {rss0:,.0f} -> {result['rss_after_mib']:,.0f} MiB",
        flush=True,
    )
    return result


def _startup_in_a_fresh_process(envs: int) -> dict:
    import subprocess  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "startup.json"
        command = [sys.executable, __file__, "--only", "startup", "--startup-envs", str(envs)]
        subprocess.run([*command, "--out", str(out)], check=True)
        return json.loads(out.read_text())["startup"]


def measure_reach(seed: int) -> dict:
    """Independent SAC on reach-v3 until the sampled success rate first reaches 0.9."""
    family = make_family("metaworld", tasks=("reach-v3",))
    history: list[tuple[int, float, float]] = []
    start = time.perf_counter()

    def progress(step, metrics):
        history.append((step, float(np.mean(metrics["eval/success"])), time.perf_counter()))

    train(family, SAC_REACH.replace(seed=seed), progress_fn=progress, show_progress=False)
    reached = next(((s, t) for s, x, t in history if x >= 0.9), None)
    result = {
        "config": {k: v for k, v in dataclasses.asdict(SAC_REACH).items() if k != "variant"}
        | {"variant": SAC_REACH.variant, "seed": seed},
        "curve": [(s, x) for s, x, _ in history],
        "steps_to_0.9": None if reached is None else reached[0],
        "wall_s_to_0.9": None if reached is None else reached[1] - start,
        "wall_s": time.perf_counter() - start,
    }
    where = (
        "never"
        if reached is None
        else f"at {reached[0]:,} env steps, {reached[1] - start:.0f} s after the start"
    )
    print(f"reach-v3, independent SAC: success >= 0.9 {where}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(Args, args=argv)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {}
    result["machine"] = {
        "processor": platform.processor() or platform.machine(),
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
    }
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result["command"] = " ".join(["python benchmarks/host_families.py", *(argv or sys.argv[1:])])
    if args.only == "startup":
        result["startup"] = measure_startup(args.startup_envs)
    elif args.only == "all":  # in a fresh process: its memory is MT50's alone
        result["startup"] = _startup_in_a_fresh_process(args.startup_envs)
    if args.only in ("all", "throughput"):
        result["throughput"] = measure_throughput(args)
    if args.only in ("all", "reach"):
        result["reach"] = measure_reach(args.reach_seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(f"wrote {out}")
    standing = sorted(OUT.parent.glob("compare_*.json"))
    if out.resolve() == OUT.resolve() and standing:  # the standing table, with this section
        results = [json.loads(p.read_text()) for p in standing]
        report = Path(__file__).with_name("RESULTS.md")
        report.write_text(compare_report.render(results, result))
        print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
