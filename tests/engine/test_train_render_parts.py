"""The pieces of training and rendering that need no trained model: fast."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.engine.errors import InputError, ResourceError
from pipeline.engine.masks import ProductBox
from pipeline.engine.orbit import framing, orbit, row_elevations
from pipeline.engine.presets import PRESET_NAMES, get_preset
from pipeline.engine.render import View, alpha_levels, check_frame_size, chunk_rays, view_rays

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


def solid_and_speck(points: np.ndarray) -> np.ndarray:
    """A density field: a solid ball (the product), a faint haze around it, and a small
    dense speck apart from it (a floater)."""
    from_body = np.linalg.norm(points - [0.0, 0.0, -0.2], axis=1)
    from_speck = np.linalg.norm(points - [0.35, 0.3, 0.6], axis=1)
    return np.where(from_body < 0.3, 200.0, 0.0) + np.where(from_body < 0.34, 2.0, 0.0) + \
        np.where(from_speck < 0.03, 200.0, 0.0)


def test_floaters_apart_from_the_product_are_told_from_it() -> None:
    from pipeline.engine.density import density_grid, product_cells

    grid = density_grid(solid_and_speck, BOX, cells=64)
    body = product_cells(grid)
    centres = grid.lo + (np.argwhere(np.ones(body.shape, bool)) + 0.5) * grid.step
    kept = body.reshape(-1)
    at_body = np.linalg.norm(centres - [0.0, 0.0, -0.2], axis=1)
    at_speck = np.linalg.norm(centres - [0.35, 0.3, 0.6], axis=1)
    assert kept[at_body < 0.33].all()  # the body and its soft edge
    assert not kept[at_speck < 0.03].any()  # the speck goes
    assert not kept[at_body > 0.34 + 4 * grid.step].any()  # nothing far from the body
    # Nothing solid at all (an untrained model): nothing is told apart, all is kept.
    assert product_cells(density_grid(lambda p: np.zeros(len(p)), BOX, cells=16)).all()


def test_framing_fills_the_frame_with_the_silhouette_and_centres_it() -> None:
    from pipeline.engine.density import density_grid, product_cells
    from pipeline.engine.framing import frame_product

    grid = density_grid(solid_and_speck, BOX, cells=64)
    grid = grid.only(product_cells(grid))
    shot, path = frame_product(grid, BOX, (10.0, 25.0, 40.0), 3.0, 8, 1, 200, 80)
    assert shot.fill == 0.8 and len(path) == 8
    # The ball's radius 0.3 at about 3.0 from the camera: its silhouette spans 80 % of 200.
    centre = np.array([0.0, 0.0, -0.2])
    assert np.allclose(shot.center, centre, atol=0.03)
    for frame in path:
        eye = frame.c2w[:3, 3]
        distance = np.linalg.norm(eye - centre)
        half = np.tan(np.arcsin(0.3 / distance)) * shot.focal
        assert 2 * half / 200 == pytest.approx(0.8, abs=0.04)
        cam = (centre - eye) @ frame.c2w[:3, :3]
        u = shot.cx + shot.focal * cam[0] / -cam[2]
        v = shot.cy - shot.focal * cam[1] / -cam[2]
        assert abs(u - 100) < 5 and abs(v - 100) < 5  # a grid cell is 6.6 px here


def test_frames_alpha_is_solid_inside_clear_outside_and_keeps_the_outline() -> None:
    """Faint haze (accumulation up to 0.1) is transparent, a product the short training
    left slightly see-through (0.9 and over) is opaque, and half stays half, so the
    outline does not move; between, alpha rises steadily for soft edges."""
    accumulation = np.array([0.0, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 1.0])
    alpha = alpha_levels(accumulation)
    assert alpha.tolist() == pytest.approx([0, 0, 0, 0.25, 0.5, 0.75, 1, 1, 1])
    ramp = alpha_levels(np.linspace(0.1, 0.9, 50))
    assert (np.diff(ramp) > 0).all()
