"""The embedded synthetic faces: determinism across DataLoader workers."""
import numpy as np
import torch

from g2d.synthetic import SyntheticFaces


def test_same_images_from_worker_processes():
    faces = SyntheticFaces(n_identities=4, images_per_identity=3, size=32, seed=5, transform=torch.from_numpy)
    loader = torch.utils.data.DataLoader(faces, batch_size=4, num_workers=2, shuffle=False)
    images = torch.cat([batch for batch, _ in loader])
    assert images.shape == (12, 32, 32, 3)
    assert all(np.array_equal(images[i].numpy(), faces[i][0].numpy()) for i in range(len(faces)))
