"""Segment Anything in seglab: prompted and automatic masks, dataset bootstrapping, refinement of model masks.

The model code is upstream's ``segment-anything`` (the optional extra ``pip install 'seglab[sam]'``); the
weights come from a local file the user downloaded (``load_sam(path, "vit_b")``), never from the network.
Importing this package does not import ``segment_anything``: a missing extra is reported when a function
needs it (:class:`SamNotInstalled`, exit code 2 in the CLI, with the install command).

- :mod:`~seglab.sam.model`: ``load_sam``, the model types and their files, clear errors for wrong files.
- :mod:`~seglab.sam.session`: ``SamSession``, one image embedding answering many prompts.
- :mod:`~seglab.sam.auto`: ``generate_masks`` with upstream's defaults as ``AutoMaskOptions``.
- :mod:`~seglab.sam.prompts`: CSV / JSON prompt files. :mod:`~seglab.sam.formats`: seglab's file formats.
- :mod:`~seglab.sam.sources`, :mod:`~seglab.sam.annotate`: ``seglab annotate``.
- :mod:`~seglab.sam.refine`, :mod:`~seglab.sam.evaluate`: ``--refine sam`` and its before / after scores.
"""

from __future__ import annotations

from seglab.sam.annotate import AnnotateResult, annotate
from seglab.sam.auto import AutoMaskOptions, AutoMasks, generate_masks
from seglab.sam.evaluate import evaluate_refinement
from seglab.sam.formats import CocoDocument, Objects, label_map, save_review, write_instances, write_label_map
from seglab.sam.model import (
    INSTALL_HINT,
    SAM_TYPES,
    SamNotInstalled,
    SamType,
    load_sam,
    register_sam_type,
    require_segment_anything,
    unregister_sam_type,
)
from seglab.sam.predict import SamPredictResult, predict_auto, predict_prompts
from seglab.sam.prompts import ObjectPrompt, read_prompts
from seglab.sam.refine import RefineOptions, SamRefiner, refine_instances, refine_semantic
from seglab.sam.session import PromptResult, SamSession
from seglab.sam.sources import AutoSource, ModelSource, PromptSource
from seglab.sam.tiny import build_tiny_sam, tiny_sam_type

__all__ = ["INSTALL_HINT", "SAM_TYPES", "AnnotateResult", "AutoMaskOptions", "AutoMasks", "AutoSource",
           "CocoDocument", "ModelSource", "ObjectPrompt", "Objects", "PromptResult", "PromptSource", "RefineOptions",
           "SamNotInstalled", "SamPredictResult", "SamRefiner", "SamSession", "SamType", "annotate", "build_tiny_sam",
           "evaluate_refinement", "generate_masks", "label_map", "load_sam", "predict_auto", "predict_prompts",
           "read_prompts", "refine_instances", "refine_semantic", "register_sam_type", "require_segment_anything",
           "save_review", "tiny_sam_type", "unregister_sam_type", "write_instances", "write_label_map"]
