"Reformer losses against loop formulas, frozen encoder, resume, and DDP of reformer + classifier (2 gloo CPU processes)."
import itertools, math, os, socket
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import TensorDataset
from g2d.reformer import (ReformerConfig, Reformer, FirstOrderHead, normalised_distances, triplet_angles,
                          rkd_distance_loss, rkd_angle_loss, reformer_losses, train_reformer)
from g2d.core import G2DError
from g2d.classifier import ClassifierConfig, train_classifier


class TinyEncoder(nn.Module):
    feature_channels = 4
    def __init__(self):
        super().__init__()
        torch.manual_seed(123)
        self.conv = nn.Conv2d(4, 4, 4, 4)
    def feature_size(self, s): return s // 4
    def forward(self, x, m): return self.conv(torch.cat([x * (1 - m), m], 1))


def toy(n=32, ids=4, size=16):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % ids
    x = torch.rand(n, 3, size, size, generator=g) * 0.3 + labels.view(-1, 1, 1, 1) / ids * 0.7
    m = torch.zeros(n, 1, size, size); m[:, :, size // 2:] = 1
    teacher = F.normalize(F.one_hot(labels, ids).float() + 0.1 * torch.randn(n, ids, generator=g), dim=1)
    return TensorDataset(x * (1 - m), m, labels, torch.arange(n)), teacher


def loop_normalised(e):
    n = len(e)
    d = [[math.dist(e[i].tolist(), e[j].tolist()) for j in range(n)] for i in range(n)]
    nz = [d[i][j] for i in range(n) for j in range(n) if d[i][j] > 0]
    mean = sum(nz) / len(nz)
    return torch.tensor(d) / mean


def huber(a, b):
    r = (a - b).abs()
    return torch.where(r < 1, 0.5 * r ** 2, r - 0.5).mean()


def test_distance_against_loops():
    torch.manual_seed(0)
    s, t = torch.randn(6, 5), torch.randn(6, 3)
    assert torch.allclose(normalised_distances(s), loop_normalised(s), atol=1e-5)
    assert torch.allclose(rkd_distance_loss(s, t), huber(loop_normalised(s), loop_normalised(t)), atol=1e-5)
    # scale invariance from the mean normalisation
    assert torch.allclose(rkd_distance_loss(3 * s, t), rkd_distance_loss(s, t), atol=1e-5)


def test_angle_at_b_against_loops():
    torch.manual_seed(1)
    s, t = torch.randn(5, 4), torch.randn(5, 3)
    def cos_at_b(e, a, b, c):
        u, v = e[a] - e[b], e[c] - e[b]
        nu, nv = u.norm(), v.norm()
        if nu == 0 or nv == 0: return 0.0
        return float((u @ v) / (nu * nv))
    def loop(e): return torch.tensor([[[cos_at_b(e, a, b, c) for c in range(5)] for b in range(5)] for a in range(5)])
    assert torch.allclose(triplet_angles(s), loop(s), atol=1e-5)
    assert torch.allclose(rkd_angle_loss(s, t), huber(loop(s), loop(t)), atol=1e-5)
    # angle at b of the right triangle (1,0),(0,0),(0,1) is 90 degrees
    e = torch.tensor([[1.0, 0], [0, 0], [0, 1.0]])
    assert abs(triplet_angles(e)[0, 1, 2]) < 1e-6 and abs(triplet_angles(e)[1, 0, 2] - math.cos(math.pi / 4)) < 1e-6


def test_first_order_and_total():
    torch.manual_seed(2)
    e, t, y = torch.randn(4, 8), F.normalize(torch.randn(4, 3), dim=1), torch.tensor([0, 1, 2, 1])
    ce = FirstOrderHead(8, "ce", num_identities=3)
    assert torch.allclose(ce(e, y, t), F.cross_entropy(ce.W(e), y))
    rg = FirstOrderHead(8, "regress", teacher_dim=3)
    assert torch.allclose(rg(e, y, t), torch.stack([1 - F.cosine_similarity(rg.W(e)[i], t[i], dim=0) for i in range(4)]).mean())
    cfg = ReformerConfig()
    p = reformer_losses(e, t, y, ce, cfg)
    assert torch.allclose(p["total"], p["first"] + 0.01 * p["distance"] + 0.02 * p["angle"])
    assert torch.allclose(reformer_losses(e, t, y, ce, cfg.ablation("G2D[CE]"))["total"], p["first"])
    assert torch.allclose(reformer_losses(e, t, y, ce, cfg.ablation("G2D[DIS]"))["total"], 0.01 * p["distance"] + 0.02 * p["angle"])
    with pytest.raises(G2DError): FirstOrderHead(8, "other", 3)
    with pytest.raises(G2DError): cfg.ablation("nope")


def test_reformer_shape():
    r = Reformer(4, width=4, embedding_dim=32)
    assert r(torch.rand(3, 4, 8, 8)).shape == (3, 32)


def test_train_frozen_encoder_and_resume(tmp_path):
    data, teacher = toy()
    enc = TinyEncoder()
    before = [p.clone() for p in enc.parameters()]
    cfg = ReformerConfig.from_profile("smoke", width=4, embedding_dim=16, steps=6, checkpoint_every=3)
    r1, _, log1 = train_reformer(cfg, enc, data, teacher, tmp_path / "a", num_identities=4, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, enc.parameters()))
    assert not any(p.requires_grad for p in enc.parameters()) and all(p.grad is None for p in enc.parameters())
    # interrupted at step 3 then resumed == uninterrupted
    train_reformer(cfg.replace(steps=3), TinyEncoder(), data, teacher, tmp_path / "b", num_identities=4, progress=False)
    r2, _, log2 = train_reformer(cfg, TinyEncoder(), data, teacher, tmp_path / "b", num_identities=4, progress=False)
    assert [round(r["total"], 5) for r in log1.rows] == [round(r["total"], 5) for r in log2.rows]
    for a, b in zip(r1.state_dict().values(), r2.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def _ddp_worker(rank, port, out):
    import torch.distributed as dist
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        data, teacher = toy()
        cfg = ReformerConfig.from_profile("smoke", width=4, embedding_dim=16, steps=3, batch_size=4)
        r, _, _ = train_reformer(cfg, TinyEncoder(), data, teacher, os.path.join(out, f"r{rank}"), num_identities=4, progress=False)
        torch.save(r.state_dict(), os.path.join(out, f"rank{rank}.pt"))
        c, _ = train_classifier(ClassifierConfig.from_profile("smoke", steps=3, batch_size=4), TinyEncoder(), r, data, 4,
                                os.path.join(out, f"c{rank}"), progress=False)
        torch.save(c.state_dict(), os.path.join(out, f"classifier{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_two_ranks_identical(tmp_path):
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    init = Reformer(4, 4, 16).state_dict()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k
    assert any(not torch.equal(a[k], init[k]) for k in a if a[k].is_floating_point())
    # the feature classifier trains under the same DDP group: both ranks end with the same weights
    a, b = torch.load(tmp_path / "classifier0.pt"), torch.load(tmp_path / "classifier1.pt")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
