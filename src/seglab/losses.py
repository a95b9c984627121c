"""Segmentation losses built from a spec string such as ``"ce+dice"`` or ``"0.5*ce+1.0*dice"``.

Spec grammar: terms joined by ``+``, each ``[weight*]name`` (weight a non-negative float, default 1).

Multi-class terms take logits ``(N, C, H, W)`` and integer targets ``(N, H, W)`` in ``[0, C)``:

- ``ce``: cross-entropy.
- ``wce``: cross-entropy with per-class weights (``class_weights`` is required; the trainer computes it with
  ``seglab.data.semantic.stats.class_weights``).
- ``dice`` / ``dice_fg``: soft Dice on softmax probabilities, averaged over all classes / over classes
  ``1..C-1`` (background 0 excluded). ``smooth`` keeps empty classes finite.
- ``focal``: multi-class focal loss (Lin et al., 2017), ``focal_alpha`` a float or one value per class,
  ``focal_gamma`` the focusing exponent.
- ``lovasz``: Lovasz-softmax (Berman et al., 2018), averaged over the classes present in the target.
- ``tversky``: Tversky loss (Salehi et al., 2017), ``tversky_alpha`` weighs false positives,
  ``tversky_beta`` false negatives (0.5/0.5 is Dice).

Binary terms take one-channel logits ``(N, 1, H, W)`` and targets in ``{0, 1}``: ``bce``, ``binary_dice``,
``binary_focal`` (torchvision's ``sigmoid_focal_loss`` convention). Binary and multi-class terms cannot be
mixed in one spec.

Every term skips pixels equal to ``ignore_index`` (also in Dice's sums), computes in float32 even under
autocast, and returns 0 with zero gradients when every pixel is ignored.

Each term is a pure function of tensors and plain parameters, callable alone (``cross_entropy``,
``dice_loss``, ``tversky_loss``, ``focal_loss``, ``lovasz_softmax``, ``binary_cross_entropy``,
``binary_dice_loss``, ``binary_focal_loss``), e.g. ``dice_loss(logits, target, target != 255, smooth=1.0)``;
they take a boolean ``valid`` mask instead of ``ignore_index``. :class:`SegLoss` checks the inputs, computes
the mask once, casts to float32 outside autocast and passes each term its fields.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seglab.errors import ConfigError, SeglabError

BINARY = ("bce", "binary_dice", "binary_focal")
MULTICLASS = ("ce", "wce", "dice", "dice_fg", "focal", "lovasz", "tversky")
_TINY = torch.finfo(torch.float32).tiny


def _valid_mean(values: Tensor, valid: Tensor) -> Tensor:
    """Mean over valid pixels; 0 (with zero gradient) when nothing is valid, where a plain mean gives NaN."""
    return (values * valid).sum() / valid.sum().clamp_min(1)


def _one_hot(target: Tensor, valid: Tensor, num_classes: int) -> Tensor:
    """(N, H, W) -> float (N, C, H, W); ignored pixels are all zeros."""
    safe = torch.where(valid, target, 0)
    return F.one_hot(safe, num_classes).permute(0, 3, 1, 2).float() * valid.unsqueeze(1)


def cross_entropy(logits: Tensor, target: Tensor, valid: Tensor, weight: Tensor | None = None) -> Tensor:
    """Cross-entropy averaged like torch's ``"mean"`` (over the valid pixels' class weights), 0 when none is valid.

    Args:
        logits: (N, C, H, W) float.
        target: (N, H, W) int64 class indices; entries where ``valid`` is False may hold anything.
        valid: (N, H, W) bool, the pixels that count.
        weight: optional (C,) per-class weights (the ``wce`` term).
    """
    if weight is not None:
        weight = weight.to(logits.device)
    total = F.cross_entropy(logits, torch.where(valid, target, -100), weight=weight, reduction="sum")
    # Same normaliser as torch's "mean" (sum of the target pixels' weights), but 0 instead of NaN when empty.
    denom = valid.sum() if weight is None else (weight[torch.where(valid, target, 0)] * valid).sum()
    return total / denom.clamp_min(_TINY)


def _soft_stats(logits: Tensor, target: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class soft true positives, predicted mass and target mass over valid pixels, each (C,)."""
    probs = logits.softmax(dim=1) * valid.unsqueeze(1)
    onehot = _one_hot(target, valid, logits.shape[1])
    dims = (0, 2, 3)
    return (probs * onehot).sum(dims), probs.sum(dims), onehot.sum(dims)


