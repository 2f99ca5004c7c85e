"""Policies in the Hugging Face Hub format: a folder of safetensors, JSON and a model card.

``save_pretrained(policy, folder)`` writes

- ``model.safetensors``: the network's parameters (and nothing else: no pickle);
- ``config.json``: the architecture (``PolicyConfig``), the env signature the policy was
  trained on (observation layout and version, action bounds, cadence, reward), the
  spaces, the discount, the package version, the domain where it is valid, and the
  SHA-256 of ``model.safetensors``;
- ``README.md``: the model card (Hub metadata first, then the text given).

``from_pretrained(folder_or_repo_id)`` loads it back (a local folder offline; a Hub repo
id through ``huggingface_hub`` when online) and checks the weights against the recorded
hash, so a tampered or truncated file is a one-line error naming it. ``push_to_hub``
uploads a folder, as ``huggingface_sb3`` does for SB3 agents. This mirrors
:func:`agents.policy.save_policy` / :func:`agents.policy.load_policy`, whose one-file
format is the training pipeline's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

from agents.policy import PolicyConfig, PolicyFile, build_policy, check_env, read_policy_file
from common.files import atomic_write_bytes, atomic_write_text

FORMAT = "lrschedule-gym-pretrained/1"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
# the observation layout the signals of envs.observation build today (DESIGN.md: v0)
OBSERVATION_VERSION = "v0"


@dataclass(frozen=True)
class Domain:
    """Where a policy was trained, so where it is valid; a scheduler warns outside it.

    The cadence (optimizer steps per action, between validation losses) is not here: the
    env signature a policy records holds it, and a scheduler that overrides it warns too.

    Attributes:
        optimizers: optimizer classes it was trained with (``type(opt).__name__``).
        total_steps: the smallest and largest budget (optimizer steps) it was trained on.
        max_grad_norm: the gradient clipping it was trained with (None: none).
        budget_slack: a budget within ``[min / slack, max x slack]`` is not warned.
    """

    optimizers: tuple[str, ...] = ("AdamW",)
    total_steps: tuple[int, int] = (128, 2000)
    max_grad_norm: float | None = 1.0
    budget_slack: float = 2.0

    def __post_init__(self) -> None:
        if not (
            isinstance(self.optimizers, tuple)
            and self.optimizers
            and all(isinstance(o, str) for o in self.optimizers)
        ):
            raise ValueError(
                f"Domain.optimizers={self.optimizers!r} is invalid; expected a non-empty "
                "tuple of optimizer class names, e.g. ('AdamW',)"
            )
        lo, hi = self.total_steps
        if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi):
            raise ValueError(
                f"Domain.total_steps={self.total_steps!r} is invalid; "
                "expected (min, max) with 1 <= min <= max"
            )
        if self.budget_slack < 1:
            raise ValueError(f"Domain.budget_slack={self.budget_slack!r}; expected >= 1")

    def to_json(self) -> dict[str, Any]:
        """Plain values for ``config.json``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Domain:
        """The inverse of :meth:`to_json`."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


class PretrainedError(ValueError):
    """A pretrained folder that cannot be loaded: missing, truncated or tampered."""


def _space_json(space: spaces.Space) -> dict[str, Any]:
    if isinstance(space, spaces.Discrete):
        return {"type": "discrete", "n": int(space.n)}
    if not isinstance(space, spaces.Box):
        raise ValueError(f"unsupported space {space}; expected Box or Discrete")
    low, high = np.asarray(space.low), np.asarray(space.high)
    # an observation Box repeats one row per step: store the row once when it does
    rows = low.ndim == 2 and (low == low[:1]).all() and (high == high[:1]).all()
    return {
        "type": "box",
        "shape": list(space.shape),
        "dtype": str(space.dtype),
        "low": (low[0] if rows else low).tolist(),
        "high": (high[0] if rows else high).tolist(),
        "per_row": bool(rows),
    }


def _space_from_json(raw: Mapping[str, Any]) -> spaces.Space:
    if raw["type"] == "discrete":
        return spaces.Discrete(int(raw["n"]))
    shape = tuple(raw["shape"])
    low, high = (np.asarray(raw[x], dtype=raw["dtype"]) for x in ("low", "high"))
    if raw["per_row"]:
        low, high = np.broadcast_to(low, shape).copy(), np.broadcast_to(high, shape).copy()
    return spaces.Box(low, high, shape=shape, dtype=np.dtype(raw["dtype"]))


def _policy_file(policy: ActorCriticPolicy | PolicyFile | str | Path) -> PolicyFile:
    if isinstance(policy, PolicyFile):
        return policy
    if isinstance(policy, str | Path):
        return read_policy_file(policy)
    stored = getattr(policy, "lrgym_file", None)
    if stored is None:
        raise TypeError(
            "save_pretrained needs a policy file, a PolicyFile or a policy "
            "loaded with load_policy / from_pretrained (it records its env)"
        )
    state = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
    return dataclasses.replace(stored, state_dict=state)


def _dedupe(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors to write, one per shared storage, and ``{alias: stored key}`` for the
    rest (SB3's ``features_extractor`` is the actor's ``pi_features_extractor``)."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    first: dict[tuple, str] = {}
    for key in sorted(state):
        t = state[key]
        view = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride())
        if t.numel() and view in first:
            aliases[key] = first[view]
        else:
            first.setdefault(view, key)
            tensors[key] = t.detach().cpu().contiguous()
    return tensors, aliases


def card_metadata(name: str) -> str:
    """The model card's YAML front matter (what the Hub indexes)."""
    return (
        "---\nlibrary_name: lrschedule-gym\nlicense: mit\ntags:\n- reinforcement-learning\n"
        f"- learning-rate-schedule\n- lrschedule-gym\nmodel_name: {name}\n---\n"
    )


