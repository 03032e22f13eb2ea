"""Face alignment and the face cache: geometry, fallback policies, bad inputs, atomicity and resume."""
import random
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from g2d.align import (AlignConfig, FaceAligner, UnreadableImageError, apply_affine, draw_lower_face_occluder,
                       five_points_from_68, similarity_transform)
from g2d.datasets import dataset_image_files
from g2d.core import ConfigError, G2DError, canonical_five_points
from g2d.facecache import (SHARD_ARRAYS, FaceCache, FaceCacheDataset, FaceCacheError, build_face_cache)


def _rotation(angle, scale, tx, ty):
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty]])


def _synthetic_landmarks(size: int) -> np.ndarray:
    "68 crop-space landmarks whose five key points are exactly the canonical template (eyes: hexagons)."
    template = canonical_five_points(size).astype(np.float64)
    rng = np.random.default_rng(0)
    points = rng.uniform(0.2 * size, 0.8 * size, (68, 2))
    hexagon = 0.04 * size * np.stack([np.cos(np.arange(6) * np.pi / 3), np.sin(np.arange(6) * np.pi / 3)], 1)
    points[36:42], points[42:48] = template[0] + hexagon, template[1] + hexagon
    points[30], points[48], points[54] = template[2], template[3], template[4]
    return points


@pytest.mark.parametrize("size", [64, 112])
def test_known_transform_lands_key_points_on_template(size):
    crop_points = _synthetic_landmarks(size)
    to_source = _rotation(0.35, 2.3, 40.0, 25.0)  # the true crop -> source transform
    source_points = apply_affine(to_source, crop_points)
    image = np.zeros((400, 400, 3), np.uint8)
    for x, y in five_points_from_68(source_points):
        cv2.circle(image, (int(round(x)), int(round(y))), 4, (255, 255, 255), -1, lineType=cv2.LINE_AA)
    face = FaceAligner(AlignConfig(size=size)).align_landmarks(image, source_points, method="box")
    true_inverse = np.linalg.inv(np.vstack([to_source, [0, 0, 1]]))[:2]
    assert np.allclose(face.transform, true_inverse, atol=1e-4)
    assert np.allclose(face.landmarks, crop_points, atol=1e-3)
    assert face.fit_error < 1e-5
    # the drawn dots appear at the template positions in the warped crop
    grey = face.image[..., 0].astype(float)
    for x, y in canonical_five_points(size):
        ys, xs = np.mgrid[0:size, 0:size]
        near = (xs - x) ** 2 + (ys - y) ** 2 < 9
        weights = grey * near
        centroid = np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()
        assert np.linalg.norm(centroid - [x, y]) < 0.6


