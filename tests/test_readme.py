"""The README's task-family example runs as printed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_family_example_learns():
    text = README.read_text()
    match = re.search(r"<!-- tested: family example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "the README lost its tested family example"
    namespace: dict = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)  # noqa: S102
    returns = np.asarray(namespace["metrics"]["eval/episode_return"])
    assert returns.shape == (3,) and np.all(returns > 0.5), returns
