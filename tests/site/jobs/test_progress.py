"""pipeline.jobs.progress: the overall bar and the time left, without a Job or a worker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.jobs.progress import (
    STAGE_WEIGHTS,
    doc_of_this_run,
    overall_fraction,
    progress_fields,
    seconds_left,
)

ALL = ("colmap", "train", "render", "finalize")
RERENDER = ("render", "finalize")


def test_weights_cover_the_bar():
    assert sum(STAGE_WEIGHTS.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(("planned", "stage", "fraction", "expected"), [
    (ALL, "colmap", 0.0, 0.0),
    (ALL, "colmap", 0.5, 0.05),
    (ALL, "train", 0.5, 0.4),
    (ALL, "render", 1.0, 0.95),
    (ALL, "finalize", 1.0, 1.0),
    (RERENDER, "render", 0.0, 0.0),
    (RERENDER, "render", 0.5, round(0.125 / 0.30, 4)),
    (RERENDER, "finalize", 1.0, 1.0),
])
def test_overall_fraction_scales_to_the_planned_stages(planned, stage, fraction, expected):
    assert overall_fraction(planned, stage, fraction) == pytest.approx(expected)


def test_seconds_left_uses_the_stage_eta_then_the_later_estimates():
    estimate = {"colmap": 100.0, "train": 600.0, "render": 200.0, "finalize": 10.0}
    assert seconds_left(ALL, "train", 0.5, estimate, stage_eta=42) == 42 + 210
    # No ETA from the engine yet: the rest of the stage's own estimate.
    assert seconds_left(ALL, "train", 0.25, estimate) == 450 + 210
    assert seconds_left(ALL, "finalize", 1.0, estimate) == 0
    assert seconds_left(ALL, "colmap", 0.0, {}) == 0  # no estimate at all


def test_doc_of_this_run_ignores_older_or_other_stages():
    started = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    fresh = {"stage": "train", "updated_at": (started + timedelta(seconds=5)).isoformat()}
    assert doc_of_this_run(fresh, "train", started) is fresh
    assert doc_of_this_run(fresh, "render", started) is None
    old = {"stage": "train", "updated_at": (started - timedelta(seconds=5)).isoformat()}
    assert doc_of_this_run(old, "train", started) is None
    assert doc_of_this_run({"stage": "train", "updated_at": "soon"}, "train", started) is None
    assert doc_of_this_run(None, "train", started) is None


def test_progress_fields_clamp_and_carry_the_message():
    estimate = {"train": 100.0, "render": 50.0, "finalize": 5.0}
    doc = {"stage_progress": 1.7, "eta_seconds": None, "message": "Step 10"}
    assert progress_fields(ALL, "train", doc, estimate) == {
        "stage_progress": 1.0, "progress": 0.7, "eta_seconds": 55, "message": "Step 10"}
    assert progress_fields(ALL, "train", {"stage_progress": -1}, estimate)["progress"] == 0.1
    assert progress_fields(ALL, "train", None, estimate) == {}
