"""Only right cameras: finds placed photos whose pose disagrees with the rest.

COLMAP places a photo where most of its matches agree. On a product that looks nearly the
same from opposite sides, the matches with the far side can win, and the photo is placed
mirrored across the product with a small reprojection error: the model explains it, so
COLMAP keeps it. Such a camera would train the NeRF with pixels from the wrong side, so
each placed photo is checked against evidence the mapping did not optimise for:

- its verified matches with every other placed photo (two-view geometry, before mapping):
  a right camera agrees with most of them; a mirrored one contradicts those with the
  photos really beside it;
- its neighbours in shooting order (file names from a phone are in shooting order): a
  photo placed far from two neighbours that agree with each other is out of place;
- whether it shows the product at all.

A suspect is placed once more from the matches its current pose cannot explain (they are
with the photos it really stands beside), and kept only when its new pose agrees; otherwise
it is left out, with a reason for the shop owner.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

AGREEMENT_MIN = 0.5
"""A photo whose pose agrees with less than this share of its verified matches is wrong."""
AGREEMENT_WITH_ORDER_MIN = 0.75
"""...and less than this share is enough when it also sits apart from its neighbours in
shooting order."""
ORDER_NEIGHBOURS_AGREE_DEG = 40.0
"""Two neighbours in shooting order agree when seen from the product this close together."""
ORDER_APART_DEG = 90.0
"""A photo this far (seen from the product) from both of its agreeing neighbours is apart."""
MIN_CORRESPONDENCES = 30
"""Fewer 2D–3D matches than this cannot place a photo again reliably."""


@dataclass(frozen=True)
class Verdict:
    """What happened to one suspect photo (its name in the COLMAP database)."""

    name: str
    replaced: bool
    """True when it was placed again and now agrees; False when it was left out."""
    reason: str


def check_poses(model: Any, database: Path, order: list[str],
                label: Callable[[str], str] = str) -> list[Verdict]:
    """Finds the wrong cameras of `model` (a pycolmap Reconstruction, changed in place),
    places each once more, and deregisters those that still disagree.

    `order` is the photos' database names in shooting order; `label` names a photo, from
    its database name, in the reasons the shop owner reads.
    """
    import pycolmap

    registered = {model.image(i).name: i for i in model.reg_image_ids()}
    if len(registered) < 4:
        return []
    with pycolmap.Database.open(database) as db:
        keypoints = {i: db.read_keypoints(i)[:, :2] for i in registered.values()}
        pair_ids, geometries = db.read_two_view_geometries()
        pairs = []
        for pair_id, geometry in zip(pair_ids, geometries, strict=True):
            a, b = pycolmap.pair_id_to_image_pair(pair_id)
            if a in keypoints and b in keypoints and len(geometry.inlier_matches):
                pairs.append((a, b, np.asarray(geometry.inlier_matches)))

    names = {i: n for n, i in registered.items()}
    suspects = _suspects(model, pairs, keypoints, order, {i: label(n) for i, n in names.items()})
    verdicts = []
    for image_id, why in suspects.items():
        if why == "away":
            verdicts.append(_leave_out(model, image_id, "does not show the product: it "
                                       "looks away from it. Retake it facing the product."))
            continue
        where = _true_neighbours(model, image_id, pairs, keypoints,
                                 {i: label(n) for i, n in names.items()}, suspects)
        if _place_again(model, image_id, pairs, keypoints, suspects):
            log.info("placed %s again, consistently this time", names[image_id])
            verdicts.append(Verdict(names[image_id], True, "placed again consistently"))
            continue
        advice = f"retake it from beside {where}" if where else "retake it"
        verdicts.append(_leave_out(
            model, image_id, f"placed inconsistently ({why}): {advice}, with more of the "
            "product's details in view."))
    return verdicts


def _suspects(model: Any, pairs: list[tuple[int, int, np.ndarray]],
              keypoints: dict[int, np.ndarray], order: list[str], names: dict[int, str]
              ) -> dict[int, str]:
    """{image id: why in a few words} for the photos whose pose disagrees, worst first."""
    focus = _focus(model, names)
    suspects = {i: "away" for i in names if not _shows_point(model, i, focus)}
    agreement = {key: _agreement(model, a, b, m, keypoints)
                 for key, (a, b, m) in enumerate(pairs)}
    apart = _apart_from_neighbours(model, order, names)
    # One at a time, worst first: a wrong camera also spoils its partners' agreement, and
    # must not drag a right one out with it.
    while True:
        shares = _shares(pairs, agreement, suspects)
        candidates = [(share, image_id) for image_id, share in shares.items()
                      if share < AGREEMENT_MIN
                      or (image_id in apart and share < AGREEMENT_WITH_ORDER_MIN)]
        if not candidates:
            return suspects
        share, worst = min(candidates)
        why = f"only {share:.0%} of its matches with other photos agree with where it was put"
        if worst in apart:
            why += f", and it is far from {apart[worst]}, taken just before and after it"
        suspects[worst] = why


def _shares(pairs: list[tuple[int, int, np.ndarray]], agreement: dict[int, np.ndarray],
            excluded: dict[int, str]) -> dict[int, float]:
    agree: dict[int, int] = defaultdict(int)
    total: dict[int, int] = defaultdict(int)
    for key, (a, b, _) in enumerate(pairs):
        if a in excluded or b in excluded:
            continue
        ok = int(agreement[key].sum())
        for image_id in (a, b):
            agree[image_id] += ok
            total[image_id] += len(agreement[key])
    return {i: agree[i] / total[i] for i in total if total[i] > 0}


def _agreement(model: Any, a: int, b: int, matches: np.ndarray,
               keypoints: dict[int, np.ndarray]) -> np.ndarray:
    """Which verified matches between photos a and b the placed cameras explain: their
    Sampson distance to the epipolar geometry the two poses imply is within a few pixels."""
    image_a, image_b = model.image(a), model.image(b)
    cam_a, cam_b = image_a.camera, image_b.camera
    xa = _homogeneous(cam_a.cam_from_img(keypoints[a][matches[:, 0]]))
    xb = _homogeneous(cam_b.cam_from_img(keypoints[b][matches[:, 1]]))
    relative = image_b.cam_from_world() * image_a.cam_from_world().inverse()
    r = relative.rotation.matrix()
    t = np.asarray(relative.translation, float)
    essential = _skew(t / max(np.linalg.norm(t), 1e-12)) @ r
    ea, eb = xa @ essential.T, xb @ essential
    numerator = np.einsum("ij,ij->i", xb, ea) ** 2
    denominator = ea[:, 0] ** 2 + ea[:, 1] ** 2 + eb[:, 0] ** 2 + eb[:, 1] ** 2
    distance = np.sqrt(numerator / np.maximum(denominator, 1e-18))
    focal = (cam_a.mean_focal_length() + cam_b.mean_focal_length()) / 2
    longest = max(cam_a.width, cam_a.height, cam_b.width, cam_b.height)
    return distance * focal < max(4.0, 0.005 * longest)


def _apart_from_neighbours(model: Any, order: list[str], names: dict[int, str]
                           ) -> dict[int, str]:
    """{image id: "A and B"} for photos far from both neighbours in shooting order, when
    those two agree with each other (no judgement where the order says nothing)."""
    by_name = {n: i for i, n in names.items()}
    placed = [by_name[n] for n in order if n in by_name]
    if len(placed) < 5:
        return {}
    focus = _focus(model, names)
    directions = {i: _unit(model.image(i).projection_center() - focus) for i in placed}
    apart = {}
    for k, image_id in enumerate(placed):
        before, after = placed[k - 1], placed[(k + 1) % len(placed)]
        if _angle(directions[before], directions[after]) > ORDER_NEIGHBOURS_AGREE_DEG:
            continue
        if min(_angle(directions[image_id], directions[before]),
               _angle(directions[image_id], directions[after])) > ORDER_APART_DEG:
            apart[image_id] = f"{names[before]} and {names[after]}"
    return apart


def _true_neighbours(model: Any, image_id: int, pairs: list[tuple[int, int, np.ndarray]],
                     keypoints: dict[int, np.ndarray], names: dict[int, str],
                     suspects: dict[int, str]) -> str:
    """The two photos with the most matches that its pose cannot explain: the ones it was
    really taken beside."""
    counts = {other: int((~agree).sum()) for other, _, _, agree
              in _partners(model, image_id, pairs, keypoints, suspects)}
    best = [i for i, c in sorted(counts.items(), key=lambda kv: -kv[1])[:2] if c > 0]
    return " and ".join(names[i] for i in sorted(best, key=lambda i: names[i]))


def _place_again(model: Any, image_id: int, pairs: list[tuple[int, int, np.ndarray]],
                 keypoints: dict[int, np.ndarray], suspects: dict[int, str]) -> bool:
    """Places the photo from the 3D points of the matches its pose cannot explain; keeps
    the new pose when it agrees with the photo's matches (AGREEMENT_MIN or better)."""
    import pycolmap

    image = model.image(image_id)
    points2d, points3d = [], []
    for other, mine, theirs, agree in _partners(model, image_id, pairs, keypoints, suspects):
        wrong = ~agree
        other_image = model.image(other)
        for k_mine, k_theirs in zip(mine[wrong], theirs[wrong], strict=True):
            point = other_image.point2D(int(k_theirs))
            if point.has_point3D():
                points2d.append(keypoints[image_id][k_mine])
                points3d.append(model.point3D(point.point3D_id).xyz)
    if len(points2d) < MIN_CORRESPONDENCES:
        return False
    found = pycolmap.estimate_and_refine_absolute_pose(
        np.asarray(points2d, float), np.asarray(points3d, float), image.camera)
    if found is None or int(found["num_inliers"]) < MIN_CORRESPONDENCES:
        return False
    old = image.frame.rig_from_world
    image.frame.rig_from_world = found["cam_from_world"]
    agree = total = 0
    for _, _, _, ok in _partners(model, image_id, pairs, keypoints, suspects):
        agree, total = agree + int(ok.sum()), total + len(ok)
    if total and agree / total >= AGREEMENT_MIN:
        # Its old observations belong to the mirrored place: the new pose keeps none.
        for idx in range(image.num_points2D()):
            if image.point2D(idx).has_point3D():
                model.delete_observation(image_id, idx)
        return True
    image.frame.rig_from_world = old
    return False


