"""Mask synthesis (g2d.masks): determinism, exact occlusion maps, coverage, yaw variants, clear errors, `g2d mask`."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from g2d.masks import (MASK_KINDS, FlipTranslate, MaskedFace, MaskError, MaskGeometryError, MaskProtocol, MaskSpec,
                       MaskTemplateError, MaskTemplates, RandomMasker, apply_mask, estimate_yaw, flip_landmarks68,
                       occlusion_iou, random_mask_spec, resolve_mask_templates, segment_occlusion,
                       write_test_templates)
from g2d.synthetic import SyntheticFaces

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def faces():
    data = SyntheticFaces(n_identities=3, images_per_identity=2, size=112, seed=1)
    return [data.render(i) for i in range(len(data))]


@pytest.fixture(scope="module")
def tiny_templates(tmp_path_factory):
    return MaskTemplates.load(write_test_templates(tmp_path_factory.mktemp("templates")))


def _check_exact(masked: MaskedFace, original: np.ndarray):
    assert masked.occlusion.dtype == np.uint8 and set(np.unique(masked.occlusion)) <= {0, 1}
    assert np.array_equal(masked.occlusion, (masked.alpha > 0.5).astype(np.uint8))
    changed = (masked.image != original).any(-1)
    assert not changed[masked.alpha == 0].any(), "pixels changed outside the pasted mask"
    assert changed[masked.occlusion > 0].mean() > 0.99, "occluded pixels left unchanged"


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_builtin_masks_are_exact_and_cover_a_plausible_share(faces, kind):
    for i, (image, landmarks) in enumerate(faces):
        masked = apply_mask(image, landmarks, MaskSpec(kind, colour=(90, 120, 200), seed=i))
        _check_exact(masked, image)
        assert 0.25 < masked.coverage < 0.9, (kind, i, masked.coverage)
        assert 0.05 < masked.image_coverage < 0.5


def test_template_masks_are_exact(faces, tiny_templates):
    image, landmarks = faces[0]
    for base in tiny_templates.bases:
        masked = apply_mask(image, landmarks, MaskSpec(base, base), tiny_templates)
        _check_exact(masked, image)
        assert 0.25 < masked.coverage < 0.9


def test_protocol_masking_is_bit_identical_across_runs(faces, tmp_path):
    keys = [f"p{i}/img_{i}.png" for i in range(len(faces))]
    protocol = MaskProtocol.generate(keys, seed=3)
    path = protocol.write(tmp_path / "protocol.json")
    first = [protocol.apply(k, *face).image for k, face in zip(keys, faces)]
    reread = MaskProtocol.read(path)
    assert reread == protocol
    second = [reread.apply(k, *face).image for k, face in zip(keys, faces)]
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    # a key's mask does not depend on the other keys
    assert MaskProtocol.generate(keys[2:], seed=3)[keys[4]] == protocol[keys[4]]


def test_protocol_file_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": 1, "seed": 0, "kinds": [], "specs": {"a": {"kind": "balaclava"}}}')
    with pytest.raises(MaskError, match="unknown mask kind"):
        MaskProtocol.read(bad)
    bad.write_text("not json")
    with pytest.raises(MaskError, match="cannot read"):
        MaskProtocol.read(bad)


def test_left_right_variants_follow_the_yaw_sign(faces, tiny_templates):
    image, landmarks = faces[0]
    assert abs(estimate_yaw(landmarks)) < 0.18
    assert apply_mask(image, landmarks, MaskSpec("surgical", "surgical"), tiny_templates).template == "surgical"
    for shift, side in ((-12, "_left"), (12, "_right")):
        turned = landmarks.copy()
        turned[27:36, 0] += shift  # the nose towards the image's left / right
        assert np.sign(estimate_yaw(turned)) == np.sign(shift)
        assert apply_mask(image, turned, MaskSpec("surgical", "surgical"), tiny_templates).template == "surgical" + side


def test_corrupt_template_folders_raise_clear_errors(tmp_path):
    with pytest.raises(MaskTemplateError, match="masks.cfg is missing"):
        MaskTemplates.load(tmp_path)
    write_test_templates(tmp_path, "[surgical]\ntemplate: masks/templates/surgical.png\nmask_a: 1; 2\n")
    with pytest.raises(MaskTemplateError, match=r"\[surgical\]"):
        MaskTemplates.load(tmp_path)
    write_test_templates(tmp_path, "mask_a: 1, 2\n")
    with pytest.raises(MaskTemplateError, match="not a valid masks.cfg"):
        MaskTemplates.load(tmp_path)
    write_test_templates(tmp_path, "[gas]\ntemplate: masks/templates/gas.png\n")
    with pytest.raises(MaskTemplateError, match="does not exist"):
        MaskTemplates.load(tmp_path)


def test_degenerate_landmarks_raise(faces):
    image, landmarks = faces[0]
    with pytest.raises(MaskGeometryError, match="inside"):
        apply_mask(image, landmarks + 500, MaskSpec("surgical"))
    with pytest.raises(MaskGeometryError, match="NaN"):
        apply_mask(image, np.full((68, 2), np.nan), MaskSpec("surgical"))
    flat = landmarks.copy()
    flat[:, 1] = 60.0  # every point on one line: the anchors enclose no area
    with pytest.raises(MaskGeometryError, match="collapsed"):
        apply_mask(image, flat, MaskSpec("surgical"))
    with pytest.raises(MaskError, match="RGB uint8"):
        apply_mask(image.astype(np.float32), landmarks, MaskSpec("surgical"))


def test_spec_needs_its_templates(faces):
    with pytest.raises(MaskError, match="template"):
        apply_mask(*faces[0], MaskSpec("cloth", "cloth"))


def test_random_masker_and_augmentation(faces, tiny_templates):
    image, landmarks = faces[1]
    rng = np.random.default_rng(0)
    unmasked = RandomMasker(p=0.0)(image, landmarks, rng)
    assert unmasked.spec is None and not unmasked.occlusion.any() and np.array_equal(unmasked.image, image)
    masker = RandomMasker(tiny_templates, kinds=("surgical", "cloth"))
    drawn = [masker(image, landmarks, rng) for _ in range(6)]
    assert {m.spec.kind for m in drawn} <= {"surgical", "cloth"} and all(m.occlusion.any() for m in drawn)
    assert random_mask_spec(np.random.default_rng(4)) == random_mask_spec(np.random.default_rng(4))
    flipped, points, occlusion = FlipTranslate(flip_p=1.0, max_shift=0.0)(drawn[0].image, landmarks, rng, drawn[0].occlusion)
    assert np.array_equal(flipped, drawn[0].image[:, ::-1]) and np.array_equal(occlusion, drawn[0].occlusion[:, ::-1])
    assert np.allclose(points, flip_landmarks68(landmarks, 112))
    assert np.allclose(points[36], [111 - landmarks[45, 0], landmarks[45, 1]])  # eye corners swap
    shifted, moved = FlipTranslate(flip_p=0.0, max_shift=0.1)(image, landmarks, np.random.default_rng(1))[:2]
    offset = moved - landmarks
    assert np.allclose(offset, offset[0]) and np.allclose(offset[0], np.round(offset[0]))


def test_random_masker_can_leave_faces_it_cannot_mask_unmasked(faces):
    image, landmarks = faces[0]
    collapsed = np.repeat(landmarks[:1], 68, 0)
    with pytest.raises(MaskGeometryError):
        RandomMasker()(image, collapsed, np.random.default_rng(0))
    masker = RandomMasker(unmask_failures=True)
    left = masker(image, collapsed, np.random.default_rng(0))
    assert masker.failures == 1 and left.spec is None and not left.occlusion.any() and np.array_equal(left.image, image)
    assert masker(image, landmarks, np.random.default_rng(0)).occlusion.any() and masker.failures == 1


def test_resolve_mask_templates(tmp_path, tiny_templates):
    folder = write_test_templates(tmp_path / "templates")
    assert resolve_mask_templates("builtin") is None and resolve_mask_templates(None) is None
    assert resolve_mask_templates(tiny_templates) is tiny_templates
    assert resolve_mask_templates(str(folder)).bases == tiny_templates.bases
    root = tmp_path / "root"
    root.mkdir()
    assert resolve_mask_templates("auto", root) is None  # a data root without mask_templates: built-in masks
    write_test_templates(root / "mask_templates")
    assert resolve_mask_templates("auto", root).bases == tiny_templates.bases
    with pytest.raises(MaskTemplateError):
        resolve_mask_templates(tmp_path / "nowhere")


def test_grabcut_segmentation_recovers_the_mask(faces):
    ious = []
    for i, (image, landmarks) in enumerate(faces):
        masked = apply_mask(image, landmarks, MaskSpec(MASK_KINDS[i % len(MASK_KINDS)], colour=(60, 90, 160), seed=i))
        segmented = segment_occlusion(masked.image, landmarks)
        assert segmented.dtype == np.uint8 and set(np.unique(segmented)) <= {0, 1}
        ious.append(occlusion_iou(segmented, masked.occlusion))
        blind = segment_occlusion(masked.image)  # no landmarks: the aligned-crop layout, as on a real masked photo
        assert blind.shape == segmented.shape and set(np.unique(blind)) <= {0, 1}
    assert np.mean(ious) > 0.8, ious


def test_real_lfw_source_photo_masked_with_templates(real_data_root):
    from g2d.align import FaceAligner, load_rgb

    photo = load_rgb(real_data_root / "lfw" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg")
    face = FaceAligner()(photo)
    templates = MaskTemplates.load(real_data_root / "mask_templates")
    spec = random_mask_spec(np.random.default_rng(0), ("n95",), templates)
    masked = apply_mask(photo, face.source_landmarks, spec, templates)
    _check_exact(masked, photo)
    assert masked.template.startswith("N95") and 0.25 < masked.coverage < 0.9


def test_cli_mask_json(tmp_path, faces):
    source = tmp_path / "in" / "someone"
    source.mkdir(parents=True)
    for i, (image, _) in enumerate(faces[:2]):  # dlib's HOG detector does not find synthetic faces: counted failures
        padded = cv2.copyMakeBorder(image, 40, 40, 40, 40, cv2.BORDER_REPLICATE)
        cv2.imwrite(str(source / f"face_{i}.png"), cv2.cvtColor(padded, cv2.COLOR_RGB2BGR))
    (source / "broken.jpg").write_bytes(b"not an image")
    env = {**os.environ, "PYTHONPATH": REPO}
    done = subprocess.run([sys.executable, "-c", "import sys; from g2d.cli import main; sys.exit(main())", "mask",
                           str(tmp_path / "in"), str(tmp_path / "out"), "--builtin", "--seed", "2", "--json", "--allow-failures"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for key in ("images", "masked", "failures", "failed", "coverage_mean", "coverage_quantiles", "faces_per_second",
                "protocol", "seed", "templates"):
        assert key in report
    assert report["images"] == 3 and report["masked"] + report["failures"] == 3
    assert any(f["image"] == "someone/broken.jpg" for f in report["failed"])
    protocol = MaskProtocol.read(report["protocol"])
    assert len(protocol) == 3 and protocol.seed == 2
    for name in ("masked", "occlusion"):
        assert len(list((tmp_path / "out" / name).rglob("*.png"))) == report["masked"]


def test_cli_masks_real_photos(tmp_path, real_data_root):
    source = tmp_path / "in" / "Aaron_Peirsol"
    source.mkdir(parents=True)
    for path in sorted((real_data_root / "lfw" / "Aaron_Peirsol").glob("*.jpg"))[:2]:
        (source / path.name).write_bytes(path.read_bytes())
    env = {**os.environ, "PYTHONPATH": REPO, "G2D_DATA": str(real_data_root)}
    done = subprocess.run([sys.executable, "-c", "import sys; from g2d.cli import main; sys.exit(main())", "mask",
                           str(tmp_path / "in"), str(tmp_path / "out"), "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["masked"] == 2 and report["failures"] == 0 and 0.25 < report["coverage_mean"] < 0.9
    assert Path(report["templates"]).resolve() == (real_data_root / "mask_templates").resolve()
    occlusion = cv2.imread(str(tmp_path / "out" / "occlusion" / "Aaron_Peirsol" / "Aaron_Peirsol_0001.png"), cv2.IMREAD_GRAYSCALE)
    assert occlusion.shape == (112, 112) and set(np.unique(occlusion)) == {0, 255}
