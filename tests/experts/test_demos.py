"""Saved demonstrations: reused only for the same expert, env, options and seeds."""

from __future__ import annotations

import typing

import gymnasium as gym
import pytest

from experts import demos
from experts.demos import ExpertName, check_saved_experts, collect_experts
from experts.schedules import SCHEDULES

ENV_ID = "LRSchedule-Quadratic-v0"
KWARGS = {"total_steps": 32}


def test_expert_name_lists_every_schedule():
    assert typing.get_args(ExpertName) == tuple(SCHEDULES)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> str:
    """Demonstrations of the cosine expert on seeds 0 and 1, saved in a folder."""
    folder = tmp_path_factory.mktemp("demos")
    env = gym.make(ENV_ID, **KWARGS)
    collect_experts(folder, ["cosine"], env, [0, 1], env_id=ENV_ID, env_kwargs=KWARGS)
    return folder


def collect(folder, seeds, kwargs=KWARGS, env_id=ENV_ID):
    env = gym.make(env_id, **kwargs)
    return collect_experts(folder, ["cosine"], env, seeds, env_id=env_id, env_kwargs=kwargs)


def test_matching_demonstrations_are_reused_without_rollouts(saved, monkeypatch):
    def no_rollouts(*args, **kwargs):
        raise AssertionError("demonstrations were collected again")

    monkeypatch.setattr(demos, "run_episodes", no_rollouts)
    trajs = collect(saved, [0, 1])["cosine"]
    assert len(trajs) == 2 and len(trajs[0].acts) == 32 // 8
    check_saved_experts(saved, ["cosine"], [0, 1], env_id=ENV_ID, env_kwargs=KWARGS)


@pytest.mark.parametrize(
    "seeds, stored, expected",
    [
        ([0, 1, 2, 3], "[0, 1]", "[0, 1, 2, 3]"),  # more than were saved
        ([0], "[0, 1]", "[0]"),  # fewer
        ([500, 501], "[0, 1]", "[500, 501]"),  # as many, other seeds (e.g. the selection's)
    ],
)
def test_other_seeds_are_refused_naming_stored_and_expected(saved, seeds, stored, expected):
    with pytest.raises(ValueError, match="do not match this run") as error:
        collect(saved, seeds)
    assert f"seeds: stored {stored}, expected {expected}" in str(error.value)
    with pytest.raises(ValueError, match="seeds: stored"):
        check_saved_experts(saved, ["cosine"], seeds, env_id=ENV_ID, env_kwargs=KWARGS)


def test_another_env_or_options_is_refused(saved):
    with pytest.raises(ValueError, match=r"env_kwargs: stored \{'total_steps': 32\}, expected"):
        collect(saved, [0, 1], kwargs={"total_steps": 64})
    with pytest.raises(ValueError, match="env_id: stored 'LRSchedule-Quadratic-v0', expected"):
        check_saved_experts(
            saved, ["cosine"], [0, 1], env_id="LRSchedule-MLP-v0", env_kwargs=KWARGS
        )


def test_a_folder_without_demonstrations_passes(tmp_path):
    check_saved_experts(
        tmp_path, ["cosine", "polynomial"], [0, 1], env_id=ENV_ID, env_kwargs=KWARGS
    )
