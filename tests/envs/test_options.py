"""EnvOptions: values from fixed sets are Literal types equal to their registries."""

from __future__ import annotations

import typing

import pytest

from common.cli import parse
from envs.config import ACTION_TYPES, EnvConfig
from envs.options import EnvOptions, check_env_ids, lrschedule_ids
from envs.registration import ENV_SPECS
from envs.rewards import PRESETS, REWARDS
from trainees import GPT_PRESETS
from trainees.image import IMAGE_DATASETS
from trainees.language import GPT_DATASETS


def choices(field: str) -> tuple:
    """The values an ``EnvOptions`` field's type admits, None aside."""
    (literal,) = [
        a for a in typing.get_args(typing.get_type_hints(EnvOptions)[field]) if a is not type(None)
    ]
    return typing.get_args(literal)


@pytest.mark.parametrize(
    "field, registry",
    [
        ("reward", REWARDS),
        ("reward", tuple(PRESETS)),
        ("action_type", ACTION_TYPES),
        ("action_type", typing.get_args(typing.get_type_hints(EnvConfig)["action_type"])),
        ("dataset", IMAGE_DATASETS + GPT_DATASETS),
        ("preset", GPT_PRESETS),
    ],
)
def test_fixed_value_options_are_literals_of_their_registry(field, registry):
    assert choices(field) == tuple(registry)


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--reward", "stabilty"),
        ("--action-type", "box"),
        ("--dataset", "cifar"),
        ("--preset", "huge"),
    ],
)
def test_a_value_outside_the_set_is_refused_in_one_line(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(EnvOptions, argv=[flag, value])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert repr(value) in line and flag in line
    assert all(str(v) in line for v in choices(flag.removeprefix("--").replace("-", "_")))


def test_valid_values_parse_unchanged():
    options = parse(
        EnvOptions, argv=["--reward", "neg_val_loss", "--dataset", "digits", "--total-steps", "64"]
    )
    assert options.kwargs() == {"reward": "neg_val_loss", "dataset": "digits", "total_steps": 64}


def test_check_env_ids_refuses_an_unregistered_id_naming_the_valid_ones():
    check_env_ids(*ENV_SPECS)  # every registered id passes
    assert set(lrschedule_ids()) == set(ENV_SPECS)
    with pytest.raises(ValueError, match="'LRSchedule-MPL-v0'") as error:
        check_env_ids("LRSchedule-MLP-v0", "LRSchedule-MPL-v0")
    assert all(env_id in str(error.value) for env_id in ENV_SPECS)
