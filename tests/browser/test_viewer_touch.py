"""The 360° viewer on a touch screen: pinch to zoom, drag to pan while zoomed, double-tap
to reset, swipe up or down for rows, without the page scrolling away. A phone-sized,
touch-emulating chromium; the touches are real touch events sent through the browser's
DevTools protocol, so the viewer sees what a finger would make."""

from __future__ import annotations

import pytest

from pipeline.models import Job
from products.models import Product
from tests.browser.conftest import sign_in
from tests.site.display.test_job_page import finished_frames
from tests.site.jobs_fixtures import storage

__all__ = ["storage"]
pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

class Fingers:
    """Touches on the page, in CSS pixels."""

    def __init__(self, page) -> None:
        self.page = page
        self.cdp = page.context.new_cdp_session(page)

    def send(self, kind: str, points: list[tuple[float, float]]) -> None:
        self.cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
            {"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]})

    def gesture(self, start: list[tuple[float, float]], end: list[tuple[float, float]],
                steps: int = 8) -> None:
        self.send("touchStart", start)
        for k in range(1, steps + 1):
            t = k / steps
            self.send("touchMove", [(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
                                    for (x0, y0), (x1, y1) in zip(start, end, strict=True)])
        self.send("touchEnd", [])

    def tap(self, x: float, y: float) -> None:
        self.send("touchStart", [(x, y)])
        self.send("touchEnd", [])


def test_pinch_pan_double_tap_and_swipe_rows(phone, django_user_model, storage, artifacts):
    owner = django_user_model.objects.create_user("touch", password="pw-touch-123")
    product = Product.objects.create(owner=owner, name="Clock", sku="CLOCK-1")
    job = Job.objects.create(product=product, status=Job.Status.SUCCEEDED,
                             stage=Job.Stage.DONE, progress=1.0)
    finished_frames(job, rows=3, per_row=8, size=64)
    sign_in(phone, "touch", "pw-touch-123")
    phone.goto(job.get_absolute_url())
    phone.wait_for_selector("[data-spin-viewer][data-ready]")
    canvas = phone.locator(".spin-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    data = lambda key: canvas.get_attribute(f"data-{key}")  # noqa: E731
    fingers = Fingers(phone)
    scroll = phone.evaluate("() => window.scrollY")

    # Pinch out: the fingers move apart, the picture zooms.
    fingers.gesture([(cx - 20, cy), (cx + 20, cy)], [(cx - 80, cy), (cx + 80, cy)])
    zoom = float(data("zoom"))
    assert 2.5 < zoom <= 4, zoom
    canvas.screenshot(path=str(artifacts / "viewer-phone-pinched.png"))

    # Zoomed in, one finger pans the picture and leaves the angle alone.
    frame, pan = data("frame"), data("pan")
    fingers.gesture([(cx, cy)], [(cx + 40, cy + 20)])
    assert data("pan") != pan and data("frame") == frame
    assert float(data("zoom")) == zoom

    # Double-tap: back to the whole picture.
    fingers.tap(cx, cy)
    fingers.tap(cx, cy)
    phone.wait_for_function("() => document.querySelector('.spin-canvas').dataset.zoom"
                            " === '1.00'")
    assert data("pan") == "0,0"

    # A vertical swipe changes the row of elevation, and the page does not scroll.
    row = int(data("row"))
    direction = 1 if row < 2 else -1
    fingers.gesture([(cx, cy - direction * 50)], [(cx, cy + direction * 50)])
    assert int(data("row")) == row + direction
    assert phone.evaluate("() => window.scrollY") == scroll

    # A sideways swipe turns it.
    frame = data("frame")
    fingers.gesture([(cx + 80, cy)], [(cx - 80, cy)])
    phone.wait_for_function(
        "f => document.querySelector('.spin-canvas').dataset.frame !== f", arg=frame)