def test_similarity_transform_rejects_degenerate_points():
    with pytest.raises(ValueError):
        similarity_transform(np.ones((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError):
        five_points_from_68(np.zeros((5, 2)))


def test_real_faces_land_on_template(real_data_root):
    files = dataset_image_files("lfw", real_data_root)
    if not files:
        pytest.skip("needs LFW under the data root")
    aligner = FaceAligner(AlignConfig(size=112))
    faces = [aligner(p) for p in random.Random(3).sample(files, 30)]
    aligned = [f for f in faces if f.aligned]
    assert len(aligned) >= 27
    errors = [np.abs(five_points_from_68(f.landmarks) - aligner.template).max() for f in aligned]
    assert np.median(errors) < 0.08 * 112 and max(errors) < 0.15 * 112


def test_non_face_image_follows_the_policy():
    blank = np.full((100, 100, 3), 90, np.uint8)
    assert FaceAligner(AlignConfig(fallback="skip"))(blank).method == "none"
    centred = FaceAligner(AlignConfig(fallback="center"))(blank)
    assert centred.method == "center" and not centred.aligned and centred.image.shape == (64, 64, 3)
    with pytest.raises(ConfigError):
        AlignConfig(fallback="replace")


def test_occluder_only_covers_the_lower_face():
    landmarks = _synthetic_landmarks(112) * 2
    landmarks[1:16] = np.stack([np.linspace(40, 180, 15), 150 + 50 * np.sin(np.linspace(0, np.pi, 15))], 1)
    landmarks[29] = [110, 120]
    image = np.zeros((240, 240, 3), np.uint8)
    occluded = draw_lower_face_occluder(image, landmarks)
    changed = np.argwhere(occluded.any(-1))
    assert len(changed) > 1000 and changed[:, 0].min() >= 118  # nothing above the nose bridge
    assert not image.any()  # the input is not modified


def _noise_items(n=9, size=(90, 80)):
    rng = np.random.default_rng(1)
    return [(rng.integers(0, 256, (*size, 3), dtype=np.uint8), i % 4) for i in range(n)]


def test_interrupted_parallel_build_resumes_to_the_same_cache(tmp_path):
    items, config = _noise_items(), AlignConfig(fallback="center", size=32)
    whole = build_face_cache(items, tmp_path / "whole", config, shard_size=2, progress=False)

    class Interrupt(Exception):
        pass

    def stop(meta):
        raise Interrupt

    with pytest.raises(Interrupt):
        build_face_cache(items, tmp_path / "resumed", config, workers=2, shard_size=2, on_shard=stop, progress=False)
    partial = tmp_path / "resumed"
    assert not (partial / "index.json").exists() and (partial / "build.json").exists()
    kept = sorted(p.name for p in partial.glob("shard_*"))
    assert 1 <= len(kept) < 5
    with pytest.raises(FaceCacheError, match="partial build"):
        FaceCache(partial)
    (partial / ".shard_00004.leftover.tmp").mkdir()  # what a killed worker leaves behind
    rebuilt = []
    resumed = build_face_cache(items, partial, config, workers=2, shard_size=2, on_shard=lambda m: rebuilt.append(m["shard"]),
                               progress=False)
    assert sorted(rebuilt) == sorted(set(range(5)) - {int(k[-5:]) for k in kept})
    assert not list(partial.glob(".shard_*"))
    for name in SHARD_ARRAYS:
        assert np.array_equal(whole.array(name), resumed.array(name), equal_nan=True), name
    assert resumed.index["counts"] == whole.index["counts"] and resumed.fingerprint == whole.fingerprint


def test_cache_reads_without_the_source_images(tmp_path):
    sources = tmp_path / "images"
    sources.mkdir()
    items = []
    for i, (array, identity) in enumerate(_noise_items(5)):
        path = sources / f"img{i}.png"
        cv2.imwrite(str(path), array)
        items.append((path, f"id{identity}"))
    built = build_face_cache(items, tmp_path / "cache", AlignConfig(fallback="center"), shard_size=2, progress=False)
    shutil.rmtree(sources)
    cache = FaceCache(tmp_path / "cache")
    assert cache.fingerprint == built.fingerprint and len(cache) == 5 and cache.sources[0].endswith("img0.png")
    image, label = FaceCacheDataset(cache, include=("center",))[3]
    assert image.shape == (3, 64, 64) and cache.classes[label] == "id3"


def test_fingerprint_follows_content_and_config(tmp_path):
    items = _noise_items(3)
    a = build_face_cache(items, tmp_path / "a", AlignConfig(fallback="center"), progress=False)
    changed = [(items[0][0].copy(), items[0][1])] + items[1:]
    changed[0][0][0, 0, 0] ^= 1
    b = build_face_cache(changed, tmp_path / "b", AlignConfig(fallback="center"), progress=False)
    c = build_face_cache(items, tmp_path / "c", AlignConfig(fallback="center", size=48), progress=False)
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3
    with pytest.raises(FaceCacheError, match="other items"):
        build_face_cache(changed, tmp_path / "a", AlignConfig(fallback="center"), progress=False)


def test_corrupt_and_missing_files_are_named(tmp_path):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((60, 60, 3), 100, np.uint8))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    items = [(good, "a"), (corrupt, "b")]
    with pytest.raises(UnreadableImageError, match="corrupt.jpg"):
        build_face_cache(items, tmp_path / "raise", progress=False)
    skipped = build_face_cache(items, tmp_path / "skip", on_unreadable="skip", progress=False)
    assert skipped.counts["unreadable"] == 1 and skipped.counts["none"] == 1
    assert "corrupt.jpg" in skipped.index["problems"][0]["problem"] and skipped.index["problems"][0]["item"] == 1
    with pytest.raises(UnreadableImageError, match="nowhere.jpg"):
        build_face_cache([(tmp_path / "nowhere.jpg", "c")], tmp_path / "missing", progress=False)
    with pytest.raises(G2DError, match="pair"):
        build_face_cache([good], tmp_path / "bad", progress=False)
    with pytest.raises(G2DError, match="identity"):
        build_face_cache([(good, 1.5)], tmp_path / "bad", progress=False)
    with pytest.raises(FaceCacheError, match="no face cache"):
        FaceCache(tmp_path)
