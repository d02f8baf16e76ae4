"""The pieces of training and rendering that need no trained model: fast."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.engine.errors import InputError, ResourceError
from pipeline.engine.masks import ProductBox
from pipeline.engine.orbit import framing, orbit, row_elevations
from pipeline.engine.presets import PRESET_NAMES, get_preset
from pipeline.engine.render import View, check_frame_size, chunk_rays, view_rays

BOX = ProductBox(np.array([-0.5, -0.4, -0.8]), np.array([0.5, 0.4, 0.8]))


def test_orbit_circles_the_centre_at_the_mean_elevation() -> None:
    frames = orbit((10.0, 25.0, 40.0), 3.0, 8)
    assert [f.azimuth_deg for f in frames] == [45.0 * i for i in range(8)]
    for f in frames:
        eye = f.c2w[:3, 3]
        assert np.linalg.norm(eye) == pytest.approx(3.0)
        assert np.degrees(np.arcsin(eye[2] / 3.0)) == pytest.approx(25.0)
        # OpenGL: the camera looks down its -z axis, at the origin; its x axis is level.
        assert -f.c2w[:3, 2] == pytest.approx(-eye / 3.0)
        assert f.c2w[2, 0] == pytest.approx(0.0, abs=1e-12)
    assert frames[0].c2w[:3, 3] == pytest.approx([3 * np.cos(np.radians(25)), 0,
                                                  3 * np.sin(np.radians(25))])


def test_rows_spread_over_the_captured_range_and_avoid_the_poles() -> None:
    assert row_elevations((10.0, 25.0, 40.0), 1) == [25.0]
    assert row_elevations((10.0, 25.0, 40.0), 3) == [10.0, 25.0, 40.0]
    assert row_elevations((-5.0, 50.0, 89.0), 2) == [-5.0, 80.0]
    frames = orbit((10.0, 25.0, 40.0), 3.0, 4, rows=2)
    assert [(f.index, f.row, f.elevation_deg) for f in frames] == [
        (0, 0, 10.0), (1, 0, 10.0), (2, 0, 10.0), (3, 0, 10.0),
        (4, 1, 40.0), (5, 1, 40.0), (6, 1, 40.0), (7, 1, 40.0)]


def test_framing_keeps_the_whole_box_in_every_frame() -> None:
    size = 100
    focal, distance = framing(BOX, 3.0, size)
    assert distance == 3.0
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.4, 0.4) for z in (-0.8, 0.8)])
    for frame in orbit((-30.0, 20.0, 60.0), distance, 12, rows=3):
        cam = (corners - frame.c2w[:3, 3]) @ frame.c2w[:3, :3]
        u = size / 2 + focal * cam[:, 0] / -cam[:, 2]
        v = size / 2 - focal * cam[:, 1] / -cam[:, 2]
        assert (u > 0).all() and (u < size).all() and (v > 0).all() and (v < size).all()
    # A capture from inside the product's sphere is pushed back out.
    assert framing(BOX, 0.5, size)[1] > 1.0


def test_only_rays_that_cross_the_box_are_cast() -> None:
    size = 64
    focal, distance = framing(BOX, 3.0, size)
    frame = orbit((20.0, 20.0, 20.0), distance, 1)[0]
    pixels, origins, dirs, near, far = view_rays(View.square(frame.c2w, focal, size), BOX)
    assert 0.1 * size * size < len(pixels) < 0.6 * size * size
    assert (far > near).all() and (near > 0).all()
    inside = origins + dirs * ((near + far) / 2)[:, None]
    assert ((inside >= BOX.lo - 1e-6) & (inside <= BOX.hi + 1e-6)).all()
    # Corners of the frame look past the product: no rays there.
    corner_pixels = {0, size - 1, size * (size - 1), size * size - 1}
    assert not corner_pixels & set(pixels.tolist())


def test_frame_size_and_chunks_follow_the_memory() -> None:
    check_frame_size(1024, "cpu")
    with pytest.raises(ResourceError, match="choose --size"):
        check_frame_size(10**6, "cpu")
    with pytest.raises(InputError, match="at least 16"):
        check_frame_size(8, "cpu")
    chunk = chunk_rays("cpu", 96)
    assert chunk % 1024 == 0 and 1024 <= chunk <= 1 << 18


def test_presets_are_sized_for_the_device(monkeypatch) -> None:
    monkeypatch.delenv("NERF_DEFAULT_ITERATIONS", raising=False)
    assert get_preset("standard", "cuda").iterations == 15000
    monkeypatch.setenv("NERF_DEFAULT_ITERATIONS", "9000")
    assert get_preset("standard", "cuda").iterations == 9000
    monkeypatch.setenv("NERF_DEFAULT_ITERATIONS", "lots")
    with pytest.raises(InputError, match="NERF_DEFAULT_ITERATIONS"):
        get_preset("standard", "cuda")
    monkeypatch.delenv("NERF_DEFAULT_ITERATIONS")
    gpu_test = get_preset("test", "cuda")
    assert 1000 <= gpu_test.iterations <= 2000 and 10 <= gpu_test.max_photos <= 15
    for name in PRESET_NAMES:
        assert get_preset(name, "cuda").frames == 1440
        cpu = get_preset(name, "cpu")
        assert cpu.iterations * cpu.rays_per_batch < 6000 * 2048 + 1
    assert get_preset("test", "cpu").iterations <= 200
    with pytest.raises(InputError, match="Unknown preset"):
        get_preset("ultra", "cpu")
