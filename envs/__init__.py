"""The Gymnasium environment: one training run of a trainee as a POMDP."""

from envs.lrschedule_env import ACTION_TYPES, EnvConfig, LRScheduleEnv
from envs.observation import FEATURES
from envs.options import EnvOptions, make_from_signature
from envs.registration import ENV_SPECS, register_envs
from envs.rewards import REWARDS
from envs.rollout import Episode, Transition, run_episode

__all__ = [
    "ACTION_TYPES",
    "ENV_SPECS",
    "FEATURES",
    "REWARDS",
    "EnvConfig",
    "EnvOptions",
    "Episode",
    "LRScheduleEnv",
    "Transition",
    "make_from_signature",
    "register_envs",
    "run_episode",
]
