"""Bounded inputs, checked weights, caches that cannot lie: each case below failed (or answered wrongly) before the
checks it exercises existed. Command-line cases run through `g2d.cli.main`, in process."""
import errno
import json
import os
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import g2d.cli as cli
from g2d.core import G2DWarning


def g2d_main(*args) -> int:
    "`g2d ARGS` in this process; its exit code (argparse's usage errors too)."
    try:
        return cli.main([str(a) for a in args])
    except SystemExit as e:
        return int(e.code)


def black_png(path: Path, width: int, height: int) -> Path:
    "An all-black RGB PNG of any size, a few hundred kilobytes at most (compressed row by row)."
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    compressor, row = zlib.compressobj(9), bytes(1 + 3 * width)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def photo(path: Path, size=(120, 100), seed: int = 0) -> Path:
    "A small JPEG (no face in it)."
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (*size, 3), np.uint8)).save(path, quality=90)
    return path


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    "An untrained G2D of the smoke profile's architecture, saved with two thresholds (weights do not matter here)."
    from g2d.model import G2D, G2DConfig, save_g2d
    from g2d.reformer import Reformer

    torch.manual_seed(0)
    cfg = G2DConfig.from_profile("smoke", mask_templates="builtin")
    encoder = cfg.encoder_config().build_encoder()
    encoder.prior.palette.fit(np.random.default_rng(0).random((512, 3)))
    reformer = Reformer(encoder.feature_channels, cfg.reformer_config().width, cfg.reformer_config().embedding_dim)
    model = G2D(encoder, reformer, None, cfg.encoder_config().image_size).eval()
    folder = tmp_path_factory.mktemp("model") / "m"
    save_g2d(model, folder, cfg, {"0.01": {"threshold": 0.5}, "0.001": {"threshold": 0.7}})
    return folder


def copy_of(folder: Path, tmp_path: Path) -> Path:
    shutil.copytree(folder, tmp_path / "copy")
    return tmp_path / "copy"


def edit_metadata(folder: Path, change) -> None:
    meta = json.loads((folder / "g2d.json").read_text())
    change(meta)
    (folder / "g2d.json").write_text(json.dumps(meta))


def rewrite_tensors(folder: Path, change) -> None:
    "Replace the weights by `change(tensors)`, keeping g2d.json as it is (as a corrupted or forged file would)."
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(folder / "model.safetensors"))
    save_file(change(tensors), str(folder / "model.safetensors"))


# --- 1. a pixel budget for every image read ----------------------------------------------------------------------

def test_verify_refuses_a_pixel_bomb_from_its_header(tmp_path, capsys):
    bomb = black_png(tmp_path / "bomb.png", 20000, 20000)  # decodes to 1.2 GB; the file is about 1 MB
    assert bomb.stat().st_size < 2_000_000
    assert g2d_main("verify", bomb, bomb) == 1
    err = capsys.readouterr().err
    assert "20000x20000 = 400,000,000 pixels, over the pixel budget of 100,000,000" in err and "--max-pixels" in err


def test_max_pixels_option_and_variable_bound_every_reader(tmp_path, capsys, monkeypatch):
    from g2d.align import load_rgb
    from g2d.core import ImageTooLargeError
    from g2d.datasets import read_image

    small = photo(tmp_path / "small.jpg")
    assert g2d_main("verify", small, small, "--max-pixels", "1000") == 1
    assert "12,000 pixels, over the pixel budget of 1,000" in capsys.readouterr().err
    assert "G2D_MAX_PIXELS" not in os.environ  # the option applied to that command only
    assert g2d_main("verify", small, small, "--max-pixels", "0") == 2  # not a budget: a usage error
    monkeypatch.setenv("G2D_MAX_PIXELS", "1000")
    for reader in (load_rgb, read_image):  # datasets and face caches read through these
        with pytest.raises(ImageTooLargeError):
            reader(small)


def test_large_photos_are_downscaled_before_detection(tmp_path):
    from g2d.core import PHOTO_WORK_PIXELS, read_photo

    big = tmp_path / "big.jpg"
    Image.fromarray(np.full((3000, 4500, 3), 90, np.uint8)).save(big)
    image = read_photo(big)
    assert image.shape[0] * image.shape[1] <= PHOTO_WORK_PIXELS and image.shape[1] > image.shape[0]


