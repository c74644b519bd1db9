"""Training a learned codec for machines: SA-ICM's edge objective, a detector-feature objective, or plain MSE.

SA-ICM (Shindo, Yamada, Watanabe, Watanabe, "Image Coding for Machines with Edge Information Learning
Using Segment Anything", ICIP 2024, arXiv 2403.04173) trains TCM so that only object edges need to
survive decoding. The loss, as the paper states it, is

    L = R(y) + lambda * mse(x (.) sam_x(alpha), x_hat (.) sam_x(alpha))

with (.) the element-wise product and sam_x(alpha) a binary edge image: the Segment Anything masks of
x whose confidence reaches alpha, turned into edges with the Canny detector. The authors publish
lambda = 0.05 with alpha = 0.78 and 0.93 (their param/param_details.txt).

What this package assumes where the paper text available here does not say it exactly:
- Scale: the rate and distortion terms follow the TCM training script SA-ICM builds on
  (objectives.py).
- alpha is SAM's automatic mask generator confidence threshold (`pred_iou_thresh`).
- Edges: the pixels of each mask that have a 4-neighbour outside it, united over masks (contours.py),
  optionally widened to a band. On binary masks this marks the same boundaries Canny finds, one pixel
  wide, without Canny's thresholds.
- Mask source: Segment Anything when the `segment_anything` package and a SAM checkpoint are given.
  Neither is obtainable offline here, so the default substitutes the COCO instance masks of the
  training images (pycocotools, crowd regions left out). COCO masks carry no confidence: alpha does
  not apply to them, and they cover annotated objects only, where SAM also segments background.

Modules: `data` (images, edges, validation split, crops), `objectives` (the losses), `loop` (steps,
validation, checkpoints, resume states), `cli` (`python -m icm_privacy.training`: a resumable run with
CSV logs). The shipped icm-* codecs are the stages of icm_recipe.py (docs/icm_training.md). A
checkpoint has the authors' layout ({"state_dict": ..., ...}), so the sa-icm codec loads it.
"""
