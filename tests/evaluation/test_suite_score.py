"""The suite's score on a hand-built table: per-workload Δ and worst k, mean ranks."""

from __future__ import annotations

import pytest

from evaluation.suite_score import suite_score

# losses by (workload, method, k): one per seed 1, 2; dyadic values so that ties are exact
TABLE = {
    ("A", "cosine", -1): (1.5, 1.25), ("A", "cosine", 0): (1.0, 1.0), ("A", "cosine", 1): (1.5, 1.5),
    ("A", "lrfree", None): (1.125, 1.125),
    ("A", "pol", -1): (1.0, 1.25), ("A", "pol", 0): (0.875, 1.125), ("A", "pol", 1): (1.0, 1.5),
    ("B", "cosine", -1): (150, 150), ("B", "cosine", 0): (100, 100), ("B", "cosine", 1): (200, 200),
    ("B", "lrfree", None): (50, 50),
    ("B", "pol", -1): (125, 125), ("B", "pol", 0): (125, 125), ("B", "pol", 1): (125, 125),
}  # fmt: skip


def rows(scale_b: float = 1.0, drop=()) -> list[dict]:
    out = []
    for (w, m, k), losses in TABLE.items():
        for seed, loss in zip((1, 2), losses, strict=True):
            if (w, m, k, seed) not in drop:
                out.append(
                    {
                        "workload": w,
                        "method": m,
                        "k": k,
                        "seed": seed,
                        "test_loss": loss * (scale_b if w == "B" else 1.0),
                    }
                )
    return out


def test_per_workload_deltas_and_worst_k_by_hand():
    score = suite_score(rows(), n_boot=200)
    a = score["workloads"]["A"]
    assert {k: d["mean"] for k, d in a["pol"]["delta"].items()} == {-1: 0.125, 0: 0.0, 1: 0.25}
    assert (a["pol"]["worst"]["k"], a["pol"]["worst"]["mean"]) == (1, 0.25)
    assert a["lrfree"]["takes_lr"] is False
    assert (a["lrfree"]["worst"]["k"], a["lrfree"]["worst"]["mean"]) == (None, 0.125)
    assert a["cosine"]["worst"]["mean"] == 0.5 and a["cosine"]["delta"][0]["mean"] == 0.0
    assert score["workloads"]["B"]["lrfree"]["worst"]["mean"] == -50.0


def test_mean_ranks_by_hand_and_blind_to_a_workloads_loss_scale():
    score = suite_score(rows(), n_boot=200)
    ranks = {m: r["mean_rank"] for m, r in score["mean_rank"].items()}
    # A: cosine (3 + 1.5 + 3) / 3, lrfree (1.5 + 3 + 1) / 3, pol (1.5 + 1.5 + 2) / 3;
    # B: lrfree 1, pol (2 + 3 + 2) / 3, cosine (3 + 2 + 3) / 3; then the mean of A and B
    assert ranks == pytest.approx({"cosine": 31 / 12, "lrfree": 17 / 12, "pol": 2.0})
    scaled = suite_score(rows(scale_b=1000.0), n_boot=200)
    assert {m: r["mean_rank"] for m, r in scaled["mean_rank"].items()} == pytest.approx(ranks)
    for m, r in score["mean_rank"].items():
        assert r["ci_low"] <= r["mean_rank"] <= r["ci_high"], m
    assert score["mean_rank"] == suite_score(rows(), n_boot=200)["mean_rank"]  # seeded
    assert score["n_methods"] == 3


def test_an_incomplete_table_is_refused_naming_what_is_missing():
    with pytest.raises(
        ValueError,
        match=r"workload 'A': pol at k=1 ran seeds \[1\], the "
        r"reference \[1, 2\]",
    ):
        suite_score(rows(drop={("A", "pol", 1, 2)}))
    partial = [r for r in rows() if not (r["workload"] == "B" and r["method"] == "pol")]
    with pytest.raises(ValueError, match=r"\['pol'\] ran on 'A' but not on every workload"):
        suite_score(partial)
    no_ref = [r for r in rows() if not (r["method"] == "cosine" and r["k"] == 0)]
    with pytest.raises(ValueError, match=r"workload 'A' has no 'cosine' run at k = 0"):
        suite_score(no_ref)
    no_k = [r for r in rows() if not (r["method"] == "pol" and r["k"] == 1)]
    with pytest.raises(ValueError, match=r"workload 'A': pol has no runs at k = \[1\]"):
        suite_score(no_k)
    diverged = rows()
    diverged[0]["test_loss"] = float("nan")
    with pytest.raises(ValueError, match=r"has test_loss nan: score a diverged run with"):
        suite_score(diverged)


def test_a_recipes_training_seeds_are_ranked_against_the_others_never_each_other():
    score = suite_score(rows(), groups={"r": ["lrfree", "pol"]}, n_boot=200)
    ranks = {m: r["mean_rank"] for m, r in score["mean_rank"].items()}
    # pools {cosine, lrfree} and {cosine, pol}; A: cosine (2+1+2 + 2+1.5+2) / 6, lrfree
    # (1+2+1) / 3, pol (1+1.5+1) / 3; B: cosine (2+2+2 + 2+1+2) / 6, lrfree 1, pol (1+2+1) / 3
    assert ranks == pytest.approx({"cosine": 43 / 24, "lrfree": 7 / 6, "pol": 5 / 4})
    assert score["pool_size"] == 2 and score["groups"] == {"r": ["lrfree", "pol"]}
    with pytest.raises(ValueError, match="must be disjoint, of one size, and of methods"):
        suite_score(rows(), groups={"r": ["lrfree", "nope"]}, n_boot=10)
