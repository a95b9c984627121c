"""SamSession: one encoder pass per image, prompts reach the prompt encoder in the model's frame, shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("segment_anything")

from seglab.errors import ConfigError  # noqa: E402
from seglab.sam import SamSession  # noqa: E402
from seglab.sam import session as session_module  # noqa: E402
from seglab.sam.session import rgb_uint8  # noqa: E402

from .conftest import H, W, picture  # noqa: E402

# ResizeLongestSide to 64: the long side (W = 48) becomes 64, the short one round(40 * 64 / 48) = 53.
SX, SY = 64 / W, 53 / H


@pytest.fixture
def calls(tiny_sam: torch.nn.Module):
    """Record every image-encoder pass and every prompt-encoder call (its points, boxes, masks)."""
    seen: dict[str, list] = {"encoder": [], "prompts": []}
    h1 = tiny_sam.image_encoder.register_forward_hook(lambda m, i, o: seen["encoder"].append(i[0].shape))
    original = tiny_sam.prompt_encoder.forward

    def spy(points, boxes, masks):
        seen["prompts"].append({"points": points, "boxes": boxes, "masks": masks})
        return original(points, boxes, masks)

    tiny_sam.prompt_encoder.forward = spy
    yield seen
    h1.remove()
    del tiny_sam.prompt_encoder.forward


def test_one_embedding_answers_many_prompts(tiny_sam, calls) -> None:
    session = SamSession(tiny_sam)
    session.set_image(picture(0))
    for x in range(5, 45, 8):
        session.predict(points=[(x, 20)])
    session.predict(box=[2, 3, 30, 20], multimask=False)
    session.predict_boxes([[2, 3, 30, 20], [10, 10, 40, 35]])
    assert len(calls["encoder"]) == 1 and session.embeddings == 1
    assert calls["encoder"][0] == (1, 3, 64, 64)  # padded to the model's square input
    session.set_image(picture(1))
    session.predict(points=[(10, 10)])
    assert len(calls["encoder"]) == 2 and session.embeddings == 2


def test_prompts_reach_the_encoder_in_the_models_frame(tiny_sam, calls) -> None:
    session = SamSession(tiny_sam)
    session.set_image(picture(0))
    first = session.predict(points=[(12, 30), (40, 8)], labels=[1, 0], box=[4, 6, 36, 30])
    coords, labels = calls["prompts"][-1]["points"]
    torch.testing.assert_close(coords[0], torch.tensor([[12 * SX, 30 * SY], [40 * SX, 8 * SY]]))
    assert labels[0].tolist() == [1, 0]  # negative clicks stay 0 (not -1, which is padding)
    torch.testing.assert_close(calls["prompts"][-1]["boxes"][0], torch.tensor([[4 * SX, 6 * SY, 36 * SX, 30 * SY]]))
    assert calls["prompts"][-1]["masks"] is None
    session.predict(mask_logits=first.logits[first.best], multimask=False)
    passed = calls["prompts"][-1]["masks"]
    assert passed.shape == (1, 1, 32, 32)
    torch.testing.assert_close(passed[0, 0], torch.from_numpy(first.logits[first.best]))


def test_shapes_multimask_and_predicted_iou(tiny_sam) -> None:
    session = SamSession(tiny_sam)
    session.set_image(picture(2))
    three = session.predict(points=[(20, 12)])
    assert three.masks.shape == (3, H, W) and three.masks.dtype == bool
    assert three.scores.shape == (3,) and three.logits.shape == (3, 32, 32)
    assert three.best == int(np.argmax(three.scores))
    one = session.predict(points=[(20, 12)], multimask=False)
    assert one.masks.shape == (1, H, W) and one.scores.shape == (1,)


def test_masks_are_the_decoders_logits_above_zero(tiny_sam) -> None:
    """Reference: the prompt encoder, decoder and upsampling called by hand on the same embedding."""
    session = SamSession(tiny_sam)
    image = picture(3)
    session.set_image(image)
    got = session.predict(points=[(30, 20)], multimask=True)
    resized = np.array(Image.fromarray(image).resize((64, 53), Image.BILINEAR))  # long side to 64, as SAM's paper
    x = torch.from_numpy(resized).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        emb = tiny_sam.image_encoder(tiny_sam.preprocess(x))
        sparse, dense = tiny_sam.prompt_encoder(points=(torch.tensor([[[30 * SX, 20 * SY]]]), torch.tensor([[1]])),
                                                boxes=None, masks=None)
        low, iou = tiny_sam.mask_decoder(image_embeddings=emb, image_pe=tiny_sam.prompt_encoder.get_dense_pe(),
                                         sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                         multimask_output=True)
        up = torch.nn.functional.interpolate(low, (64, 64), mode="bilinear", align_corners=False)[..., :53, :64]
        up = torch.nn.functional.interpolate(up, (H, W), mode="bilinear", align_corners=False)
    torch.testing.assert_close(torch.from_numpy(got.scores), iou[0], atol=1e-4, rtol=1e-4)
    agree = (torch.from_numpy(got.masks) == (up[0] > 0)).float().mean()
    assert agree > 0.99  # the same pixels but where a logit is within rounding of 0


def test_batched_boxes_equal_one_box_at_a_time(tiny_sam, monkeypatch) -> None:
    monkeypatch.setattr(session_module, "BOX_BATCH", 2)  # 5 boxes: batches of 2, 2, 1
    session = SamSession(tiny_sam)
    session.set_image(picture(4))
    boxes = [[2, 3, 30, 20], [10, 10, 40, 35], [0, 0, 48, 40], [20, 5, 25, 39], [30, 30, 47, 39]]
    masks, scores = session.predict_boxes(boxes)
    assert masks.shape == (5, H, W) and scores.shape == (5,)
    for k, box in enumerate(boxes):
        one = session.predict(box=box, multimask=False)
        assert (one.masks[0] != masks[k]).mean() < 0.01
        assert abs(float(one.scores[0]) - float(scores[k])) < 1e-4
    assert session.predict_boxes(np.zeros((0, 4)))[0].shape == (0, H, W)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({}, "needs a prompt"),
    ({"points": [(60, 10)]}, r"point \(60.0, 10.0\) is outside the 48x40 image"),
    ({"points": [(1, 1), (2, 2)], "labels": [1]}, "one 1 .* or 0 .* per point"),
    ({"points": [(1, 1)], "labels": [2]}, "one 1 .* or 0 .* per point"),
    ({"labels": [1]}, "labels were given without points"),
    ({"box": [30, 3, 2, 20]}, "empty or reversed"),
    ({"box": [50, 45, 60, 50]}, "outside the 48x40 image"),
    ({"box": [1, 2, 3]}, "4 finite numbers"),
    ({"mask_logits": np.zeros((16, 16))}, r"shape \(32, 32\)"),
])
def test_bad_prompts_say_what_is_wrong(tiny_sam, kwargs: dict, words: str) -> None:
    session = SamSession(tiny_sam)
    with pytest.raises(ConfigError, match="set_image"):
        session.predict(points=[(1, 1)])
    session.set_image(picture(0))
    with pytest.raises(ConfigError, match=words):
        session.predict(**kwargs)


def test_images_are_made_rgb_uint8() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = rgb_uint8(gray)
    assert out.shape == (3, 4, 3) and (out[..., 0] == gray).all() and (out[..., 2] == gray).all()
    floats = rgb_uint8(np.full((2, 2, 3), 0.5))
    assert floats.dtype == np.uint8 and (floats == 128).all()
    assert rgb_uint8(np.zeros((2, 2, 4), np.uint8)).shape == (2, 2, 3)
