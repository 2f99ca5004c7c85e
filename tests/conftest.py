"""Shared fixtures: every test gets its own cache and never downloads."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import pytest

from agents.policy import PolicyConfig, make_policy, save_policy
from trainees.data.chars import prepare_bytes

TEXT = "KING:\nWhat say you, cousin? Speak, and speak the truth.\n" * 80

SHARED_DATA = os.environ.get("LRGYM_DATA_DIR")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LRGYM_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("LRGYM_OFFLINE", "1")


@pytest.fixture(scope="module")
def one_thread():
    """One torch intra-op thread for a module (``pytestmark = pytest.mark.usefixtures(...)``):
    tiny models train faster on one thread than on two, much faster on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Downloads allowed by the environment, but any attempt fails the test."""
    monkeypatch.delenv("LRGYM_OFFLINE", raising=False)

    def fail(url, target, md5):
        pytest.fail(f"download attempted: {url} -> {target}")

    monkeypatch.setattr("trainees.data.resolve._download", fail)


def real_data(*parts: str) -> Path | None:
    """Path under ``$LRGYM_DATA_DIR`` if it exists, else None (the test is skipped)."""
    if not SHARED_DATA:
        return None
    p = Path(SHARED_DATA).joinpath(*parts)
    return p if p.exists() else None


def needs_real_data(*parts: str) -> pytest.MarkDecorator:
    """Skip unless ``$LRGYM_DATA_DIR/<parts>`` exists (CI sets it to ../shared/data)."""
    return pytest.mark.skipif(
        real_data(*parts) is None, reason=f"set LRGYM_DATA_DIR to a folder with {'/'.join(parts)}"
    )


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small character corpus in nanoGPT's prepared layout."""
    folder = tmp_path_factory.mktemp("corpus")
    prepare_bytes(TEXT.encode(), folder, (0.9, 0.1))
    return str(folder)


PPO_ENV = "LRSchedule-Quadratic-v0"
# small rollouts: 2 envs x 32 steps, one minibatch, so a PPO test takes seconds
SMALL_PPO = dict(n_steps=32, batch_size=64, n_epochs=2)


@pytest.fixture(scope="module")
def bc_file(tmp_path_factory) -> Path:
    """A policy file for the quadratic env (untrained: the tests need a start, not a good one)."""
    env = gym.make(PPO_ENV)
    config = PolicyConfig(log_std_init=-2.0)  # as a BC fit that narrowed its Gaussian
    policy = make_policy(env.observation_space, env.action_space, config, seed=0)
    return save_policy(
        policy, tmp_path_factory.mktemp("bc") / "bc_cosine.pt", config, env=env, gamma=0.99
    )
