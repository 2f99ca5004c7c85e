"""Shipping a policy: the card's table from sweep results, the card in the folder and on
the results page, and the shipped policy's card equal to its results page."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest

from agents.hub import Domain, from_pretrained
from agents.policy import PolicyConfig, make_policy, save_policy
from agents.pretrained import shipped_folder
from evaluation.backends import LocalBackend
from experiments.lr_sweep import sweep_job
from experiments.ship_policy import (
    BASELINES,
    Workload,
    card_table,
    extract_table,
    parse_policy,
    parse_workload,
    ship_policy,
    table_block,
)

ROOT = Path(__file__).parents[2]


def point(k, mean, lo, hi):
    return {"k": k, "mean": mean, "ci_low": lo, "ci_high": hi}


def results(tmp_path: Path) -> Path:
    methods = {
        "pol": {"takes_lr": True, "worst_delta": point(3, 0.0123, -0.001, 0.0251)},
        "cosine": {"takes_lr": True, "worst_delta": point(-3, 0.5, 0.4, 0.6)},
        "prodigy_cosine": {"takes_lr": False, "worst_delta": point(None, -0.002, -0.01, 0.004)},
        "dadapt_cosine": {"takes_lr": False, "worst_delta": point(None, 0.01, 0.0, 0.02)},
        "range_test_cosine": {"takes_lr": False, "worst_delta": point(None, 0, -0.1, 0.1)},
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"summary": {"methods": methods}}))  # a sweep's results.json
    return path


def test_card_table_by_hand(tmp_path):
    table = card_table([Workload("MLP", "held out", results(tmp_path))], [("pol", "mine")])
    assert table.splitlines() == [
        "| workload | relation to training | mine | cosine from the given LR | Prodigy | "
        "D-Adaptation | LR range test + cosine |",
        "|---|---|---|---|---|---|---|",
        "| MLP | held out | +0.0123 [-0.0010, +0.0251] (k = +3) | +0.5000 [+0.4000, +0.6000] "
        "(k = -3) | -0.0020 [-0.0100, +0.0040] | +0.0100 [+0.0000, +0.0200] | "
        "+0.0000 [-0.1000, +0.1000] |",
    ]
    with pytest.raises(ValueError, match=r"has no method 'other'; it has \['cosine'"):
        card_table([Workload("MLP", "held out", results(tmp_path))], [("other", "x")])


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="expected LABEL::RELATION::RESULTS_JSON"):
        parse_workload("MLP::held out")
    with pytest.raises(ValueError, match=r"results file 'nope\.json' does not exist"):
        parse_workload("MLP::held out::nope.json")
    assert parse_policy("ship_s0=tuningfree-v1") == ("ship_s0", "tuningfree-v1")
    with pytest.raises(ValueError, match="expected METHOD=TITLE"):
        parse_policy("ship_s0")


def test_ship_policy_writes_the_card_and_the_results_page(tmp_path):
    env = gym.make("LRSchedule-Quadratic-v0")
    config = PolicyConfig(features_dim=8, patch_size=8, d_model=8, n_layers=1)
    policy = make_policy(env.observation_space, env.action_space, config)
    pt = save_policy(policy, tmp_path / "p.pt", config, env=env, gamma=0.99)
    page = tmp_path / "page.md"
    page.write_text("# Results\n\n<!-- mine-v1 table: filled later -->\n\nMore.\n")
    workloads = [Workload("MLP", "held out", results(tmp_path))]

    def ship(training: dict, card: str = "# Card\n\n{table}", name: str = "mine-v1") -> Path:
        return ship_policy(
            pt,
            tmp_path / name,
            name=name,
            card=card,
            workloads=workloads,
            policies=[("pol", name)],
            domain=Domain(),
            training=training,
            results_page=page,
        )

    folder = ship({"commit": "abc"})
    card = (folder / "README.md").read_text()
    expected = card_table(workloads, [("pol", "mine-v1")])
    assert extract_table(card, "mine-v1") == expected
    text = page.read_text()
    assert text.startswith("# Results\n\n" + table_block("mine-v1", expected))
    assert text.endswith("\nMore.\n")
    assert from_pretrained(folder, device="cpu").lrgym_pretrained.config["training"] == {
        "commit": "abc"
    }
    with pytest.raises(ValueError, match=r"the card has no \{table\} placeholder"):
        ship({}, card="# Card", name="x")
    assert not (tmp_path / "x").exists()
    # shipping again replaces the block rather than adding one
    ship({})
    assert page.read_text() == text


def test_the_shipped_cards_table_equals_the_results_pages():
    page = (ROOT / "docs/results/tuningfree.md").read_text()
    for name in ("tuningfree-v1",):
        card = (shipped_folder(name) / "README.md").read_text()
        assert extract_table(card, name) == extract_table(page, name)


def test_card_table_reads_a_real_sweeps_results(tmp_path):
    env = gym.make("LRSchedule-Quadratic-v0", total_steps=32)
    config = PolicyConfig(features_dim=8, patch_size=8, d_model=8, n_layers=1)
    policy = make_policy(env.observation_space, env.action_space, config)
    pt = save_policy(policy, tmp_path / "p.pt", config, env=env, gamma=0.99)
    plan = {
        "env_id": "LRSchedule-Quadratic-v0",
        "options": {"total_steps": 32},
        "reference_lr": 0.01,
        "ks": [-1, 0],
        "final_seeds": [10_000, 10_001],
        "methods": [name for name, _ in BASELINES],
        "policies": [f"pol={pt}"],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    sweep_job(tmp_path / "plan.json", tmp_path / "out", LocalBackend(workers=0), progress=False)
    results = tmp_path / "out" / "results.json"
    row = card_table([Workload("Quad", "held out", results)], [("pol", "mine")]).splitlines()[2]
    methods = json.loads(results.read_text())["summary"]["methods"]
    worst = methods["pol"]["worst_delta"]
    assert row.startswith(
        f"| Quad | held out | {worst['mean']:+.4f} [{worst['ci_low']:+.4f}, "
        f"{worst['ci_high']:+.4f}] (k = {worst['k']:+d}) |"
    )
    prodigy = methods["prodigy_cosine"]["worst_delta"]
    assert (
        f"| {prodigy['mean']:+.4f} [{prodigy['ci_low']:+.4f}, {prodigy['ci_high']:+.4f}] |" in row
    )
