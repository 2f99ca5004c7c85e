"""The Gymnasium environment: one training run of a trainee as a POMDP."""

from envs.lrschedule_env import ACTION_TYPES, EnvConfig, LRScheduleEnv
from envs.observation import FEATURES
from envs.registration import ENV_SPECS, register_envs
from envs.rewards import REWARDS

__all__ = [
    "ACTION_TYPES",
    "ENV_SPECS",
    "FEATURES",
    "REWARDS",
    "EnvConfig",
    "LRScheduleEnv",
    "register_envs",
]
