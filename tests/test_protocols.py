"""Protocols on LFW's real View-2 pairs, scored end to end through g2d.metrics (skips without the data root)."""
import numpy as np

from g2d.metrics import kfold_accuracy, verification_metrics
from g2d.pairs import find_pairs_file, read_pairs
from g2d.protocols import SETTINGS, build_protocols, protocol_folds, protocol_images, protocol_labels


def test_lfw_pairs_in_three_settings_score_end_to_end(real_data_root):
    lfw = real_data_root / "lfw"
    pairs = read_pairs(find_pairs_file(lfw))
    protocols = build_protocols(pairs)
    assert [len(protocols[s]) for s in SETTINGS] == [6000, 6000, 6000]
    umr_mp = protocols["UMR-MP"]
    assert all(not t.reference_masked and t.probe_masked for t in umr_mp)
    assert [t.probe for t in umr_mp] == [p.probe for p in pairs]  # default: the second image is the probe
    # a stand-in recognizer: one random unit vector per identity plus per-image noise (masked: more noise)
    rng = np.random.default_rng(0)
    identities = {image.identity for image, _ in protocol_images(umr_mp)}
    centre = {name: rng.normal(size=16) for name in sorted(identities)}
    embeddings = {}
    for image, masked in protocol_images(umr_mp):
        v = centre[image.identity] + rng.normal(scale=1.5 if masked else 0.5, size=16)
        embeddings[image, masked] = v / np.linalg.norm(v)
    scores = np.array([embeddings[t.reference, t.reference_masked] @ embeddings[t.probe, t.probe_masked] for t in umr_mp])
    labels = protocol_labels(umr_mp)
    report = verification_metrics(scores, labels, scores, labels)
    result = kfold_accuracy(scores, labels, protocol_folds(umr_mp))
    assert 0.5 < result["mean"] <= report["ACC"] + 0.02 and report["FMR100_Th_FMR"] <= 0.01
