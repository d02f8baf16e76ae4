"""Only right cameras: finds placed photos whose pose disagrees with the rest.

COLMAP places a photo where most of its matches agree. On a product that looks nearly the
same from opposite sides, the matches with the far side can win, and the photo is placed
mirrored across the product with a small reprojection error: the model explains it, so
COLMAP keeps it. Such a camera would train the NeRF with pixels from the wrong side, so
each placed photo is checked against evidence the mapping did not optimise for:

- its verified matches with every other placed photo (two-view geometry, before mapping):
  a right camera agrees with most of them; a mirrored one contradicts those with the
  photos really beside it;
- how far, in the median, those matches lie from where the poses put them, against the
  whole capture's median: a camera nudged a few degrees off its place still agrees with
  most matches within the tolerance, but misses them by several times more than the
  right cameras do;
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
SPREAD_MAX = 3.0
"""A photo whose matches lie (median) more than this many times further from where the
poses put them than the whole capture's matches do is placed wrong. On the near-symmetric
bench scene a camera 14° off its place measured 4.9×, the right ones at most 2.4×."""
SPREAD_FLOOR_PX = 1.0
"""...and at least this far, in pixels: on a capture matched to a fraction of a pixel, a
few times more is still well placed."""
FINE_RESIDUAL_PX = 2.0
"""A photo placed again whose matches miss its new pose by no more than this (median, in
the pixels SIFT saw) is kept: that is a fine residual for a phone photo, even among photos
matched to 0.2 px. Leaving it out would lose a good photo for being a little blurry."""
CHECK_ROUNDS = 3
"""Rounds of checking; a photo is placed again at most once, then left out."""


@dataclass(frozen=True)
class Verdict:
    """What happened to one suspect photo (its name in the COLMAP database)."""

    name: str
    replaced: bool
    """True when it was placed again and now agrees; False when it was left out."""
    reason: str


def check_poses(model: Any, database: Path, order: list[str],
                label: Callable[[str], str] = str, feature_side: int | None = None
                ) -> list[Verdict]:
    """Finds the wrong cameras of `model` (a pycolmap Reconstruction, changed in place),
    places each once more, and deregisters those that still disagree.

    `order` is the photos' database names in shooting order; `label` names a photo, from
    its database name, in the reasons the shop owner reads; `feature_side` is the long
    side SIFT saw the photos at (None: their own), the unit of FINE_RESIDUAL_PX.
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
    labels = {i: label(n) for i, n in names.items()}
    verdicts: dict[int, Verdict] = {}
    # A camera put right is evidence for the others, and a wrong one hid their faults while
    # its pairs were set aside: check again until a round finds nothing new.
    for _ in range(CHECK_ROUNDS):
        placed = set(model.reg_image_ids())
        round_pairs = [(a, b, m) for a, b, m in pairs if a in placed and b in placed]
        settled = {i for i, v in verdicts.items() if v.replaced}
        suspects, spread_limit = _suspects(model, round_pairs, keypoints, order, settled,
                                           {i: labels[i] for i in placed})
        if not suspects:
            break
        for image_id, suspect in suspects.items():
            fine = FINE_RESIDUAL_PX * _pixel_scale(model, image_id, feature_side)
            verdicts[image_id] = _settle(model, image_id, suspect, round_pairs, keypoints,
                                         suspects, max(spread_limit, fine), labels,
                                         (order, names), again=image_id not in verdicts)
    return list(verdicts.values())


def _settle(model: Any, image_id: int, suspect: _Suspect,
            pairs: list[tuple[int, int, np.ndarray]], keypoints: dict[int, np.ndarray],
            suspects: dict[int, _Suspect], residual_limit: float, labels: dict[int, str],
            shooting: tuple[list[str], dict[int, str]], *, again: bool) -> Verdict:
    """Places one suspect again (when `again`: only once per photo) or leaves it out.

    `shooting` is the shooting order and each placed photo's database name."""
    name = model.image(image_id).name
    if suspect.kind == "away":
        return _leave_out(model, image_id, "does not show the product: it looks away from "
                          "it. Retake it facing the product.")
    where = _true_neighbours(model, image_id, pairs, keypoints, labels, suspects)
    if again and _place_again(model, image_id, pairs, keypoints, suspects, residual_limit,
                              *shooting):
        log.info("placed %s again, consistently this time", name)
        return Verdict(name, True, "placed again consistently")
    advice = f"retake it from beside {where}" if where else "retake it"
    return _leave_out(model, image_id, f"placed inconsistently ({suspect.why}): {advice}, "
                      "with more of the product's details in view.")


