"""CFP (Celebrities in Frontal-Profile): the reader on tiny example files in the publisher's layout, its errors, the
10-fold protocol's fold logic, the fiducial points, and the real data when `G2D_DATA` has `cfp/`."""
import shutil

import numpy as np
import pytest

from g2d.core import DataRootError
from g2d.datasets import (CFP_FIDUCIAL_TO_68, FiducialsError, MissingPairImagesError, landmarks68_from_cfp_fiducials,
                          open_dataset, write_example_layout)
from g2d.evaluate import setting_metrics
from g2d.metrics import kfold_accuracy
from g2d.pairs import ImageRef, PairsFormatError, check_identity_disjoint


@pytest.fixture()
def cfp_root(tmp_path):
    write_example_layout("cfp", tmp_path)
    return tmp_path


def test_both_protocols_open_by_name(cfp_root):
    fp, ff = open_dataset("cfp-fp", cfp_root), open_dataset("cfp-ff", cfp_root)
    assert len(fp) == len(ff) == 12 and fp.samples == ff.samples
    assert [(p.reference, p.probe, p.genuine, p.fold) for p in fp.pairs] == [
        (ImageRef("001", 1), ImageRef("001", 101), True, 0), (ImageRef("002", 1), ImageRef("001", 101), False, 0),
        (ImageRef("003", 2), ImageRef("003", 101), True, 1), (ImageRef("004", 1), ImageRef("003", 101), False, 1)]
    assert all(fp.pose[p.reference] == "frontal" and fp.pose[p.probe] == "profile" for p in fp.pairs)
    assert all(ff.pose[p.reference] == ff.pose[p.probe] == "frontal" for p in ff.pairs)
    assert not check_identity_disjoint(fp.pairs) and not check_identity_disjoint(ff.pairs)


@pytest.mark.parametrize("damage, error, message", [
    (lambda r: (r / "Protocol" / "Pair_list_F.txt").unlink(), DataRootError, "Pair_list_F.txt does not exist"),
    (lambda r: (r / "Protocol" / "Split" / "FP" / "02" / "diff.txt").unlink(), DataRootError, "FP/02/diff.txt does not exist"),
    (lambda r: shutil.rmtree(r / "Protocol" / "Split" / "FP"), DataRootError, "Split/FP does not exist"),
    (lambda r: (r / "Protocol" / "Split" / "FP" / "01" / "same.txt").write_text("1,1\n1,5\n"), MissingPairImagesError,
     "profile index 5 (Split/FP/01/same.txt:2: not in Pair_list_P.txt)"),
    (lambda r: (r / "Protocol" / "Split" / "FP" / "01" / "same.txt").write_text("1;1\n"), PairsFormatError, "same.txt:1: expected 'i,j'"),
    (lambda r: (r / "Data" / "Images" / "001" / "profile" / "01.jpg").unlink(), DataRootError, "profile 1: ../Data/Images/001/profile/01.jpg"),
    (lambda r: (r / "Protocol" / "Pair_list_P.txt").write_text("1 ../Data/Images/001/frontal/01.jpg\n"), PairsFormatError, "Pair_list_P.txt:1"),
])
def test_clear_named_errors(cfp_root, damage, error, message):
    damage(cfp_root / "cfp")
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        open_dataset("cfp-fp", cfp_root)


def test_lenient_open_lists_what_is_wrong(cfp_root):
    (cfp_root / "cfp" / "Protocol" / "Split" / "FP" / "01" / "same.txt").write_text("1,1\n1,5\n")
    lenient = open_dataset("cfp", cfp_root, strict=False)
    assert lenient.inconsistencies == {"FP: pair images missing": ["profile index 5 (Split/FP/01/same.txt:2: not in Pair_list_P.txt)"]}
    assert lenient.details["FP pairs"] == 4 and lenient.details["FF pairs"] == 4


def test_malformed_fiducials_are_named(cfp_root):
    cfp = open_dataset("cfp-fp", cfp_root)
    ref = ImageRef("002", 2)
    path = cfp.fiducial_file(ref)
    for text, message in (("1,2\n" * 29, "expected 30 'x,y' lines, got 29"), ("1,2\n" * 29 + "1 2\n", "02.txt:30: expected 'x,y'"),
                          ("1,2\n" * 29 + "nan,2\n", "02.txt:30: expected finite")):
        path.write_text(text)
        with pytest.raises(FiducialsError, match=message):
            cfp.annotated_landmarks68(ref)
    path.unlink()
    with pytest.raises(FiducialsError, match="does not exist"):
        cfp.fiducials(ref)
    scales = cfp_root / "cfp" / "Data" / "image_scales.txt"
    scales.write_text(scales.read_text().replace("003/profile/01.jpg 0.500000", "003/profile/01.jpg zero"))
    with pytest.raises(FiducialsError, match="image_scales.txt:.*positive number"):
        open_dataset("cfp-fp", cfp_root).fiducials(ImageRef("003", 101))
    assert len(open_dataset("cfp", cfp_root).check_annotations()["images without usable fiducials"]) == 12