def test_a_bit_flipped_jpeg_is_named_corrupt_not_faceless(tmp_path, capfd):
    good = photo(tmp_path / "good.jpg", (300, 300))
    data = bytearray(good.read_bytes())
    for k in range(1000, len(data) - 10, 499):
        data[k] ^= 0x10
    (tmp_path / "flipped.jpg").write_bytes(bytes(data))
    assert g2d_main("verify", tmp_path / "flipped.jpg", good) == 1
    err = capfd.readouterr().err  # the file descriptor: libjpeg writes there directly
    assert "corrupt JPEG data" in err and "no face found" not in err
    assert not any(line.startswith("Corrupt JPEG data") for line in err.splitlines())  # libjpeg's own line


# --- 2, 3, and the weak items on model folders: checked on load ------------------------------------------------

def test_nan_weights_never_give_a_verdict(model_folder, tmp_path, capsys):
    folder = copy_of(model_folder, tmp_path)
    rewrite_tensors(folder, lambda t: {k: v.fill_(float("nan")) if k.startswith("reformer.") and v.is_floating_point()
                                       else v for k, v in t.items()})
    small = photo(tmp_path / "a.jpg")
    assert g2d_main("verify", small, small, "--model", folder) == 1
    assert "hold NaN or infinite values" in capsys.readouterr().err


def test_non_finite_embeddings_are_an_error(model_folder):
    from g2d.core import G2DError
    from g2d.model import load_g2d

    model = load_g2d(model_folder)
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if n.startswith("reformer.")).fill_(float("nan"))
    with pytest.raises(G2DError, match="NaN or infinite embeddings"):
        model.embed(np.zeros((2, 32, 32, 3), np.uint8), np.zeros((2, 32, 32)))


def test_wrong_dtypes_are_refused(model_folder, tmp_path):
    from g2d.model import G2DCheckpointError, load_g2d

    folder = copy_of(model_folder, tmp_path)
    rewrite_tensors(folder, lambda t: {k: v.long() if v.is_floating_point() else v for k, v in t.items()})
    with pytest.raises(G2DCheckpointError, match="is I64, the model needs F32"):
        load_g2d(folder)


@pytest.mark.parametrize("thresholds, words", [
    ({"0.01": {"threshold": -5.0}, "0.001": {"threshold": 0.7}}, "not a cosine similarity"),
    ({"0.01": {"threshold": 0.8}, "0.001": {"threshold": 0.7}}, "a stricter false match rate needs a higher"),
    ({"2": {"threshold": 0.5}}, "a false match rate in (0, 1)"),
])
def test_thresholds_are_range_checked_and_ordered(model_folder, tmp_path, thresholds, words):
    from g2d.model import G2DCheckpointError, load_g2d

    folder = copy_of(model_folder, tmp_path)
    edit_metadata(folder, lambda m: m.update(thresholds=thresholds))
    with pytest.raises(G2DCheckpointError) as raised:
        load_g2d(folder)
    assert words in str(raised.value)


def test_the_digest_ties_thresholds_to_weights_and_inference_fields(model_folder, tmp_path):
    from g2d.model import G2DCheckpointError, load_g2d

    folder = copy_of(model_folder, tmp_path)
    assert len(json.loads((folder / "g2d.json").read_text())["digest"]) == 64
    edit_metadata(folder, lambda m: m["config"].update(test_time_flip=not m["config"]["test_time_flip"]))
    with pytest.raises(G2DCheckpointError, match="digest no longer matches"):
        load_g2d(folder)
    shutil.rmtree(folder)
    folder = copy_of(model_folder, tmp_path)
    rewrite_tensors(folder, lambda t: {k: v * 1.01 if v.is_floating_point() else v for k, v in t.items()})
    with pytest.raises(G2DCheckpointError, match="digest no longer matches"):
        load_g2d(folder)


def test_folders_of_older_g2d_load_without_a_digest(model_folder, tmp_path):
    from g2d.model import G2DCheckpointError, load_g2d

    folder = copy_of(model_folder, tmp_path)
    edit_metadata(folder, lambda m: (m.pop("digest"), m.update(format="g2d-model-1")))
    assert load_g2d(folder).image_size == 32  # the older format: every check but the digest
    edit_metadata(folder, lambda m: m.update(format="g2d-model-2"))
    with pytest.raises(G2DCheckpointError, match="'digest'"):
        load_g2d(folder)  # the current format must carry one