def dice_loss(logits: Tensor, target: Tensor, valid: Tensor, smooth: float = 1.0,
              exclude_background: bool = False) -> Tensor:
    """1 - soft Dice of the softmax, per class over the whole batch, then averaged over classes.

    Shapes as :func:`cross_entropy`. ``smooth`` keeps classes absent from the batch finite;
    ``exclude_background`` averages over classes ``1..C-1`` only (the ``dice_fg`` term).
    """
    tp, pred_mass, true_mass = _soft_stats(logits, target, valid)
    per_class = (2 * tp + smooth) / (pred_mass + true_mass + smooth).clamp_min(_TINY)
    return 1 - (per_class[1:] if exclude_background else per_class).mean()


def tversky_loss(logits: Tensor, target: Tensor, valid: Tensor, alpha: float = 0.3, beta: float = 0.7,
                 smooth: float = 1.0) -> Tensor:
    """Tversky loss (Salehi et al., 2017): Dice with false positives weighed ``alpha``, false negatives ``beta``.

    Shapes as :func:`cross_entropy`; ``alpha = beta = 0.5`` gives :func:`dice_loss`.
    """
    tp, pred_mass, true_mass = _soft_stats(logits, target, valid)
    fp, fn = pred_mass - tp, true_mass - tp
    denom = tp + alpha * fp + beta * fn + smooth
    return 1 - ((tp + smooth) / denom.clamp_min(_TINY)).mean()


