"""Which photos the colmap stage matches with which.

A walk around a product is a loop: each photo overlaps the few taken just before and
after it and, from another row or another lap, the few that look like it, not all the
others. Matching every pair (COLMAP's exhaustive matching) spends most of the stage on
pairs that share nothing, whose geometric verification runs RANSAC to its cap. So the
"auto" pairs come from the capture itself:

- its neighbours in shooting order (file names from a phone are in shooting order);
- the photos that share the most of its few hundred largest features: every pair is
  matched on those alone (mutual nearest neighbours passing the ratio test, one matrix
  product per photo), which costs a second where matching all features costs minutes.
  A bag of visual words learnt from the capture was tried first: on the synthetic
  capture it ranked photos from the far side among each photo's three most alike; this
  ranks only photos within 35° there.

A photo these pairs leave unplaced is matched with every other photo afterwards (see
colmap.py), so a miss here costs time, never a photo.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

EXHAUSTIVE_UP_TO = 12
"""Up to this many photos every pair is matched: there are few, and all overlap."""
ORDER_NEIGHBOURS = 2
"""Photos taken just before and after each one that it is matched with."""
SIMILAR_PER_PHOTO = 16
"""The photos sharing the most features with each one that it is matched with. On the
50-photo bench capture 8 placed every photo but doubled the rotation error (0.111°
median against the exhaustive defaults' 0.059°); 16 brought it to 0.052° for 2 % more
CPU seconds: the extra pairs are the ones that tie each photo to the whole loop."""
SCREEN_FEATURES = 256
"""Features per photo, the largest first, that decide which photos overlap: the largest
are the ones seen again from further round."""
SEQUENTIAL_OVERLAP = 12  # the sequential matcher's neighbours in shooting order
LOOP_SKELETON = 40  # photos spread over the set that it matches all with each other


def pair_list(count: int, matcher: str, overlap: int = SEQUENTIAL_OVERLAP,
              skeleton: int = LOOP_SKELETON) -> list[tuple[int, int]]:
    """Which photos (by index in shooting order) to match with which, without looking.

    exhaustive: every pair. sequential: each photo with its `overlap` next neighbours,
    wrapping around (a capture is a loop), plus every pair among a skeleton of `skeleton`
    photos spread over the whole set, which closes loops without a vocabulary tree.
    """
    if matcher == "exhaustive" or count <= overlap + 1:
        return list(itertools.combinations(range(count), 2))
    pairs = set()
    for i in range(count):
        for step in range(1, overlap + 1):
            pairs.add(tuple(sorted((i, (i + step) % count))))
    spread = np.unique(np.linspace(0, count - 1, min(count, skeleton)).round()).astype(int)
    pairs.update(itertools.combinations(spread.tolist(), 2))
    return sorted(pairs)


def capture_pairs(database: Path, names: list[str]) -> list[tuple[int, int]]:
    """The "auto" pairs: every pair of a small capture, else each photo with its
    neighbours in shooting order and the photos that share the most features with it."""
    count = len(names)
    if count <= EXHAUSTIVE_UP_TO:
        return pair_list(count, "exhaustive")
    pairs = {tuple(sorted((i, (i + step) % count))) for i in range(count)
             for step in range(1, ORDER_NEIGHBOURS + 1)}
    shared = shared_features(database, names)
    np.fill_diagonal(shared, -1)
    nearest = np.argsort(-shared, axis=1, kind="stable")[:, :SIMILAR_PER_PHOTO]
    pairs.update(tuple(sorted((i, int(j)))) for i in range(count) for j in nearest[i])
    return sorted(pairs)


def shared_features(database: Path, names: list[str]) -> np.ndarray:
    """(N, N) how many of their SCREEN_FEATURES largest features two photos share:
    mutual nearest neighbours (by descriptor) that pass Lowe's ratio test."""
    import pycolmap

    size = SCREEN_FEATURES
    features = np.zeros((len(names), size, 128), np.float32)
    with pycolmap.Database.open(database) as db:
        ids = {image.name: image.image_id for image in db.read_all_images()}
        for n, name in enumerate(names):
            descriptors = db.read_descriptors(ids[name]).data.astype(np.float32)
            shape = db.read_keypoints(ids[name])[:, 2:4]  # affine columns: the scale
            largest = descriptors[np.argsort(-np.linalg.norm(shape, axis=1),
                                             kind="stable")[:size]]
            norms = np.linalg.norm(largest, axis=1, keepdims=True)
            features[n, :len(largest)] = largest / np.maximum(norms, 1e-12)
    count = len(names)
    shared = np.zeros((count, count), np.float32)
    flat = features.reshape(count * size, 128)
    for i in range(count - 1):
        # Cosine similarity of photo i's features with every later photo's: (a, j, b).
        similarity = (features[i] @ flat[(i + 1) * size:].T).reshape(size, -1, size)
        forward = similarity.argmax(axis=2)  # photo i's feature a → photo j's best b
        backward = similarity.argmax(axis=0)  # photo j's feature b → photo i's best a
        later = np.arange(similarity.shape[1])
        mutual = backward[later[None, :], forward] == np.arange(size)[:, None]
        best_two = -np.partition(-similarity, 1, axis=2)[:, :, :2]
        distance = np.sqrt(np.maximum(2 - 2 * best_two, 0))  # unit vectors
        distinct = distance[:, :, 0] < 0.8 * distance[:, :, 1]
        shared[i, i + 1:] = (mutual & distinct).sum(axis=0)
    return shared + shared.T