def test_the_released_weights_carry_a_digest_and_load():
    from g2d.model import G2D_FORMAT, RELEASED_SPECS, TRUNK_STUDENT_FORMAT, is_g2d_checkpoint, load_pretrained, pretrained_folder

    if not is_g2d_checkpoint(pretrained_folder()):
        pytest.skip("no released weights in this install")
    for name in dict.fromkeys(RELEASED_SPECS.values()):  # the default release (a trunk student) and the from-scratch G2D
        meta = json.loads((pretrained_folder(name) / "g2d.json").read_text())
        assert meta["format"] in (G2D_FORMAT, TRUNK_STUDENT_FORMAT) and len(meta["digest"]) == 64
        assert load_pretrained(name).metadata["digest"] == meta["digest"]


def test_huge_sizes_are_refused_before_any_allocation(model_folder, tmp_path):
    from g2d.model import G2DCheckpointError, load_g2d

    folder = copy_of(model_folder, tmp_path)
    edit_metadata(folder, lambda m: m["reformer"].update(width=10 ** 9))
    with pytest.raises(G2DCheckpointError, match="reformer.width must be an integer from 1 to 4096"):
        load_g2d(folder)


def test_export_parity_fails_on_non_finite_outputs(model_folder):
    from g2d.export import PARITY_MAX_ABS, onnx_parity
    from g2d.model import load_g2d

    model = load_g2d(model_folder)

    class _Node:
        shape = [None, 3, 32, 32]

    class NaNSession:  # an exported graph that returns only NaN
        def get_inputs(self):
            return [_Node()]

        def get_outputs(self):
            return [_Node()]

        def run(self, names, feeds):
            return [np.full((len(feeds["face"]), model.embedding_dim), np.nan, np.float32)]

    faces = np.zeros((3, 32, 32, 3), np.uint8)
    parity = onnx_parity(model, NaNSession(), faces, np.zeros((3, 32, 32)))
    assert parity["max_abs_difference"] == float("inf") and parity["min_cosine"] == float("-inf")
    assert not parity["max_abs_difference"] < PARITY_MAX_ABS  # export_onnx's test: it refuses to write


# --- 5. face caches carry digests of their contents --------------------------------------------------------------

def _example_lfw(tmp_path: Path) -> Path:
    from g2d.datasets import write_example_layout

    write_example_layout("lfw", tmp_path / "data")
    return tmp_path / "data"


def test_a_zeroed_shard_is_refused_and_rebuilt_on_request(tmp_path, capsys, monkeypatch):
    root = _example_lfw(tmp_path)
    monkeypatch.setenv("G2D_CACHE", str(tmp_path / "cache"))
    evaluate = ["evaluate", "--model", "teacher", "--dataset", "lfw", "--root", root, "--profile", "smoke",
                "--no-progress", "--json"]
    assert g2d_main(*evaluate) == 0
    before = json.loads(capsys.readouterr().out)
    [shard] = [p for p in (tmp_path / "cache").rglob("shard_00000") if p.is_dir()]
    for name in ("landmarks.npy", "source_landmarks.npy", "transforms.npy"):  # valid .npy files, same sizes
        np.save(shard / name, np.zeros_like(np.load(shard / name)))
    assert g2d_main(*evaluate) == 1
    err = capsys.readouterr().err
    assert "landmarks.npy, source_landmarks.npy, transforms.npy changed" in err and "--rebuild-cache" in err
    assert g2d_main(*evaluate, "--rebuild-cache") == 0
    assert json.loads(capsys.readouterr().out)["settings"] == before["settings"]


def test_a_damaged_index_names_rebuild_cache(tmp_path):
    from g2d.align import AlignConfig
    from g2d.facecache import FaceCache, FaceCacheError, build_face_cache

    items = [(np.random.default_rng(i).integers(0, 255, (80, 80, 3), np.uint8), i % 2) for i in range(4)]
    build_face_cache(items, tmp_path / "c", AlignConfig(fallback="center"), progress=False)
    (tmp_path / "c" / "index.json").write_text('{"format": 1, ')
    for opening in (lambda: FaceCache(tmp_path / "c"),
                    lambda: build_face_cache(items, tmp_path / "c", AlignConfig(fallback="center"), progress=False)):
        with pytest.raises(FaceCacheError, match="is damaged .*--rebuild-cache"):
            opening()


# --- 6 and the weak items on options: validated before the work --------------------------------------------------

