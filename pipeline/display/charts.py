"""Small server-rendered SVG charts: where the photos were taken, and the training loss.

SVG built here needs no JavaScript library, prints, scales and is readable by screen
readers through its <title> and <desc>.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from django.utils.safestring import SafeString, mark_safe

PLACED = "#2457d6"
MISSING = "#b42318"
GAP = "#f79009"


def _azimuth(position: Sequence[float]) -> float:
    return math.degrees(math.atan2(position[1], position[0])) % 360


def largest_gap(azimuths: Sequence[float]) -> tuple[float, float] | None:
    """The widest empty arc (start, width in degrees) between photos seen from above."""
    if len(azimuths) < 2:
        return None
    ordered = sorted(azimuths)
    gaps = [((b - a) % 360, a) for a, b in zip(ordered, ordered[1:] + ordered[:1], strict=True)]
    width, start = max(gaps)
    return start, width


def camera_plot_svg(summary: dict, *, size: int = 320) -> SafeString:
    """Top-down plot of the photos around the product from the pose stage's summary.

    Placed photos are dots at their position; photos that could not be placed are red
    crosses on the outer ring, between the shots taken before and after them (by file
    order), so the side that lacks shots stands out. The widest empty arc is shaded.
    """
    images = summary.get("images", [])
    placed = [im for im in images if im.get("placed") and im.get("position")]
    half = size / 2
    reach = max((math.hypot(*im["position"][:2]) for im in placed), default=1.0) * 1.15
    scale = (half - 24) / max(reach, 1.0)

    def xy(px: float, py: float) -> tuple[float, float]:
        # Seen from above: +x to the right, +y up the page.
        return half + px * scale, half - py * scale

    parts: list[str] = []
    gap = largest_gap([_azimuth(im["position"]) for im in placed])
    if gap and gap[1] > 45:
        start, width = gap
        r = (half - 12)
        a0, a1 = math.radians(start), math.radians(start + width)
        x0, y0 = half + r * math.cos(a0), half - r * math.sin(a0)
        x1, y1 = half + r * math.cos(a1), half - r * math.sin(a1)
        large = 1 if width > 180 else 0
        parts.append(
            f'<path d="M{half:.1f},{half:.1f} L{x0:.1f},{y0:.1f} '
            f'A{r:.1f},{r:.1f} 0 {large} 0 {x1:.1f},{y1:.1f} Z" fill="{GAP}" '
            f'fill-opacity="0.18"><title>No photos over {width:.0f}°: take more from this side'
            "</title></path>"
        )
    cx, cy = xy(0, 0)
    parts.append(
        f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{max(scale, 4):.1f}" fill="#d0d5dd">'
        "<title>The product</title></circle>"
    )
    for im in placed:
        x, y = xy(*im["position"][:2])
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{PLACED}">'
            f"<title>{escape(im['name'])}: placed</title></circle>"
        )

    # Unplaced photos sit between their placed neighbours in shot order, on the rim.
    order = {im["name"]: k for k, im in enumerate(images)}
    rim = half - 10
    by_order = sorted(placed, key=lambda im: order[im["name"]])
    for im in images:
        if im.get("placed"):
            continue
        k = order[im["name"]]
        before = [p for p in by_order if order[p["name"]] < k]
        after = [p for p in by_order if order[p["name"]] > k]
        if before and after:
            a, b = _azimuth(before[-1]["position"]), _azimuth(after[0]["position"])
            angle = math.radians((a + ((b - a) % 360) / 2) % 360)
        elif before or after:
            angle = math.radians(_azimuth((before or after)[-1 if before else 0]["position"]))
        else:
            angle = 2 * math.pi * k / max(len(images), 1)
        x, y = half + rim * math.cos(angle), half - rim * math.sin(angle)
        reason = escape(im.get("reason") or "not placed")
        parts.append(
            f'<g stroke="{MISSING}" stroke-width="2.5"><title>{escape(im["name"])}: {reason}'
            f'</title><line x1="{x - 5:.1f}" y1="{y - 5:.1f}" x2="{x + 5:.1f}" y2="{y + 5:.1f}"/>'
            f'<line x1="{x - 5:.1f}" y1="{y + 5:.1f}" x2="{x + 5:.1f}" y2="{y - 5:.1f}"/></g>'
        )

    total = len(images)
    title = f"Where the photos were taken: {len(placed)} of {total} placed"
    # Safe: every piece of text inside was escaped above.
    return mark_safe(
        f'<svg class="chart camera-plot" viewBox="0 0 {size} {size}" role="img" '
        f'aria-labelledby="camera-plot-title" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="camera-plot-title">{escape(title)}</title>'
        f'<circle cx="{half}" cy="{half}" r="{half - 10}" fill="none" stroke="#e4e7ec"/>'
        + "".join(parts)
        + "</svg>"
    )


def loss_curve_svg(
    points: Sequence[Sequence[float]], *, width: int = 480, height: int = 200
) -> SafeString:
    """Training loss against step, on a log scale (loss falls by orders of magnitude)."""
    pts = [(float(s), float(v)) for s, v in points if v and v > 0]
    if len(pts) < 2:
        return mark_safe("")
    pad = 36
    steps = [s for s, _ in pts]
    logs = [math.log10(v) for _, v in pts]
    s0, s1 = min(steps), max(steps) or 1
    l0, l1 = min(logs), max(logs)
    if l1 - l0 < 1e-6:
        l0, l1 = l0 - 0.5, l1 + 0.5

    def xy(s: float, lv: float) -> str:
        x = pad + (s - s0) / max(s1 - s0, 1) * (width - pad - 8)
        y = 8 + (l1 - lv) / (l1 - l0) * (height - pad - 8)
        return f"{x:.1f},{y:.1f}"

    line = " ".join(xy(s, lv) for s, lv in zip(steps, logs, strict=True))
    last_step, last_loss = pts[-1]
    title = (
        f"Training loss: {pts[0][1]:.4g} at step {s0:.0f}, "
        f"{last_loss:.4g} at step {last_step:.0f}"
    )
    return mark_safe(  # numbers only, and the escaped title
        f'<svg class="chart loss-curve" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="loss-title" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="loss-title">{escape(title)}</title>'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - 8}" y2="{height - pad}" '
        'stroke="#98a2b3"/>'
        f'<line x1="{pad}" y1="8" x2="{pad}" y2="{height - pad}" stroke="#98a2b3"/>'
        f'<text x="{pad}" y="{height - pad + 16}" font-size="11">{s0:.0f}</text>'
        f'<text x="{width - 8}" y="{height - pad + 16}" font-size="11" text-anchor="end">'
        f"{s1:.0f} steps</text>"
        f'<text x="{pad - 4}" y="14" font-size="11" text-anchor="end">{10 ** l1:.2g}</text>'
        f'<text x="{pad - 4}" y="{height - pad}" font-size="11" text-anchor="end">'
        f"{10 ** l0:.2g}</text>"
        f'<polyline points="{line}" fill="none" stroke="{PLACED}" stroke-width="2"/>'
        "</svg>"
    )
