"""The rate-distortion objectives a codec is trained with: loss = bpp + lambda x distortion.

- `edge` (SA-ICM, Shindo et al., ICIP 2024): distortion = 255^2 mean((x - x_hat)^2 * E), E the object
  edges (training/data.py). The mean runs over all pixels and channels, edge or not (that is what the
  mse of the two masked images is), as in the TCM training script SA-ICM builds on.
- `mse` (the control): distortion = 255^2 mean((x - x_hat)^2) over the whole image.
- `task` (feature-space ICM, as in Le et al., ICASSP 2021 and Fischer et al., TCSVT 2022): distortion =
  the mean squared difference of a frozen YOLOv5's neck features (the three maps its Detect head reads,
  strides 8, 16, 32) of x_hat and of x, averaged over the three levels; plus pixel_lmbda x 255^2 x the
  plain mse, a small pixel anchor that keeps colours where the detector does not look.
R is the bits of y and z from the model's likelihoods per pixel of the batch. Every term is returned,
so a run logs what the other objectives would optimise too.
"""
from __future__ import annotations

from pathlib import Path

import torch

OBJECTIVES = ("edge", "mse", "task")


class DetectorFeatures(torch.nn.Module):
    """A YOLOv5 checkpoint's neck features, frozen: eval mode (batch-norm statistics fixed), no gradients
    for its weights, so a loss on its features trains only what produced the image."""

    def __init__(self, weights: str | Path, device: str | torch.device = "cpu"):
        from ..detection import load_yolov5

        super().__init__()
        self.detector = load_yolov5(weights, device).requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)  # the detector stays in eval mode whatever its owner does

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.detector.neck_features(x)


def feature_mse(detector: DetectorFeatures, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean over the detector's feature levels of the mean squared difference between x_hat's and x's maps."""
    with torch.no_grad():
        targets = detector(x)
    levels = [torch.mean((decoded - target) ** 2) for decoded, target in zip(detector(x_hat), targets, strict=True)]
    return torch.stack(levels).mean()


def rate_distortion_loss(output: dict, x: torch.Tensor, edges: torch.Tensor, lmbda: float, objective: str = "edge",
                         detector: DetectorFeatures | None = None, pixel_lmbda: float = 0.0) -> dict:
    """The loss of `objective` and its terms: bpp, mse, edge_mse (and feature_mse for `task`)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r} is not one of {OBJECTIVES}")
    if (objective == "task") != (detector is not None):
        raise ValueError("the task objective, and only it, needs the detector whose features it compares")
    batch, _, height, width = x.shape
    bits = sum(-(likelihoods.log2().sum()) for likelihoods in output["likelihoods"].values())
    bpp = bits / (batch * height * width)
    squared = (output["x_hat"] - x) ** 2
    terms = {"bpp": bpp, "mse": squared.mean(), "edge_mse": (squared * edges).mean()}
    if objective == "edge":
        distortion = lmbda * 255**2 * terms["edge_mse"]
    elif objective == "mse":
        distortion = lmbda * 255**2 * terms["mse"]
    else:
        terms["feature_mse"] = feature_mse(detector, output["x_hat"], x)
        distortion = lmbda * terms["feature_mse"] + pixel_lmbda * 255**2 * terms["mse"]
    return {"loss": bpp + distortion, **terms}
