"""Training faces from several datasets (g2d.training_faces) on the real data: readers, identity numbering, the
union's split. The split's logic is tested on synthetic faces in nbs/02d_training_faces.ipynb."""
import numpy as np
import pytest

from g2d.core import cache_root
from g2d.datasets import open_dataset
from g2d.facecache import INDEX_FILE, face_cache_dir
from g2d.training_faces import UNLABELLED, dataset_align_settings, union_training_faces


def test_celeba_releases_share_one_identity_numbering(real_data_root):
    if not (real_data_root / "celeba_wild").is_dir():
        pytest.skip("needs celeba_wild under the data root")
    aligned, wild = open_dataset("celeba", real_data_root), open_dataset("celeba_wild", real_data_root)
    shared = set(aligned.identities) & set(wild.identities)
    assert (len(wild), len(wild.identities), len(shared)) == (5707, 298, 166)
    assert not {p.name for p, _ in aligned.samples} & {p.name for p, _ in wild.samples}  # no image in both


def test_utkface_has_no_identities(real_data_root):
    if not (real_data_root / "utkface").is_dir():
        pytest.skip("needs utkface under the data root")
    utk = open_dataset("utkface", real_data_root)
    assert not utk.labelled and len(utk) == 8000 and len(utk.identities) == 8000
    assert all(0 <= a["age"] <= 116 and a["gender"] in (0, 1) for a in utk.attributes)


def _cached(name: str) -> bool:
    return (face_cache_dir(cache_root(), name, dataset_align_settings(name, "cpu")) / INDEX_FILE).is_file()


def test_union_keeps_the_celeba_held_out_identities(real_data_root):
    if not all(_cached(name) for name in ("celeba", "celeba_wild", "utkface")):
        pytest.skip("the CelebA, CelebA-wild and UTKFace face caches are not built under the cache root")
    alone = union_training_faces(["celeba"], 64, root=real_data_root)
    union = union_training_faces(["celeba", "celeba_wild", "utkface"], 64, root=real_data_root)
    assert np.array_equal(union.held.images, alone.held.images) and len(np.unique(alone.held.labels)) == 543
    trained = set(union.train_identities[union.train_identities != UNLABELLED].tolist())
    assert not trained & set(union.held.labels.tolist())
    assert union.counts["celeba_wild"]["dropped"] > 0 and union.counts["utkface"]["train"] == len(
        union.train.labels[union.train.labels == UNLABELLED])
    assert len(union.train_sources) == len(union.train)
