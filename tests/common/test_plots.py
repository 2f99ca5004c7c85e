"""Plots saved with their data: panels wrapped into rows, every point in the CSV."""

from __future__ import annotations

import csv

from matplotlib.image import imread

from common.plots import Panel, save_panels


def test_panels_wrap_into_rows_of_columns_and_every_point_is_in_the_csv(tmp_path):
    panels = [Panel(f"p{i}", "x", "y", series={"a": ([1, 2], [i, i + 1])}) for i in range(4)]
    png = save_panels(tmp_path / "fig.png", panels, columns=3)
    height, width = imread(png).shape[:2]
    assert (width, height) == (3 * 550, 2 * 400)  # 5.5 x 4 inches a panel, 100 dpi
    rows = list(csv.DictReader(png.with_suffix(".csv").open()))
    assert [(r["panel"], float(r["x"]), float(r["y"])) for r in rows] == [
        (f"p{i}", x, float(i + x - 1)) for i in range(4) for x in (1.0, 2.0)
    ]
    one_row = save_panels(tmp_path / "row.png", panels[:2])
    assert imread(one_row).shape[:2] == (400, 2 * 550)
