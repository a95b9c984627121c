"""The review a training run ends with: ``review/`` of ``best.pt`` on the val split (``seglab review``).

An output hook (rank 0), in its own module because it calls the use side (``seglab.review``) rather than
drawing the run's own pictures as ``reporting.py`` does.
"""

from __future__ import annotations

from pathlib import Path

from seglab.engine.hooks import Hook, Loop
from seglab.engine.reporting import log

MAX_IMAGES = 500  # larger val splits: the command is printed instead (a review reads every image once)


class ReviewHook(Hook):
    """``review/``: the worst-first error browser of ``best.pt`` on the val split (``seglab review``), written
    when the run ends if the split has at most ``max_images`` images (larger ones: the command to run is
    printed instead). A review that cannot be written is reported and leaves the run as it is."""

    def __init__(self, out: Path, data: str | Path, split: str, num_images: int,
                 max_images: int = MAX_IMAGES) -> None:
        self.out, self.data, self.split = Path(out), Path(data), split
        self.num_images, self.max_images = num_images, max_images

    def after_train(self, trainer: Loop) -> None:
        from seglab.errors import SeglabError

        best = self.out / "best.pt"
        command = f"seglab review {self.out} --data {self.data} --split {self.split}"
        if not best.is_file():
            return
        if self.num_images > self.max_images:
            log(f"review: not written ({self.num_images} val images > {self.max_images}); run `{command}`")
            return
        from seglab.checkpoint import load_checkpoint
        from seglab.review import review_checkpoint

        try:
            model, info = load_checkpoint(best, device=trainer.device)
            result = review_checkpoint(model, info, self.data, self.split, self.out / "review", device=trainer.device)
        except SeglabError as e:
            log(f"review: not written ({e}); run `{command}` after fixing it")
            return
        worst = ", ".join(stem for stem, _ in result.worst[:3])
        log(f"Review of best.pt on {self.split} (worst first: {worst}, ...): open {result.page}")
