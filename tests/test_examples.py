"""The worked example (examples/tuningfree_loop.py) runs, with the shipped policy, and its
data say what its plot shows."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_the_tuningfree_example_runs_from_a_wrong_lr(tmp_path):
    out = tmp_path / "example"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples/tuningfree_loop.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "8x too high" in done.stdout and "8x too low" in done.stdout
    assert "OutOfDomainWarning" not in done.stderr  # the example is inside the domain
    runs = json.loads((out / "results.json").read_text())
    assert [(r["schedule"], r["lr"]) for r in runs] == [
        ("tuningfree", 0.064),
        ("cosine", 0.064),
        ("tuningfree", 0.001),
        ("cosine", 0.001),
    ]
    for r in runs:
        assert f"{r['test_loss']:.4f}" in done.stdout
    with open(out / "lr_curves.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 512 and (out / "lr_curves.png").stat().st_size > 0
    for t, row in enumerate(rows):  # torch's CosineAnnealingLR, by hand
        assert float(row["cosine@0.064"]) == pytest.approx(
            0.032 * (1 + math.cos(math.pi * t / 512))
        )
    policy = [float(row["tuningfree@0.001"]) for row in rows]
    blocks = [policy[i : i + 32] for i in range(0, 512, 32)]
    assert all(len(set(b)) == 1 for b in blocks)  # one LR per action, held 32 steps
    # it corrects the LR it was given: from base LRs 64x apart, its LRs over the second
    # half of the run are far closer than 64x (cosine keeps them exactly 64x apart)
    high = sum(float(row["tuningfree@0.064"]) for row in rows[256:])
    assert high / sum(policy[256:]) < 16
