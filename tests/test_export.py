"""`g2d export --onnx`: the released G2D as an ONNX graph, run by onnxruntime against PyTorch on real faces
(LFW photos and real masked photos through $G2D_DATA) and on g2d's embedded synthetic faces, at batch 1 and 3."""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import g2d_command

from g2d.export import (METADATA_KEY, PARITY_MAX_ABS, PARITY_MIN_COSINE, occlusion_parity, occlusion_path, onnx_parity,
                        onnx_session, preprocessing_path, synthetic_test_faces)
from g2d.model import load_pretrained

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    return load_pretrained()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    "The released model exported by the command line, as a user would."
    out = tmp_path_factory.mktemp("onnx") / "g2d.onnx"
    done = subprocess.run(g2d_command() + ["export", "--onnx", str(out), "--json"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads(done.stdout)


def assert_parity(model, path, faces, maps):
    result = onnx_parity(model, onnx_session(path), faces, maps, batch_sizes=(1, 3))
    assert result["faces"] == len(faces) and result["batch_sizes"] == [1, 3]
    assert result["max_abs_difference"] < PARITY_MAX_ABS, result
    assert result["min_cosine"] > PARITY_MIN_COSINE, result
    return result


def test_export_writes_the_graph_and_its_preprocessing(exported, model):
    path, report = exported
    assert path.is_file() and report["onnx"] == str(path) and report["bytes"] == path.stat().st_size
    spec = json.loads(preprocessing_path(path).read_text())
    session = onnx_session(path)
    assert json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY]) == spec
    size, dim = model.image_size, model.embedding_dim
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("face", ["batch", 3, size, size]),
                                                                  ("occlusion", ["batch", 1, size, size])]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [("embedding", ["batch", dim])]
    assert spec["inputs"]["face"]["range"] == [0.0, 1.0] and spec["inputs"]["face"]["channels"] == "RGB"
    assert spec["alignment"]["size"] == size and len(spec["alignment"]["points"]) == 5
    assert spec["occlusion_estimator"]["network"] is True  # the package ships the learned estimator (chapter 06c)
    thresholds = {k: v["threshold"] for k, v in model.metadata["thresholds"].items() if "threshold" in v}
    assert spec["thresholds"]["fmr"] == thresholds and "0.01" in thresholds
    # --estimator auto: the released learned estimator's graph when this install has one, else none and the JSON says so
    assert (report["occlusion"] is not None) == spec["occlusion_estimator"]["network"] == occlusion_path(path).is_file()


def test_onnxruntime_matches_torch_on_synthetic_faces(exported, model):
    faces, maps = synthetic_test_faces(9, model.image_size, seed=3)
    assert_parity(model, exported[0], faces, maps)


def real_faces(root: Path, size: int):
    "LFW photos (half wearing a synthetic mask, exact maps) and real masked photos (GrabCut maps), aligned as g2d does."
    from g2d.align import AlignConfig, FaceAligner
    from g2d.masks import MaskSpec, apply_mask

    lfw = sorted((root / "lfw").glob("*/*_0001.jpg"))[::700][:6]
    masked = sorted((root / "real_masked" / "with_mask").glob("*"))[::150][:8]
    if len(lfw) < 3:
        pytest.skip(f"needs LFW photos under {root / 'lfw'}")
    aligner = FaceAligner(AlignConfig.preset("photos", "cpu", size=size))
    faces, maps, estimate = [], [], []
    for i, photo in enumerate(lfw):
        face = aligner(photo)
        if not face.aligned:
            continue
        image, occlusion = face.image, np.zeros((size, size), np.uint8)
        if i % 2:
            drawn = apply_mask(image, face.landmarks, MaskSpec("surgical", colour=(140, 190, 225), seed=i))
            image, occlusion = drawn.image, drawn.occlusion
        faces.append(image)
        maps.append(occlusion)
    for photo in masked:
        face = aligner(photo)
        if face.aligned:
            faces.append(face.image)
            estimate.append(len(faces) - 1)
            maps.append(None)
    return faces, maps, estimate


def test_onnxruntime_matches_torch_on_real_faces(exported, model, real_data_root):
    from g2d.model import estimate_occlusion

    faces, maps, estimate = real_faces(real_data_root, model.image_size)
    for i in estimate:  # real masked photos: the occlusion map g2d verify would estimate (the learned estimator)
        maps[i] = estimate_occlusion(faces[i][None])[0]
    assert len(faces) >= 6 and estimate, "too few real faces aligned"
    result = assert_parity(model, exported[0], np.stack(faces), np.stack(maps))
    print(result)


def test_export_errors_are_one_line(tmp_path):
    done = subprocess.run(g2d_command() + ["export", "--onnx", str(tmp_path / "g2d.onnx"), "--opset", "9"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "opset must be" in done.stderr and not any(tmp_path.iterdir())
    done = subprocess.run(g2d_command() + ["export", "--onnx", str(tmp_path / "g2d.onnx"), "--model",
                                           str(tmp_path / "no-such-model")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "no-such-model" in done.stderr and not any(tmp_path.iterdir())


def test_export_with_an_estimator_folder_writes_its_graph(tmp_path, model):
    "A saved occlusion estimator (here untrained: the wiring) is exported as its own graph and checked."
    from g2d.occlusion import OcclusionConfig, OcclusionNet, save_occlusion_estimator

    torch.manual_seed(0)
    net = OcclusionNet(8, 32).eval()
    folder = save_occlusion_estimator(net, tmp_path / "estimator", OcclusionConfig(image_size=32, width=8))
    out = tmp_path / "export" / "g2d.onnx"
    done = subprocess.run(g2d_command() + ["export", "--onnx", str(out), "--estimator", str(folder), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["occlusion"]["onnx"] == str(occlusion_path(out)) and occlusion_path(out).is_file()
    spec = json.loads(preprocessing_path(out).read_text())
    assert spec["occlusion_estimator"]["file"] == "g2d.occlusion.onnx"
    assert spec["occlusion_estimator"]["inputs"]["face"]["shape"] == ["batch", 3, 32, 32]
    faces, _ = synthetic_test_faces(7, 32, seed=5)
    result = occlusion_parity(net, onnx_session(occlusion_path(out)), faces)
    assert result["max_abs_difference"] < PARITY_MAX_ABS and result["decisions_differing"] == 0, result