def test_threads_beyond_the_machine_are_a_usage_error(tmp_path, capsys):
    assert g2d_main("embed", photo(tmp_path / "a.jpg"), "--threads", "100000") == 2
    assert "--threads must be a positive integer, at most" in capsys.readouterr().err


def test_g2d_device_is_checked_by_every_command(monkeypatch, capsys):
    monkeypatch.setenv("G2D_DEVICE", "evil")
    for command in (["info"], ["metrics", "missing.csv"], ["verify", "a.jpg", "b.jpg"]):
        assert g2d_main(*command) == 1
        assert "$G2D_DEVICE='evil'" in capsys.readouterr().err
    if not torch.cuda.is_available():  # the README's promise: a named device that is absent is an error
        monkeypatch.setenv("G2D_DEVICE", "cuda")
        assert g2d_main("train", "--profile", "smoke") == 1
        assert "CUDA is not available" in capsys.readouterr().err


def test_g2d_device_is_honoured_where_no_device_option_is_given(monkeypatch, tmp_path):
    import g2d.model

    seen = {}
    monkeypatch.setattr(g2d.model, "train_g2d", lambda cfg, run_dir, stages, overwrite: seen.setdefault("cfg", cfg))
    monkeypatch.setenv("G2D_DEVICE", "cpu")
    assert g2d_main("train", "--profile", "gpu", "--run-dir", tmp_path / "run", "--set", "mask_templates=builtin") == 0
    assert seen["cfg"].device == "cpu"  # the gpu profile's own default is "auto"


def test_os_errors_are_named_with_the_path(monkeypatch, capsys):
    for error, words in ((OSError(errno.ENOSPC, "No space left on device", "/data/out.npy"),
                          "/data/out.npy: No space left on device"),
                         (OSError(errno.EROFS, "Read-only file system", "/ro/table.csv"),
                          "/ro/table.csv: Read-only file system"),
                         (IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp/folder"),
                          "/tmp/folder: Is a directory")):
        def configure(parser, error=error):
            def run(args):
                raise error
            parser.set_defaults(func=run)
        monkeypatch.setattr(cli, "load_configure", lambda spec, configure=configure: configure)
        assert g2d_main("info") == 1
        err = capsys.readouterr().err
        assert err.strip() == f"g2d info: error: {words}" and "unexpected" not in err


def test_a_failed_set_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("G2D_CACHE", str(tmp_path / "cache"))
    for bad in ('train_datasets=["nope"]', "mask_templates=/no/such/folder", "teacher=no-such-model"):
        assert g2d_main("train", "--profile", "smoke", "--run-dir", tmp_path / "run", "--set", bad) == 1
        assert not (tmp_path / "run").exists(), bad
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