def focal_loss(logits: Tensor, target: Tensor, valid: Tensor, alpha: float | Tensor = 0.25,
               gamma: float = 2.0) -> Tensor:
    """Multi-class focal loss (Lin et al., 2017): ``-alpha_t (1 - p_t)^gamma log p_t``, mean over valid pixels.

    Shapes as :func:`cross_entropy`; ``alpha`` is a float or a (C,) tensor of per-class values.
    """
    safe = torch.where(valid, target, 0)
    logp_t = logits.log_softmax(dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
    alpha = torch.as_tensor(alpha, dtype=torch.float32, device=logits.device)
    alpha_t = alpha[safe] if alpha.numel() > 1 else alpha
    values = -alpha_t * (1 - logp_t.exp()).pow(gamma) * logp_t
    return _valid_mean(values, valid)


def lovasz_softmax(logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Lovasz-softmax (Berman et al., 2018), a convex surrogate of 1 - IoU, averaged over classes present.

    Shapes as :func:`cross_entropy`.
    """
    probs = logits.softmax(dim=1).permute(0, 2, 3, 1)[valid]  # (P, C): valid pixels only
    fg = F.one_hot(target[valid], logits.shape[1]).float()
    present = fg.sum(0) > 0
    if not bool(present.any()):
        return logits.sum() * 0
    errors, order = (fg - probs).abs().sort(dim=0, descending=True)
    fg_sorted = fg.gather(0, order)
    # Gradient of the Lovasz extension of the Jaccard loss: the jump in 1 - IoU as each pixel
    # (in decreasing order of error) is switched from "correct" to "wrong".
    gts = fg_sorted.sum(0)
    inter = gts - fg_sorted.cumsum(0)
    union = gts + (1 - fg_sorted).cumsum(0)
    jaccard = 1 - inter / union
    jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    per_class = (errors * jaccard).sum(0)
    return per_class[present].mean()


def _binary_parts(logits: Tensor, target: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    return logits[:, 0], torch.where(valid, target, 0).float()


def binary_cross_entropy(logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Binary cross-entropy on one-channel logits (N, 1, H, W), targets (N, H, W) in {0, 1}, valid (N, H, W)."""
    logit, y = _binary_parts(logits, target, valid)
    return _valid_mean(F.binary_cross_entropy_with_logits(logit, y, reduction="none"), valid)


def binary_dice_loss(logits: Tensor, target: Tensor, valid: Tensor, smooth: float = 1.0) -> Tensor:
    """1 - soft Dice of the sigmoid over the batch; shapes as :func:`binary_cross_entropy`."""
    logit, y = _binary_parts(logits, target, valid)
    p = logit.sigmoid() * valid
    y = y * valid
    return 1 - (2 * (p * y).sum() + smooth) / (p.sum() + y.sum() + smooth).clamp_min(_TINY)


def binary_focal_loss(logits: Tensor, target: Tensor, valid: Tensor, alpha: float = 0.25,
                      gamma: float = 2.0) -> Tensor:
    """Sigmoid focal loss in torchvision's ``sigmoid_focal_loss`` convention, mean over valid pixels.

    Shapes as :func:`binary_cross_entropy`; ``alpha`` weighs the positives, a negative ``alpha`` turns the
    class balancing off.
    """
    logit, y = _binary_parts(logits, target, valid)
    p = logit.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logit, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    values = ce * (1 - p_t).pow(gamma)
    if alpha >= 0:
        values = (alpha * y + (1 - alpha) * (1 - y)) * values
    return _valid_mean(values, valid)


_TERMS: dict[str, Callable[..., Tensor]] = {
    "ce": cross_entropy, "wce": cross_entropy, "dice": dice_loss, "dice_fg": dice_loss, "focal": focal_loss,
    "lovasz": lovasz_softmax, "tversky": tversky_loss, "bce": binary_cross_entropy,
    "binary_dice": binary_dice_loss, "binary_focal": binary_focal_loss,
}


class SegLoss(nn.Module):
    """A weighted sum of loss terms; ``last_components`` holds each weighted term of the last call."""

    def __init__(self, terms: list[tuple[float, str]], num_classes: int, class_weights: Tensor | None,
                 ignore_index: int, smooth: float, focal_alpha: Tensor, focal_gamma: float,
                 tversky_alpha: float, tversky_beta: float) -> None:
        super().__init__()
        self.terms = terms
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.smooth, self.focal_gamma = smooth, focal_gamma
        self.tversky_alpha, self.tversky_beta = tversky_alpha, tversky_beta
        self.binary = all(name in BINARY for _, name in terms)
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.register_buffer("focal_alpha", focal_alpha, persistent=False)
        self.binary_focal_alpha = float(focal_alpha.reshape(-1)[0])
        self.last_components: dict[str, Tensor] = {}

    def _params(self, name: str) -> dict[str, object]:
        """The plain parameters the term ``name`` takes from this module's fields."""
        if name == "wce":
            return {"weight": self.class_weights}
        if name in ("dice", "dice_fg", "binary_dice"):
            return {"smooth": self.smooth} | ({"exclude_background": True} if name == "dice_fg" else {})
        if name == "tversky":
            return {"alpha": self.tversky_alpha, "beta": self.tversky_beta, "smooth": self.smooth}
        if name == "focal":
            return {"alpha": self.focal_alpha, "gamma": self.focal_gamma}
        if name == "binary_focal":
            return {"alpha": self.binary_focal_alpha, "gamma": self.focal_gamma}
        return {}

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of ``logits`` (N, C, H, W) (C = 1 for binary terms) against ``target`` (N, H, W) ints."""
        self._check(logits, target)
        target = target.long()
        valid = target != self.ignore_index
        with torch.autocast(device_type=logits.device.type, enabled=False):
            x = logits.float()
            total = x.new_zeros(())
            components: dict[str, Tensor] = {}
            for weight, name in self.terms:
                value = weight * _TERMS[name](x, target, valid, **self._params(name))
                components[f"loss_{name}"] = value.detach()
                total = total + value
        self.last_components = components
        return total

    def _check(self, logits: Tensor, target: Tensor) -> None:
        channels = 1 if self.binary else self.num_classes
        expected = f"logits (N, {channels}, H, W) and target (N, H, W)"
        if (logits.ndim != 4 or target.ndim != 3 or logits.shape[1] != channels
                or logits.shape[0] != target.shape[0] or logits.shape[2:] != target.shape[1:]):
            raise SeglabError(f"loss: expected {expected}, got logits {tuple(logits.shape)} and target "
                              f"{tuple(target.shape)}; check the model's num_classes and the label size")
        if target.is_floating_point() or target.is_complex():
            raise SeglabError(f"loss: target must hold integer class indices, got dtype {target.dtype}; "
                              "convert it with target.long()")
        high = 2 if self.binary else self.num_classes
        bad = ((target < 0) | (target >= high)) & (target != self.ignore_index)
        if bool(bad.any()):
            found = torch.unique(target[bad]).tolist()
            shown = ", ".join(map(str, found[:10])) + (", ..." if len(found) > 10 else "")
            raise SeglabError(f"loss: target holds values {shown} outside [0, {high}) that are not "
                              f"ignore_index={self.ignore_index}; fix the labels (seglab data check) or "
                              "set num_classes / ignore_index to match them")


def _parse_spec(spec: str) -> list[tuple[float, str]]:
    """``"0.5*ce+dice"`` -> ``[(0.5, "ce"), (1.0, "dice")]``, with errors that point at the bad term."""
    terms: list[tuple[float, str]] = []
    for raw in spec.split("+"):
        term = raw.strip().lower()
        weight_text, _, name = term.rpartition("*")
        name = name.strip()
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            raise ConfigError(f"loss spec {spec!r}: weight {weight_text.strip()!r} in term {term!r} is not a "
                              "number; write terms as [weight*]name, e.g. '0.5*ce+dice'") from None
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"loss spec {spec!r}: weight {weight} in term {term!r} must be a finite "
                              "number >= 0")
        if name not in _TERMS:
            close = difflib.get_close_matches(name, list(_TERMS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"loss spec {spec!r}: unknown loss {name!r}{hint}; valid names: "
                              f"{', '.join(_TERMS)}")
        if any(name == other for _, other in terms):
            raise ConfigError(f"loss spec {spec!r}: {name!r} appears twice; give it one weight instead")
        terms.append((weight, name))
    return terms


def _per_class(values: Sequence[float] | Tensor | float, num_classes: int, what: str) -> Tensor:
    out = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
    allowed = (num_classes,) if what == "class_weights" else (1, num_classes)
    if out.numel() not in allowed:
        raise ConfigError(f"{what}: expected {num_classes} values (one per class), got {out.numel()}")
    if not bool(torch.isfinite(out).all()):
        raise ConfigError(f"{what}: values must be finite, got {out.tolist()}")
    return out


def build_loss(spec: str, num_classes: int, class_weights: Sequence[float] | Tensor | None = None,
               ignore_index: int = 255, *, smooth: float = 1.0,
               focal_alpha: float | Sequence[float] = 0.25, focal_gamma: float = 2.0,
               tversky_alpha: float = 0.3, tversky_beta: float = 0.7) -> SegLoss:
    """Build the loss module a spec string names (grammar and names in the module docstring).

    Args:
        spec: e.g. ``"ce"``, ``"ce+dice"``, ``"0.5*ce+1.0*dice_fg"``.
        num_classes: number of model output classes C (ignored by binary-only specs, which use 2).
        class_weights: one weight per class; required by ``wce``, unused otherwise.
        ignore_index: target value whose pixels contribute nothing.
        smooth: additive smoothing of Dice/Tversky; keeps classes absent from a batch finite.
        focal_alpha: focal class balance, a float or one value per class (binary: weight of the positives).
        focal_gamma: focal focusing exponent (0 turns focal into alpha-weighted cross-entropy).
        tversky_alpha: Tversky weight of false positives.
        tversky_beta: Tversky weight of false negatives.

    Returns:
        A :class:`SegLoss`; ``loss(logits, target)`` gives a scalar and fills ``loss.last_components``.
    """
    terms = _parse_spec(spec)
    names = {name for _, name in terms}
    if names & set(BINARY) and names & set(MULTICLASS):
        raise ConfigError(f"loss spec {spec!r}: binary terms ({', '.join(BINARY)}) take one-channel "
                          "logits and cannot be mixed with multi-class terms; use e.g. 'bce+binary_dice' or "
                          "'ce+dice'")
    if not names <= set(BINARY) and num_classes < 2:
        raise ConfigError(f"loss spec {spec!r}: multi-class losses need num_classes >= 2, got {num_classes}; "
                          "for one-channel binary models use bce / binary_dice / binary_focal")
    if "wce" in names and class_weights is None:
        raise ConfigError(f"loss spec {spec!r}: 'wce' needs class_weights (one per class); pass them, e.g. "
                          "from seglab.data.semantic.stats.class_weights (the trainer does), or use 'ce'")
    weights = None if class_weights is None else _per_class(class_weights, num_classes, "class_weights")
    alpha = _per_class(focal_alpha, num_classes, "focal_alpha")
    return SegLoss(terms, num_classes, weights, ignore_index, smooth, alpha, focal_gamma,
                   tversky_alpha, tversky_beta)
