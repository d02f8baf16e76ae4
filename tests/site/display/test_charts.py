"""The SVG charts on the product and job pages."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from pipeline.display.charts import camera_plot_svg, largest_gap, loss_curve_svg

SVG = "{http://www.w3.org/2000/svg}"


def ring(n: int, skip: range = range(0)) -> dict:
    images = []
    for k in range(n):
        a = 2 * math.pi * k / n
        placed = k not in skip
        images.append({
            "name": f"IMG_{k:02d}<x>.jpg",
            "placed": placed,
            "position": [3 * math.cos(a), 3 * math.sin(a), 1.0] if placed else None,
            "reason": None if placed else "too few matches",
        })
    return {"images": images}


def test_largest_gap_finds_the_missing_side():
    start, width = largest_gap([0, 30, 60, 90, 120, 300, 330])
    assert (start, width) == (120, 180)
    assert largest_gap([10]) is None


def test_camera_plot_marks_placed_and_unplaced_photos():
    svg = str(camera_plot_svg(ring(24, skip=range(6, 12))))
    root = ET.fromstring(svg)
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert titles[0] == "Where the photos were taken: 18 of 24 placed"
    assert sum(1 for t in titles if t.endswith(": placed")) == 18
    assert sum(1 for t in titles if t.endswith("too few matches")) == 6
    # The six missing shots leave a 105° hole that the plot shades as a gap.
    gap = [t for t in titles if t.startswith("No photos over")]
    assert gap == ["No photos over 105°: take more from this side"]
    # Names are escaped, never markup.
    assert "IMG_00<x>.jpg" in titles[2] or any("IMG_00<x>.jpg" in t for t in titles)
    assert "<x>" not in svg


def test_unplaced_photos_sit_on_the_side_they_were_taken_from():
    svg = camera_plot_svg(ring(24, skip=range(6, 12)))
    root = ET.fromstring(str(svg))
    crosses = [g for g in root.iter(f"{SVG}g")]
    xs = [float(g.find(f"{SVG}line").get("x1")) + 5 for g in crosses]
    ys = [float(g.find(f"{SVG}line").get("y1")) + 5 for g in crosses]
    # Shots 6–11 of 24 span 90°–165°: upper left of the plot seen from above.
    for x, y in zip(xs, ys, strict=True):
        assert x <= 160 + 1 and y < 160


def test_loss_curve_draws_every_point_on_a_log_scale():
    points = [[s, 0.5 * 0.99**s] for s in range(0, 500, 10)]
    root = ET.fromstring(str(loss_curve_svg(points)))
    line = root.find(f"{SVG}polyline").get("points").split()
    assert len(line) == 50
    ys = [float(p.split(",")[1]) for p in line]
    assert ys == sorted(ys)  # falling loss goes down the page
    # Exponential decay is a straight line on a log scale.
    steps = [ys[k + 1] - ys[k] for k in range(len(ys) - 1)]
    assert max(steps) - min(steps) < 0.5


def test_loss_curve_needs_two_points():
    assert str(loss_curve_svg([[0, 0.3]])) == ""