@dataclass(frozen=True)
class _Suspect:
    kind: str
    """"away" (does not show the product), "matches" (contradicts its matches) or "spread"
    (misses its matches by far more than the other photos do)."""
    why: str
    apart: bool = False
    """It also sits far from its neighbours in shooting order, which agree with each other."""


def _suspects(model: Any, pairs: list[tuple[int, int, np.ndarray]],
              keypoints: dict[int, np.ndarray], order: list[str], settled: set[int],
              names: dict[int, str]) -> tuple[dict[int, _Suspect], float]:
    """({image id: why}, worst first, for the photos whose pose disagrees; the median
    distance in pixels beyond which a photo's matches are too far from its pose).

    A photo in `settled` was placed again from its own matches, to a fine residual: how
    far they miss is then the photo's own sharpness, not a wrong pose."""
    focus = _focus(model, names)
    suspects = {i: _Suspect("away", "") for i in names if not _shows_point(model, i, focus)}
    distances = [_distances(model, a, b, m, keypoints) for a, b, m in pairs]
    agreement = [d < _tolerance(model, a, b) for (a, b, _), d in zip(pairs, distances,
                                                                      strict=True)]
    apart = _apart_from_neighbours(model, order, names)
    # One at a time, worst first: a wrong camera also spoils its partners' agreement, and
    # must not drag a right one out with it.
    while True:
        shares = _shares(pairs, agreement, suspects)
        candidates = [(share, image_id) for image_id, share in shares.items()
                      if share < AGREEMENT_MIN
                      or (image_id in apart and share < AGREEMENT_WITH_ORDER_MIN)]
        if candidates:
            share, worst = min(candidates)
            why = (f"only {share:.0%} of its matches with other photos agree with where it "
                   "was put")
            if worst in apart:
                why += f", and it is far from {apart[worst]}, taken just before and after it"
            suspects[worst] = _Suspect("matches", why, apart=worst in apart)
            continue
        spreads, typical = _spreads(pairs, distances, suspects)
        limit = max(SPREAD_FLOOR_PX, SPREAD_MAX * typical)
        far = [(spread, image_id) for image_id, spread in spreads.items()
               if spread > limit and image_id not in settled]
        if not far:
            return suspects, limit
        spread, worst = max(far)
        suspects[worst] = _Suspect("spread", (
            f"its matches with other photos miss where it was put by {spread:.1f} pixels, "
            f"{spread / typical:.0f} times more than the other photos' {typical:.1f}"))


def _shares(pairs: list[tuple[int, int, np.ndarray]], agreement: list[np.ndarray],
            excluded: dict[int, _Suspect]) -> dict[int, float]:
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


def _spreads(pairs: list[tuple[int, int, np.ndarray]], distances: list[np.ndarray],
             excluded: dict[int, _Suspect]) -> tuple[dict[int, float], float]:
    """({image id: median distance of its matches}, median over every match), in pixels,
    with the excluded photos' pairs left aside."""
    per: dict[int, list[np.ndarray]] = defaultdict(list)
    every = []
    for (a, b, _), d in zip(pairs, distances, strict=True):
        if a in excluded or b in excluded or not len(d):
            continue
        per[a].append(d)
        per[b].append(d)
        every.append(d)
    if not every:
        return {}, 0.0
    return ({i: float(np.median(np.concatenate(ds))) for i, ds in per.items()},
            float(np.median(np.concatenate(every))))


def _tolerance(model: Any, a: int, b: int) -> float:
    """The distance within which the placed cameras of photos a and b explain a match."""
    cam_a, cam_b = model.image(a).camera, model.image(b).camera
    return max(4.0, 0.005 * max(cam_a.width, cam_a.height, cam_b.width, cam_b.height))