def save_pretrained(
    policy: ActorCriticPolicy | PolicyFile | str | Path,
    folder: str | Path,
    *,
    name: str,
    card: str,
    domain: Domain | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``policy`` (a loaded policy, a :class:`PolicyFile` or a policy file's path) to
    ``folder`` in the Hub format; each file is written atomically. Returns the folder.

    Args:
        name: the policy's name (``config.json`` and the card's metadata).
        card: the model card's text (Markdown), after the metadata.
        domain: where it is valid (None: the defaults of :class:`Domain`).
        extra: further plain values for ``config.json`` under ``"training"`` (recipe
            command, commit, ...).
    """
    from safetensors.torch import save

    pf = _policy_file(policy)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors, aliases = _dedupe(pf.state_dict)
    weights = save(tensors)
    config = {
        "format": FORMAT,
        "name": name,
        "version": pf.version,
        "observation_version": OBSERVATION_VERSION,
        "architecture": {
            k: list(v) if isinstance(v, tuple) else v for k, v in asdict(pf.config).items()
        },
        "env": pf.env,
        "action_bounds": [pf.env.get("min_lr_mult"), pf.env.get("max_lr_mult")],
        "gamma": pf.gamma,
        "observation_space": _space_json(pf.observation_space),
        "action_space": _space_json(pf.action_space),
        "domain": (domain or Domain()).to_json(),
        "training": dict(extra or {}),
        "sha256": {WEIGHTS: hashlib.sha256(weights).hexdigest()},
        "aliases": aliases,
    }
    atomic_write_bytes(folder / WEIGHTS, weights)
    atomic_write_text(folder / CONFIG, json.dumps(config, indent=2, sort_keys=True) + "\n")
    atomic_write_text(folder / CARD, card_metadata(name) + card.rstrip() + "\n")
    for f in (WEIGHTS, CONFIG, CARD):  # a folder to share: readable, not mkstemp's 0600
        (folder / f).chmod(0o644)
    return folder


@dataclass(frozen=True)
class Pretrained:
    """A pretrained folder's contents.

    Attributes:
        file: the policy's contents, as :func:`agents.policy.read_policy_file` gives them.
        name: its name.
        domain: where it is valid.
        config: the whole ``config.json``.
        folder: where it was read from.
    """

    file: PolicyFile
    name: str
    domain: Domain
    config: dict[str, Any]
    folder: Path


def read_pretrained(folder: str | Path) -> Pretrained:
    """Read and verify a folder written by :func:`save_pretrained`, building no network.

    Raises:
        PretrainedError: a missing, unparsable, truncated or tampered file, in one line
            naming it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    folder = Path(folder)
    cfg_path, w_path = folder / CONFIG, folder / WEIGHTS
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise PretrainedError(f"{p} is missing: not a pretrained lrschedule-gym policy folder")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PretrainedError(f"{cfg_path} is not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise PretrainedError(f"{cfg_path} is not a config of format {FORMAT}: found {found!r}")
    data = w_path.read_bytes()
    hashes = config.get("sha256")
    expected = hashes.get(WEIGHTS) if isinstance(hashes, dict) else None
    if hashlib.sha256(data).hexdigest() != expected:
        raise PretrainedError(
            f"{w_path} does not match the SHA-256 in {cfg_path} "
            f"({len(data)} bytes): truncated or modified"
        )
    try:
        state = load(data)
        state |= {alias: state[key] for alias, key in config.get("aliases", {}).items()}
        arch = {
            k: tuple(v) if isinstance(v, list) else v for k, v in config["architecture"].items()
        }
        pf = PolicyFile(
            config=PolicyConfig(**arch),
            env=config["env"],
            gamma=config["gamma"],
            version=config["version"],
            observation_space=_space_from_json(config["observation_space"]),
            action_space=_space_from_json(config["action_space"]),
            state_dict=state,
        )
        domain = Domain.from_json(config["domain"])
        name = str(config["name"])
    except (SafetensorError, KeyError, TypeError, ValueError) as e:
        why = f"{type(e).__name__}: {e}".replace("\n", " ")
        raise PretrainedError(f"{folder} cannot be read as a pretrained policy: {why}") from None
    return Pretrained(pf, name, domain, config, folder)


def _local_folder(folder_or_repo_id: str | Path, revision: str | None) -> Path:
    """A local folder as it is; anything else is a Hub repo id, downloaded (cached)."""
    path = Path(folder_or_repo_id)
    if path.is_dir():
        return path
    text = str(folder_or_repo_id)
    if path.exists() or text.count("/") != 1 or text.startswith((".", "/")):
        raise PretrainedError(
            f"{text!r} is neither a pretrained policy folder nor a Hub repo id (owner/name)"
        )
    from huggingface_hub import snapshot_download

    try:
        got = snapshot_download(
            repo_id=text, revision=revision, allow_patterns=[WEIGHTS, CONFIG, CARD]
        )
    except Exception as e:  # offline, unknown repo, auth: one line, with the cause
        raise PretrainedError(
            f"cannot download {text!r} from the Hugging Face Hub: "
            f"{type(e).__name__}: {e}".splitlines()[0]
        ) from None
    return Path(got)


def from_pretrained(
    folder_or_repo_id: str | Path,
    env: gym.Env | Mapping[str, Any] | None = None,
    *,
    allow_mismatch: bool = False,
    revision: str | None = None,
    device: str | torch.device = "auto",
) -> ActorCriticPolicy:
    """Load a policy saved by :func:`save_pretrained` from a local folder or a Hub repo id.

    ``env`` and ``allow_mismatch`` check the env it will act in against the recorded one,
    as :func:`agents.policy.load_policy` does. The returned policy is ready for
    :class:`agents.scheduler.LearnedLRScheduler`: it carries the file's contents (without
    the weights) as ``policy.lrgym_file`` and the folder's :class:`Pretrained` (without
    the weights) as ``policy.lrgym_pretrained``. The caller's global RNG state is left
    untouched.

    Raises:
        PretrainedError: a missing, truncated or tampered file (one line naming it), or
            a repo id that cannot be downloaded.
        ValueError: a mismatched env (naming every mismatch).
    """
    pre = read_pretrained(_local_folder(folder_or_repo_id, revision))
    if env is not None:
        source = str(pre.folder)
        for m in check_env(pre.file.env, env, allow_mismatch=allow_mismatch, source=source):
            warnings.warn(f"{source}: transferred to another env: {m}", stacklevel=2)
    try:
        policy = build_policy(pre.file, device)
    except RuntimeError as e:
        raise PretrainedError(
            f"{pre.folder / WEIGHTS} does not fit the architecture in "
            f"{pre.folder / CONFIG}: {str(e).splitlines()[0]}"
        ) from None
    policy.lrgym_pretrained = dataclasses.replace(pre, file=policy.lrgym_file)
    return policy


def push_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload an lrschedule-gym policy",
    api: Any = None,
) -> str:
    """Upload a folder written by :func:`save_pretrained` to the Hub repo ``repo_id``
    (created if needed); returns the commit's URL. The folder is verified first.

    ``api``: an ``huggingface_hub.HfApi`` (None: a new one with ``token``).
    """
    read_pretrained(folder)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id=repo_id, private=private, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        allow_patterns=[WEIGHTS, CONFIG, CARD],
        commit_message=commit_message,
    )
    return str(getattr(info, "commit_url", info))
