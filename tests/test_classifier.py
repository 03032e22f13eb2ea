"Feature classifier: frozen backbone, cross-entropy on identities."
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset
from g2d.classifier import ClassifierConfig, FeatureClassifier, train_classifier
from g2d.reformer import Reformer


class Enc(nn.Module):
    feature_channels = 4
    def __init__(self):
        super().__init__(); self.conv = nn.Conv2d(4, 4, 4, 4)
    def feature_size(self, s): return s // 4
    def forward(self, x, m): return self.conv(torch.cat([x * (1 - m), m], 1))


def test_backbone_frozen_and_shapes(tmp_path):
    torch.manual_seed(0)
    labels = torch.arange(16) % 2
    x, m = torch.rand(16, 3, 16, 16), torch.zeros(16, 1, 16, 16)
    data = TensorDataset(x, m, labels, torch.arange(16))
    enc, R = Enc(), Reformer(4, 4, 8)
    before = {k: v.clone() for k, v in list(enc.state_dict().items()) + list(R.state_dict().items())}
    clf, log = train_classifier(ClassifierConfig.from_profile("smoke", steps=4), enc, R, data, 2, tmp_path, progress=False)
    after = dict(list(enc.state_dict().items()) + list(R.state_dict().items()))
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in list(enc.parameters()) + list(R.parameters()))
    assert isinstance(clf, FeatureClassifier) and clf.fc.out_features == 2 and len(log.rows) == 4
