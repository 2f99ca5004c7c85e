"""The Hub format (save_pretrained / from_pretrained / push_to_hub), shipped names and the
scheduler's out-of-domain warnings."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from agents.hub import (
    CONFIG,
    WEIGHTS,
    Domain,
    PretrainedError,
    from_pretrained,
    push_to_hub,
    read_pretrained,
    save_pretrained,
)
from agents.policy import PolicyConfig, load_policy, make_policy, save_policy
from agents.pretrained import load_shipped, resolve_policy, shipped, shipped_folder
from agents.scheduler import LearnedLRScheduler, OutOfDomainWarning

SMALL = PolicyConfig(features_dim=8, patch_size=8, d_model=8, n_layers=1)
QUAD = "LRSchedule-Quadratic-v0"


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    env = gym.make(QUAD)
    policy = make_policy(env.observation_space, env.action_space, SMALL, seed=3)
    return save_policy(policy, tmp_path / "p.pt", SMALL, env=env, gamma=0.97)


def saved(policy_file: Path, folder: Path, **kw) -> Path:
    return save_pretrained(policy_file, folder, name="mine-v1", card="# Mine\n", **kw)


def test_round_trip_is_bit_for_bit(policy_file: Path, tmp_path: Path):
    folder = saved(policy_file, tmp_path / "hub", domain=Domain(total_steps=(64, 512)))
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", CONFIG, WEIGHTS]
    original = load_policy(policy_file)
    loaded = from_pretrained(folder, device="cpu")
    a, b = original.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:  # bit for bit: same dtype, shape and bytes
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    f, g = original.lrgym_file, loaded.lrgym_file
    assert (g.config, g.env, g.gamma, g.version) == (f.config, f.env, f.gamma, f.version)
    assert g.observation_space == f.observation_space and g.action_space == f.action_space
    assert loaded.lrgym_pretrained.domain == Domain(total_steps=(64, 512))
    obs = torch.as_tensor(f.observation_space.sample()[None])
    assert torch.equal(original.predict_values(obs), loaded.predict_values(obs))
    again = save_pretrained(
        loaded,
        tmp_path / "again",
        name="mine-v1",
        card="# Mine\n",
        domain=Domain(total_steps=(64, 512)),
    )
    for name in ("README.md", CONFIG, WEIGHTS):  # saving the loaded policy: the same bytes
        assert (again / name).read_bytes() == (folder / name).read_bytes(), name


def test_the_card_and_config_describe_the_policy(policy_file: Path, tmp_path: Path):
    folder = saved(policy_file, tmp_path / "hub", extra={"commit": "abc"})
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: lrschedule-gym\n") and "# Mine" in card
    cfg = json.loads((folder / CONFIG).read_text())
    assert cfg["architecture"]["d_model"] == 8 and cfg["gamma"] == 0.97
    assert cfg["env"]["env_id"] == QUAD and cfg["observation_version"] == "v0"
    assert cfg["action_bounds"] == [cfg["env"]["min_lr_mult"], cfg["env"]["max_lr_mult"]]
    assert cfg["training"] == {"commit": "abc"}
    assert cfg["observation_space"]["per_row"] is True  # one row stored, not 64


def test_no_pickle_in_the_load_path(policy_file: Path, tmp_path: Path, monkeypatch):
    folder = saved(policy_file, tmp_path / "hub")

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    from_pretrained(folder, device="cpu")


@pytest.mark.parametrize("damage", ["tamper", "truncate"])
def test_a_damaged_weights_file_is_a_one_line_error_naming_it(policy_file, tmp_path, damage):
    folder = saved(policy_file, tmp_path / "hub")
    data = (folder / WEIGHTS).read_bytes()
    # tamper: one byte of the last tensor, which safetensors alone would not notice
    data = data[:-1] + bytes([data[-1] ^ 1]) if damage == "tamper" else data[: len(data) // 2]
    (folder / WEIGHTS).write_bytes(data)
    with pytest.raises(PretrainedError) as e:
        from_pretrained(folder, device="cpu")
    message = str(e.value)
    assert "\n" not in message and str(folder / WEIGHTS) in message
    assert "truncated or modified" in message


def test_a_damaged_config_is_a_one_line_error_naming_it(policy_file, tmp_path):
    folder = saved(policy_file, tmp_path / "hub")
    text = (folder / CONFIG).read_text()
    (folder / CONFIG).write_text(text[: len(text) // 2])
    with pytest.raises(PretrainedError, match=r"config\.json is not valid JSON") as e:
        read_pretrained(folder)
    assert str(e.value).startswith(str(folder / CONFIG)) and "\n" not in str(e.value)
    cfg = json.loads(text)
    for key, value in (("sha256", "x"), ("name", None)):
        broken = {k: v for k, v in cfg.items() if k != key} | ({key: value} if value else {})
        (folder / CONFIG).write_text(json.dumps(broken))
        with pytest.raises(PretrainedError) as e:
            read_pretrained(folder)
        assert str(folder) in str(e.value) and "\n" not in str(e.value), key
    (folder / CONFIG).unlink()
    with pytest.raises(PretrainedError, match=r"config.json is missing"):
        read_pretrained(folder)


def test_a_config_whose_architecture_does_not_fit_the_weights_is_refused(policy_file, tmp_path):
    folder = saved(policy_file, tmp_path / "hub")
    cfg = json.loads((folder / CONFIG).read_text())
    cfg["architecture"]["d_model"] = 16
    (folder / CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(PretrainedError, match=r"does not fit the architecture") as e:
        from_pretrained(folder, device="cpu")
    assert "\n" not in str(e.value)


def test_a_repo_id_that_cannot_be_downloaded_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PretrainedError, match=r"cannot download 'nobody/nothing'") as e:
        from_pretrained("nobody/nothing")
    assert "\n" not in str(e.value)
    with pytest.raises(PretrainedError, match="neither a pretrained policy folder nor"):
        from_pretrained("a/b/c")


def test_push_to_hub_uploads_the_three_files(policy_file, tmp_path):
    folder = saved(policy_file, tmp_path / "hub")
    calls = []

    class FakeApi:
        def create_repo(self, **kw):
            calls.append(("create", kw))

        def upload_folder(self, **kw):
            calls.append(("upload", kw))
            return type("Info", (), {"commit_url": "https://hub/x/commit/1"})()

    url = push_to_hub(folder, "me/lr", api=FakeApi())
    assert url == "https://hub/x/commit/1"
    assert calls[0] == ("create", {"repo_id": "me/lr", "private": False, "exist_ok": True})
    assert calls[1][1]["folder_path"] == str(folder)
    assert set(calls[1][1]["allow_patterns"]) == {"README.md", CONFIG, WEIGHTS}
    (folder / WEIGHTS).write_bytes(b"x")
    with pytest.raises(PretrainedError):  # a damaged folder is never uploaded
        push_to_hub(folder, "me/lr", api=FakeApi())
    assert len(calls) == 2


def test_shipped_names_resolve_to_versioned_folders():
    names = shipped()
    assert "tuningfree" in names and "tuningfree-v1" in names
    versions = sorted(n for n in names if n.startswith("tuningfree-v"))
    assert names["tuningfree"] == names[versions[-1]]  # the bare name is the latest
    with pytest.raises(ValueError) as e:
        shipped_folder("tuningfre")
    message = str(e.value)
    assert "\n" not in message and "'tuningfre'" in message and "tuningfree-v1" in message
    policy = load_shipped("tuningfree", device="cpu")
    assert policy.lrgym_pretrained.name == "tuningfree-v1"
    with pytest.raises(
        ValueError, match=r"unknown policy name 'nope\.pt'; shipped: tuningfree, .*no existing file"
    ):
        resolve_policy("nope.pt")


def test_the_shipped_policy_loads_by_name_in_the_scheduler():
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # inside its domain: no warning
        sched = LearnedLRScheduler(
            opt, "tuningfree", model=model, total_steps=1000, initial_val_loss=2.0
        )
    assert sched.steps_per_action == 32 and sched.signals.eval_every == 64
    assert sched.domain == Domain(("AdamW",), (128, 2000), max_grad_norm=1.0)
    with pytest.warns(OutOfDomainWarning) as seen:
        LearnedLRScheduler(
            opt,
            "tuningfree",
            model=model,
            total_steps=1000,
            initial_val_loss=2.0,
            steps_per_action=16,
        )
    assert [str(w.message) for w in seen] == [
        "tuningfree-v1 used outside its trained domain: steps_per_action=16 (trained with 32)"
    ]
    assert seen[0].filename == __file__  # the warning points at the caller's line


def run_loop(sched, opt, model, steps: int, *, max_norm=1.0, val_every=None) -> None:
    x, y = torch.ones(8, 4), torch.zeros(8, dtype=torch.long)
    for step in range(1, steps + 1):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        sched.observe(loss, max_norm=max_norm)
        opt.step()
        if val_every and step % val_every == 0:
            sched.report_val_loss(loss.item())
        sched.step()


def small_run(folder: Path, optimizer: type, *, total_steps: int):
    """A scheduler from ``folder`` on a linear model, 8 steps per action, eval every 16."""
    model = torch.nn.Linear(4, 2)
    opt = optimizer(model.parameters(), lr=1e-3)
    sched = LearnedLRScheduler(
        opt,
        str(folder),
        model=model,
        total_steps=total_steps,
        initial_val_loss=1.0,
        steps_per_action=8,
        eval_every=16,
    )
    return sched, opt, model


def test_out_of_domain_use_warns_once_per_cause_in_one_line(policy_file, tmp_path):
    folder = saved(policy_file, tmp_path / "hub", domain=Domain(total_steps=(64, 128)))
    with pytest.warns(OutOfDomainWarning) as seen:
        sched, opt, model = small_run(folder, torch.optim.SGD, total_steps=1024)
        run_loop(sched, opt, model, 64, max_norm=5.0)
    messages = [str(w.message) for w in seen]
    assert messages == [
        "mine-v1 used outside its trained domain: optimizer SGD (trained with AdamW)",
        "mine-v1 used outside its trained domain: total_steps=1024 (trained on 64..128)",
        "mine-v1 used outside its trained domain: max_norm=5.0 (trained with 1.0)",
        "mine-v1 used outside its trained domain: no validation loss reported in 32 steps "
        "(call report_val_loss every 16)",
    ]


def test_inside_the_domain_nothing_is_warned(policy_file, tmp_path):
    folder = saved(policy_file, tmp_path / "hub", domain=Domain(total_steps=(64, 128)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched, opt, model = small_run(folder, torch.optim.AdamW, total_steps=256)
        run_loop(sched, opt, model, 64, val_every=16)
