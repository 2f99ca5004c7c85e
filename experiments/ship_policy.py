"""Shipping a trained policy: its Hub-format folder with a model card whose table is
measured, from the LR-sensitivity sweeps that evaluated it.

:func:`ship_policy` (behind ``scripts/ship_policy.py``) reads a recipe's ``policy.pt``
and the ``results.json`` of the sweeps (``scripts/sweep_lr.py``) that evaluated it on
each workload, builds the card's table (:func:`card_table`: worst Δ test loss vs tuned
cosine over the base LRs reference x 2^k, with 95% CIs, beside the baselines a user
would pick instead), and writes the folder (:func:`agents.hub.save_pretrained`). The
same table goes, between the markers of :func:`table_block`, into the results page, and
a test checks that the two are equal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.hub import Domain, save_pretrained
from agents.policy import read_policy_file
from common.files import atomic_write_text
from evaluation.sweep_report import fmt_ci

# the baselines of the card, in its column order: (method in the sweep, column title)
BASELINES = (
    ("cosine", "cosine from the given LR"),
    ("prodigy_cosine", "Prodigy"),
    ("dadapt_cosine", "D-Adaptation"),
    ("range_test_cosine", "LR range test + cosine"),
)


@dataclass(frozen=True)
class Workload:
    """One row of the card: a sweep's results on one workload.

    Attributes:
        label: what the reader sees (``"MLP-MNIST, 2,000 steps"``).
        relation: the workload's relation to training (``"trained on"``, ``"held out"``...).
        results: the sweep's ``results.json``.
    """

    label: str
    relation: str
    results: str | Path


def _delta(worst: Mapping[str, Any] | None, *, with_k: bool) -> str:
    if worst is None:
        return "—"
    text = fmt_ci(worst, "mean", signed=True)
    return f"{text} (k = {worst['k']:+d})" if with_k and worst.get("k") is not None else text


def card_table(workloads: Sequence[Workload], policies: Sequence[tuple[str, str]]) -> str:
    """The Markdown table: per workload, each policy's and each baseline's worst Δ test
    loss vs tuned cosine over k (policies and cosine with the k where it is worst; the
    LR-free methods take no LR, one point). ``policies``: ``(method, column title)``.

    Raises:
        ValueError: a results file without one of the methods, naming both.
    """
    columns = [*policies, *BASELINES]
    head = ["workload", "relation to training", *(title for _, title in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for w in workloads:
        methods = json.loads(Path(w.results).read_text())["summary"]["methods"]
        cells = [w.label, w.relation]
        for name, _ in columns:
            if name not in methods:
                raise ValueError(f"{w.results} has no method {name!r}; it has {sorted(methods)}")
            m = methods[name]
            cells.append(_delta(m["worst_delta"], with_k=m["takes_lr"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_block(name: str, table: str) -> str:
    """The table between markers, as the card and the results page both hold it."""
    return f"<!-- {name} table -->\n{table}<!-- end of {name} table -->\n"


def extract_table(text: str, name: str) -> str:
    """The table between the markers of :func:`table_block` in ``text``.

    Raises:
        ValueError: the markers are missing.
    """
    start, end = f"<!-- {name} table -->\n", f"<!-- end of {name} table -->"
    if start not in text or end not in text:
        raise ValueError(f"no {name} table between {start.strip()} and {end} markers")
    return text.split(start, 1)[1].split(end, 1)[0]


def ship_policy(
    policy_file: str | Path,
    out: str | Path,
    *,
    name: str,
    card: str,
    workloads: Sequence[Workload],
    policies: Sequence[tuple[str, str]],
    domain: Domain,
    training: Mapping[str, Any],
    results_page: str | Path | None = None,
) -> Path:
    """Write ``policy_file`` as the Hub-format folder ``out``, with its card.

    ``card`` is the card's Markdown with ``{table}`` where the measured table goes
    (:func:`table_block`). ``training``: recipe command, commit... (``config.json``).
    ``results_page``: a page whose table block (or placeholder) gets the same table.
    """
    if "{table}" not in card:
        raise ValueError("the card has no {table} placeholder: the measured table would be lost")
    contents = read_policy_file(policy_file)  # a clear error before anything is written
    table = table_block(name, card_table(workloads, policies))
    folder = save_pretrained(
        contents,
        out,
        name=name,
        card=card.replace("{table}", table),
        domain=domain,
        extra=training,
    )
    if results_page is not None:
        put_table(results_page, name, table)
    return folder


def put_table(page: str | Path, name: str, table: str) -> Path:
    """Replace the ``name`` table block of a results page (or its placeholder line,
    ``<!-- {name} table: ... -->``) with ``table``, atomically.

    Raises:
        ValueError: the page has neither the block nor the placeholder.
    """
    text = Path(page).read_text()
    try:
        old = table_block(name, extract_table(text, name))
    except ValueError:
        lines = [x for x in text.splitlines(keepends=True) if x.startswith(f"<!-- {name} table:")]
        if not lines:
            raise ValueError(f"{page} has no {name} table block nor placeholder") from None
        old = lines[0]
    return atomic_write_text(page, text.replace(old, table, 1))


def parse_workload(text: str) -> Workload:
    """``"label::relation::results.json"`` as a :class:`Workload`.

    Raises:
        ValueError: not three ``::``-separated parts, or a results file that does not exist.
    """
    parts = text.split("::")
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise ValueError(f"workload {text!r} is invalid; expected LABEL::RELATION::RESULTS_JSON")
    if not Path(parts[2]).is_file():
        raise ValueError(f"workload {parts[0]!r}: results file {parts[2]!r} does not exist")
    return Workload(*parts)


def parse_policy(text: str) -> tuple[str, str]:
    """``"method=column title"`` (a policy of the sweeps and its title in the card).

    Raises:
        ValueError: no ``=``.
    """
    method, sep, title = text.partition("=")
    if not sep or not method or not title:
        raise ValueError(f"policy column {text!r} is invalid; expected METHOD=TITLE")
    return method, title