def test_fiducials_are_scaled_and_become_68_landmarks(cfp_root):
    from g2d.synthetic import SyntheticFaces

    cfp = open_dataset("cfp-ff", cfp_root)
    exact = SyntheticFaces(n_identities=4, images_per_identity=3, size=64, seed=3).landmarks68(3)  # 002 frontal 01
    points = cfp.fiducials(ImageRef("002", 1))
    assert np.allclose(points, exact[list(CFP_FIDUCIAL_TO_68)], atol=1e-3)  # written in pixels x 2, scale 0.5
    derived = cfp.annotated_landmarks68(ImageRef("002", 1))
    eye = np.linalg.norm(exact[36:42].mean(0) - exact[42:48].mean(0))
    annotated = sorted(set(CFP_FIDUCIAL_TO_68) - {60})
    assert np.allclose(derived[annotated], exact[annotated], atol=1e-3)  # the annotated half as given
    assert np.median(np.linalg.norm(derived - exact, axis=1)) / eye < 0.1  # the mirrored half near the true one
    mirrored = landmarks68_from_cfp_fiducials(points * [-1, 1] + [63, 0])  # the same face, mirrored
    assert mirrored[36:42, 0].mean() < mirrored[42:48, 0].mean()  # still the subject's right eye on the image's left
    with pytest.raises(FiducialsError):
        landmarks68_from_cfp_fiducials(points[:29])


def test_ten_fold_protocol_threshold_from_nine_folds(cfp_root):
    "As published: the threshold is chosen on nine folds and applied to the tenth; mean and std over the ten."
    split = cfp_root / "cfp" / "Protocol" / "Split"
    for protocol in ("FF", "FP"):
        for fold in range(3, 11):  # ten folds: the example's two, repeated
            shutil.copytree(split / protocol / f"{(fold - 1) % 2 + 1:02d}", split / protocol / f"{fold:02d}")
    pairs = open_dataset("cfp-fp", cfp_root).pairs
    folds = [p.fold for p in pairs]
    assert folds == [f for f in range(10) for _ in range(2)]
    labels = np.array([p.genuine for p in pairs])
    scores = np.where(labels, 0.8, 0.2)
    scores[np.flatnonzero(np.array(folds) == 6)[1]] = 0.9  # fold 6's impostor scores above every genuine pair
    result = kfold_accuracy(scores, labels, np.array(folds))
    expected = [1.0] * 6 + [0.5] + [1.0] * 3  # the other folds' threshold (in (0.2, 0.8]) misplaces it
    assert result["fold_accuracies"] == expected and result["folds"] == list(range(10))
    assert result["mean"] == pytest.approx(0.95) and result["std"] == pytest.approx(np.std(expected, ddof=1))
    assert all(0.2 < t <= 0.8 for i, t in enumerate(result["thresholds"]) if i != 6)
    report = setting_metrics(scores, labels, folds)
    assert report["n_folds"] == 10 and report["lfw_10fold_acc"] == pytest.approx(0.95)
    assert report["lfw_10fold_std"] == pytest.approx(np.std(expected, ddof=1))


def test_real_cfp(real_data_root):
    if not (real_data_root / "cfp").is_dir():
        pytest.skip(f"needs CFP under the data root ({real_data_root}/cfp)")
    for name in ("cfp-fp", "cfp-ff"):
        ds = open_dataset(name, real_data_root)
        assert (len(ds), len(ds.identities), len(ds.pairs)) == (7000, 500, 7000)
        assert sorted({p.fold for p in ds.pairs}) == list(range(10)) and not check_identity_disjoint(ds.pairs)
        assert sum(p.genuine for p in ds.pairs) == 3500
    assert open_dataset("cfp-ff", real_data_root).details["pairs listed twice, in swapped order (as published)"] == 130
    cfp = open_dataset("cfp", real_data_root)
    assert cfp.check_annotations() == {}  # 7,000 fiducial files, each 30 'x,y' lines
    # the mapping of the 30 fiducials: on frontal images they agree with dlib's 68 points (HOG) to a few per cent
    from g2d.align import AlignConfig, FaceAligner, landmark_error

    aligner = FaceAligner(AlignConfig(detectors=("hog",)))
    errors = []
    for ref in [r for r in cfp.refs if cfp.pose[r] == "frontal"][::250]:
        face = aligner(str(cfp.path_of(ref)))
        if face.aligned:
            errors.append(landmark_error(cfp.annotated_landmarks68(ref), face.source_landmarks))
    assert len(errors) >= 15 and np.median(errors) < 0.1, errors
