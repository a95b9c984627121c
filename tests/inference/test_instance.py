"""Instance prediction: batching never changes what the detector finds."""

from __future__ import annotations

import pytest
import torch

from seglab.inference import predict_instances


@pytest.mark.usefixtures("one_thread")
def test_predict_instances_batches_only_same_size_images() -> None:
    """A batch is padded to its largest image; mixing sizes would change detections, so sizes never mix."""
    from seglab.models import build_model

    torch.manual_seed(0)
    model = build_model("maskrcnn_resnet18_fpn", 3, min_size=64, max_size=96, fpn_channels=16,
                        box_batch_size_per_image=16, mask_head_layers=1).eval()
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 64, 64, generator=g), torch.rand(3, 48, 72, generator=g),
              torch.rand(3, 64, 64, generator=g)]
    batched = list(predict_instances(model, enumerate(images), score_threshold=0.0, batch_size=4))
    assert [k for k, _, _ in batched] == [0, 1, 2]
    for key, image, inst in batched:
        alone = next(predict_instances(model, [(key, image)], score_threshold=0.0, batch_size=1))[2]
        assert len(inst["scores"]) > 0
        for name in ("boxes", "labels", "scores", "masks"):
            assert torch.equal(inst[name], alone[name]), (key, name)
        assert torch.all(inst["scores"][:-1] >= inst["scores"][1:])  # best first
