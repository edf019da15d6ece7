"""The package's layout: what importing a module pulls in, and module docstrings."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import distral_jax


def test_pure_jax_parts_do_not_import_brax():
    code = (
        "import sys\n"
        "import distral_jax.train, distral_jax.sweeps, distral_jax.envs.registry\n"
        "from distral_jax.envs.registry import make_family\n"
        "make_family('point_mass'); make_family('gridworld')\n"
        "assert 'brax' not in sys.modules, sorted(m for m in sys.modules if 'brax' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_module_says_what_it_is_for():
    names = [m.name for m in pkgutil.walk_packages(distral_jax.__path__, prefix="distral_jax.")]
    missing = []
    for name in names:
        if name.endswith("brax_tasks"):
            continue  # imports Brax; checked by its own tests
        module = __import__(name, fromlist=["_"])
        if not (module.__doc__ or "").strip():
            missing.append(name)
    assert not missing, f"modules without a docstring: {missing}"