def _distances(model: Any, a: int, b: int, matches: np.ndarray,
               keypoints: dict[int, np.ndarray]) -> np.ndarray:
    """Each verified match's Sampson distance, in pixels, to the epipolar geometry the
    placed cameras of photos a and b imply."""
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
    return distance * (cam_a.mean_focal_length() + cam_b.mean_focal_length()) / 2


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
                     suspects: dict[int, _Suspect]) -> str:
    """The two photos with the most matches that its pose cannot explain: the ones it was
    really taken beside."""
    counts = {other: int((distances >= _tolerance(model, image_id, other)).sum())
              for other, _, _, distances
              in _partners(model, image_id, pairs, keypoints, suspects)}
    best = [i for i, c in sorted(counts.items(), key=lambda kv: -kv[1])[:2] if c > 0]
    return " and ".join(names[i] for i in sorted(best, key=lambda i: names[i]))


def _place_again(model: Any, image_id: int, pairs: list[tuple[int, int, np.ndarray]],
                 keypoints: dict[int, np.ndarray], suspects: dict[int, _Suspect],
                 residual_limit: float, order: list[str], names: dict[int, str]) -> bool:
    """Places the photo again and keeps the new pose when the matches it was placed from
    miss it by no more than `residual_limit` (median), and it agrees with AGREEMENT_MIN of
    all its matches or, for a photo that sat apart from its neighbours in shooting order,
    now sits beside them.

    A photo that contradicts its matches is placed from the 3D points of the matches its
    pose cannot explain (those with the photos it was really taken beside); one that only
    misses them by too much, from the 3D points of all its matches. A near-symmetric
    product can give a mirrored photo more matches with the far side than with its true
    neighbours: the shooting order, not the count, tells them apart.
    """
    import pycolmap

    image = model.image(image_id)
    everything = suspects[image_id].kind == "spread"
    points2d, points3d, used = [], [], {}
    for other, mine, theirs, distances in _partners(model, image_id, pairs, keypoints,
                                                    suspects):
        used[other] = everything | (distances >= _tolerance(model, image_id, other))
        other_image = model.image(other)
        for k_mine, k_theirs in zip(mine[used[other]], theirs[used[other]], strict=True):
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
    placed_from, agree, total = [], 0, 0
    for other, _, _, distances in _partners(model, image_id, pairs, keypoints, suspects):
        placed_from.append(distances[used[other]])
        agree += int((distances < _tolerance(model, image_id, other)).sum())
        total += len(distances)
    residual = np.concatenate(placed_from) if placed_from else np.zeros(0)
    if suspects[image_id].apart:
        placed = set(model.reg_image_ids())
        here = {i: n for i, n in names.items()
                if i in placed and (i == image_id or i not in suspects)}
        beside = image_id not in _apart_from_neighbours(model, order, here)
    else:
        beside = False
    if (len(residual) and np.median(residual) <= residual_limit
            and (agree >= AGREEMENT_MIN * total or beside)):
        # Its old observations belong to the wrong place: the new pose keeps none.
        for idx in range(image.num_points2D()):
            if image.point2D(idx).has_point3D():
                model.delete_observation(image_id, idx)
        return True
    image.frame.rig_from_world = old
    return False


def _partners(model: Any, image_id: int, pairs: list[tuple[int, int, np.ndarray]],
              keypoints: dict[int, np.ndarray], suspects: dict[int, _Suspect]
              ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(other photo, its keypoints matched in this one, theirs, each match's distance in
    pixels from where the poses put it) for each photo this one has verified matches with,
    suspects left aside."""
    for a, b, matches in pairs:
        if image_id not in (a, b):
            continue
        other = b if a == image_id else a
        if other in suspects:
            continue
        mine, theirs = ((matches[:, 0], matches[:, 1]) if a == image_id
                        else (matches[:, 1], matches[:, 0]))
        yield other, mine, theirs, _distances(model, a, b, matches, keypoints)


def _leave_out(model: Any, image_id: int, reason: str) -> Verdict:
    name = model.image(image_id).name
    log.info("left out %s: %s", name, reason)
    model.deregister_frame(model.image(image_id).frame_id)
    return Verdict(name, False, reason)


def _pixel_scale(model: Any, image_id: int, feature_side: int | None) -> float:
    """Pixels of the photo per pixel SIFT saw (keypoints are kept at full size)."""
    camera = model.image(image_id).camera
    side = max(camera.width, camera.height)
    return 1.0 if feature_side is None else max(1.0, side / feature_side)


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