def test_double_dash_passes_through_to_the_command(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photo(tmp_path / "-dash.jpg")
    photo(tmp_path / "b.jpg", seed=1)
    code = g2d_main("verify", "--", "-dash.jpg", "b.jpg")
    err = capsys.readouterr().err
    assert code == 1 and "unrecognized arguments" not in err and "no face found in -dash.jpg" in err


def test_bad_options_are_refused_before_the_work(tmp_path, capsys, monkeypatch):
    import g2d.export
    import g2d.model

    def never(*args, **kwargs):
        raise AssertionError("the work started")

    monkeypatch.setattr(g2d.model, "embed_photo_batches", never)
    monkeypatch.setattr(g2d.model, "find_faces", never)
    monkeypatch.setattr(g2d.export, "_to_onnx", never)
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder.onnx").mkdir()
    a = photo(tmp_path / "a.jpg")
    assert g2d_main("embed", a, "--save-crops", tmp_path / "file") == 1
    assert "--save-crops" in capsys.readouterr().err
    assert g2d_main("verify", a, a, "--fmr", "0.5") == 1
    assert "no threshold for FMR 0.5" in capsys.readouterr().err
    assert g2d_main("export", "--onnx", tmp_path / "folder.onnx") == 1
    assert "it is a folder" in capsys.readouterr().err


def test_evaluate_refuses_bad_pairs_or_drops_them_with_a_warning(tmp_path, capsys, monkeypatch):
    root = _example_lfw(tmp_path)
    monkeypatch.setenv("G2D_CACHE", str(tmp_path / "cache"))
    pairs = root / "lfw_meta" / "pairs.txt"
    lines = pairs.read_text().splitlines()
    assert lines[0] == "1\t2"  # one fold, two genuine and two impostor pairs
    lines[1] = "Ann_Lee\t1\t1"  # an image with itself
    lines[3] = "Ann_Lee\t3\tAnn_Lee\t2"  # an impostor pair of one identity
    pairs.write_text("\n".join(lines) + "\n")
    evaluate = ["evaluate", "--model", "teacher", "--dataset", "lfw", "--root", root, "--profile", "smoke",
                "--no-progress", "--json"]
    assert g2d_main(*evaluate) == 1
    err = capsys.readouterr().err
    assert "pairs of an image with itself" in err and "impostor pairs of one identity" in err
    assert "--drop-bad-pairs" in err
    assert g2d_main(*evaluate, "--drop-bad-pairs") == 0
    captured = capsys.readouterr()
    assert "g2d evaluate: warning: 2 bad pair(s)" in captured.err
    assert json.loads(captured.out)["settings"]["UMR-UMP"]["n_genuine"] == 1


# --- the smaller items -------------------------------------------------------------------------------------------

def test_a_warning_met_many_times_is_printed_once(monkeypatch, capsys):
    import warnings

    def configure(parser):
        def run(args):
            for _ in range(6):
                warnings.warn("no mask templates under the default data root", G2DWarning)
            return 0
        parser.set_defaults(func=run)

    monkeypatch.setattr(cli, "load_configure", lambda spec: configure)
    assert g2d_main("info") == 0
    assert capsys.readouterr().err.splitlines() == ["g2d info: warning: no mask templates under the default data root"]


def test_cache_warnings_are_g2d_warnings(tmp_path):
    from g2d.core import load_keyed_npz

    (tmp_path / "f.npz").write_bytes(b"not an npz")
    with pytest.warns(G2DWarning, match="unreadable"):
        assert load_keyed_npz(tmp_path / "f.npz", "abc", ["k"], ("rows",), what="cached features") is None


def test_fdr_of_perfectly_separated_constant_scores_is_null(tmp_path, capsys):
    scores = tmp_path / "s.csv"
    scores.write_text("score,label\n" + "0.7,1\n" * 3 + "0.2,0\n" * 3)
    assert g2d_main("metrics", scores, "--json") == 0
    assert json.loads(capsys.readouterr().out)["FDR"] is None  # infinite, not 1.9e31


def test_cached_encoder_weights_get_the_usual_permissions(tmp_path):
    from g2d.inpainting_training import InpaintingConfig, save_generative_encoder

    old = os.umask(0o022)
    try:
        cfg = InpaintingConfig.from_profile("smoke", mask_templates="builtin")
        folder = save_generative_encoder(cfg.build_encoder(), tmp_path / "e", cfg)
    finally:
        os.umask(old)
    assert (folder / "model.safetensors").stat().st_mode & 0o777 == 0o644


def test_non_finite_embeddings_of_any_model_never_give_a_verdict(tmp_path, capsys):
    "A recognizer (not a G2D network) with calibrated thresholds whose embeddings are NaN: verify and embed refuse."
    from g2d.evaluate import TemplateEmbedder, register_model, unregister_model
    from g2d.synthetic import SyntheticFaces
    from g2d.teacher import TorchModuleTeacher

    class Calibrated(TemplateEmbedder):
        @property
        def thresholds(self):
            return {"0.01": {"threshold": 0.5}, "0.001": {"threshold": 0.7}}

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 8))
    with torch.no_grad():
        net[1].weight.fill_(float("nan"))
    faces = SyntheticFaces(2, 1, size=160, seed=0)
    paths = []
    for index in (0, 1):
        paths.append(tmp_path / f"face{index}.jpg")
        Image.fromarray(faces.render(index)[0]).save(paths[-1], quality=95)
    register_model("nan-test-recognizer", lambda spec, config: Calibrated(
        TorchModuleTeacher(net, input_size=32, embedding_dim=8), spec, size=32), replace=True)
    try:
        assert g2d_main("verify", *paths, "--model", "nan-test-recognizer") == 1
        err = capsys.readouterr().err
        assert "NaN or infinite embeddings" in err and "same person" not in err and "different people" not in err
        assert g2d_main("embed", *paths, "--model", "nan-test-recognizer", "--json") == 1
        captured = capsys.readouterr()
        assert "NaN or infinite embeddings" in captured.err and captured.out == ""
    finally:
        unregister_model("nan-test-recognizer")