def _partners(model: Any, image_id: int, pairs: list[tuple[int, int, np.ndarray]],
              keypoints: dict[int, np.ndarray], suspects: dict[int, str]
              ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(other photo, its keypoints matched in this one, theirs, whether the poses explain
    each match) for each photo this one has verified matches with, suspects left aside."""
    for a, b, matches in pairs:
        if image_id not in (a, b):
            continue
        other = b if a == image_id else a
        if other in suspects:
            continue
        mine, theirs = ((matches[:, 0], matches[:, 1]) if a == image_id
                        else (matches[:, 1], matches[:, 0]))
        yield other, mine, theirs, _agreement(model, a, b, matches, keypoints)


def _leave_out(model: Any, image_id: int, reason: str) -> Verdict:
    name = model.image(image_id).name
    log.info("left out %s: %s", name, reason)
    model.deregister_frame(model.image(image_id).frame_id)
    return Verdict(name, False, reason)


def _focus(model: Any, names: dict[int, str]) -> np.ndarray:
    """The point the cameras look at most closely: where the product is."""
    origins = np.array([model.image(i).projection_center() for i in names])
    directions = np.array([model.image(i).viewing_direction() for i in names])
    d = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    proj = np.eye(3)[None] - d[:, :, None] * d[:, None, :]
    a, b = proj.sum(axis=0), np.einsum("nij,nj->i", proj, origins)
    if np.linalg.cond(a) > 1e6:
        return origins.mean(axis=0)
    return np.linalg.solve(a, b)


def _shows_point(model: Any, image_id: int, point: np.ndarray) -> bool:
    image = model.image(image_id)
    pixel = image.project_point(point)
    camera = image.camera
    return pixel is not None and 0 <= pixel[0] < camera.width and 0 <= pixel[1] < camera.height


def _homogeneous(points: np.ndarray) -> np.ndarray:
    return np.hstack([points, np.ones((len(points), 1))])


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0))))


def _unit(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, float) / np.linalg.norm(v)
