"""The GPT trainee on a corpus without ``test.bin``: its test half never reaches an episode."""

from __future__ import annotations

import shutil

import gymnasium as gym
import numpy as np
import pytest

from envs.rollout import run_episode
from evaluation.methods import METHODS
from evaluation.runs import RunSpec, execute
from experts.policy import SchedulePolicy
from experts.schedules import Cosine
from trainees.data.chars import prepare_bytes

TEXT = "".join(
    f"{who}:\nIf music be the food of love, play on; give me excess of it, {i}.\n"
    for i in range(40)
    for who in ("ORSINO", "CURIO", "VIOLA")
)
ENV = "LRSchedule-GPT-v0"
# a one-layer GPT, 4 actions of 4 steps, an evaluation after each: well under a second
OPTIONS = dict(
    total_steps=16, steps_per_action=4, eval_every=4, inference_tokens=0, n_layer=1,
    n_head=2, n_embd=32, block_size=16, batch_size=4,
)  # fmt: skip


def shuffled_copy(base, folder, part: slice):
    """``base`` (a prepared corpus folder) with the tokens of ``val.bin[part]`` shuffled."""
    shutil.copytree(base, folder)
    val = np.fromfile(base / "val.bin", dtype=np.uint16)
    changed = val.copy()
    changed[part] = np.random.default_rng(0).permutation(val[part])
    assert not np.array_equal(changed, val)  # the same tokens, so the same vocabulary
    (folder / "val.bin").write_bytes(changed.tobytes())
    return folder


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Three prepared corpora: the original, another test half, another validation half."""
    root = tmp_path_factory.mktemp("held_out")
    prepare_bytes(TEXT.encode(), root / "base", (0.9, 0.1))
    n = len(np.fromfile(root / "base" / "val.bin", dtype=np.uint16))
    cut = n // 2  # the documented rule: val[:n // 2] validates, val[n // 2:] is the test split
    return {
        "base": root / "base",
        "test_half": shuffled_copy(root / "base", root / "test_half", slice(cut, None)),
        "val_half": shuffled_copy(root / "base", root / "val_half", slice(0, cut)),
    }


def episode(data_dir, seed: int = 5):
    """One seeded cosine episode; its observations, rewards, infos and final test metrics."""
    env = gym.make(ENV, data_dir=str(data_dir), **OPTIONS)
    ep = run_episode(env, SchedulePolicy(Cosine(), env.action_space), seed)
    test = env.unwrapped.trainee.test_metrics()
    env.close()
    return ep, test


def val_fields(ep) -> dict[str, list[float]]:
    """What the validation loss feeds: every info's ``val_loss`` and ``best_val_loss``."""
    return {k: [float(i[k]) for i in ep.infos] for k in ("val_loss", "best_val_loss")}


def test_the_test_half_never_reaches_an_episode_nor_the_tuning(corpora):
    """Only the test half differs: observations, rewards and validation losses are equal.

    The harness tunes base LRs (``choose_base_lrs``) from the runs' ``final_val_loss``
    and ``diverged``, which ``execute`` takes from the same episode, so equal run
    records mean equal tuning; the test loss alone sees the test half.
    """
    (a, test_a), (b, test_b) = episode(corpora["base"]), episode(corpora["test_half"])
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    assert val_fields(a) == val_fields(b)
    assert test_a["test_loss"] != test_b["test_loss"]
    assert test_a["test_split"] == test_b["test_split"] == "test"
    n = len(np.fromfile(corpora["base"] / "val.bin", dtype=np.uint16))
    assert test_a["test_samples"] == test_b["test_samples"] == n - n // 2 - 1

    def run(data_dir):
        options = tuple((OPTIONS | {"data_dir": str(data_dir)}).items())
        return execute(RunSpec("tune", ENV, options, METHODS["cosine"], None, 2000))

    run_a, run_b = run(corpora["base"]), run(corpora["test_half"])
    for key in ("final_val_loss", "best_val_loss", "loss0", "diverged", "curve"):
        assert run_a[key] == run_b[key], key
    assert run_a["test_loss"] != run_b["test_loss"]

    # the validation half does reach the episode: this test can fail
    c, _ = episode(corpora["val_half"])
    assert val_fields(c)["val_loss"] != val_fields(a)["val_loss"]
    assert not np.array_equal(a.rewards, c.rewards)
