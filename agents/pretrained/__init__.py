"""The policies shipped with the package, loadable by name.

Each shipped policy is a folder of package data beside this file, in the Hub format of
:mod:`agents.hub` (``model.safetensors``, ``config.json``, ``README.md``, the model card),
named ``<name>-v<N>``. A versioned name (``"tuningfree-v1"``) loads exactly that folder;
the bare name (``"tuningfree"``) loads its latest version::

    from agents.pretrained import load_shipped
    policy = load_shipped("tuningfree")

:class:`agents.scheduler.LearnedLRScheduler` (and so the HF Trainer and Lightning
integrations) take the same names wherever they take a policy file.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from stable_baselines3.common.policies import ActorCriticPolicy

HERE = Path(__file__).parent
_VERSIONED = re.compile(r"^(?P<base>[a-z0-9][a-z0-9_]*)-v(?P<n>[1-9][0-9]*)$")


def shipped() -> dict[str, Path]:
    """Every loadable name and its folder: each ``<name>-v<N>`` and each bare name (its
    highest version)."""
    out: dict[str, Path] = {}
    latest: dict[str, tuple[int, Path]] = {}
    for folder in sorted(HERE.iterdir()):
        m = _VERSIONED.match(folder.name)
        if m is None or not (folder / "config.json").is_file():
            continue
        out[folder.name] = folder
        n = int(m["n"])
        if n > latest.get(m["base"], (0, folder))[0]:
            latest[m["base"]] = (n, folder)
    return {**{base: folder for base, (_, folder) in latest.items()}, **out}


def shipped_folder(name: str) -> Path:
    """The folder of the shipped policy ``name``.

    Raises:
        ValueError: an unknown name, in one line listing the known ones.
    """
    known = shipped()
    if name not in known:
        raise ValueError(f"unknown policy name {name!r}; shipped: {', '.join(known)}")
    return known[name]


def load_shipped(name: str, *, device: str | torch.device = "auto") -> ActorCriticPolicy:
    """Load the shipped policy ``name`` (``"tuningfree"``, ``"tuningfree-v1"``...).

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    from agents.hub import from_pretrained

    return from_pretrained(shipped_folder(name), device=device)


def resolve_policy(policy: str | Path, *, device: str | torch.device = "cpu") -> ActorCriticPolicy:
    """A policy given by name, by a Hub-format folder or by a policy file (``.pt``).

    An existing path is used as it is (a folder: :func:`agents.hub.from_pretrained`; a
    file: :func:`agents.policy.load_policy`), so a file or folder named like a shipped
    policy in the working directory wins over it; anything else must be a shipped name.

    Raises:
        ValueError: neither an existing file or folder nor a shipped name, in one line
            listing the shipped names.
    """
    path = Path(policy)
    if path.is_dir():
        from agents.hub import from_pretrained

        return from_pretrained(path, device=device)
    if path.is_file():
        from agents.policy import load_policy

        return load_policy(path, device=device)
    try:
        return load_shipped(str(policy), device=device)
    except ValueError as e:
        if not str(e).startswith("unknown policy name"):
            raise
        raise ValueError(f"{e} (and {str(policy)!r} is no existing file or folder)") from None
