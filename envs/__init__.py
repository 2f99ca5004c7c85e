"""The Gymnasium environment: one training run of a trainee as a POMDP.

``make_batched_vec_env`` and ``BatchedVecEnv`` (K episodes in lockstep, an SB3 VecEnv)
are imported on first use: ``import gymnasium`` imports this package through the
entry point, and should not import stable-baselines3 with it.
"""

from common.lazy import lazy_exports
from envs.config import ACTION_TYPES, EnvConfig
from envs.lrschedule_env import LRScheduleEnv
from envs.observation import FEATURES
from envs.options import EnvOptions
from envs.registration import ENV_SPECS, register_envs
from envs.rewards import REWARDS
from envs.rollout import Episode, Transition, run_episode, run_episodes
from envs.signature import make_from_signature

__all__ = [
    "ACTION_TYPES",
    "ENV_SPECS",
    "FEATURES",
    "REWARDS",
    "BatchedVecEnv",
    "EnvConfig",
    "EnvOptions",
    "Episode",
    "LRScheduleEnv",
    "Transition",
    "make_batched_vec_env",
    "make_from_signature",
    "register_envs",
    "run_episode",
    "run_episodes",
]

_, __getattr__, __dir__ = lazy_exports(
    __name__, {"vec_env": ("BatchedVecEnv", "make_batched_vec_env")}
)
