"""Importing torchvision where its wheel does not match the installed torch build.

On machines with a CPU-only torch and PyPI's CUDA torchvision wheel, `import torchvision` fails with
"operator torchvision::nms does not exist" (its C++ ops are not loaded), and compressai imports
torchvision at import time. Declaring the ops' schemas first lets the import succeed; `nms` below then
falls back to a plain PyTorch implementation, since torchvision.ops.nms has no kernel there. On a normal install (matching torch and
torchvision, or conda) the first import succeeds and nothing here changes anything.
"""
from __future__ import annotations

import importlib

import torch

_library = None  # keeps the op definition alive for the life of the process


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """torchvision.ops.nms where torchvision's compiled ops exist, else the same algorithm in PyTorch."""
    torchvision = import_torchvision()
    if torchvision.extension._has_ops():
        return torchvision.ops.nms(boxes, scores, iou_threshold)
    return _nms_reference(boxes, scores, iou_threshold)


def _nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression, the semantics of torchvision.ops.nms (boxes as x1, y1, x2, y2)."""
    order = scores.argsort(descending=True)
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    keep = []
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    for index in order.tolist():
        if suppressed[index]:
            continue
        keep.append(index)
        width = (torch.minimum(x2[index], x2) - torch.maximum(x1[index], x1)).clamp(min=0)
        height = (torch.minimum(y2[index], y2) - torch.maximum(y1[index], y1)).clamp(min=0)
        intersection = width * height
        iou = intersection / (areas[index] + areas - intersection).clamp(min=1e-12)
        suppressed |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.long)


def import_torchvision():
    """Import torchvision, declaring its ops' schemas only when the wheel's own ops are missing."""
    global _library
    if "torchvision" in importlib.sys.modules:
        return importlib.sys.modules["torchvision"]
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as error:
        if "torchvision::nms" not in str(error):
            raise
    _library = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):  # torchvision registers fake kernels for both at import time
        _library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    for name in [module for module in list(importlib.sys.modules) if module.startswith("torchvision")]:
        del importlib.sys.modules[name]  # drop the half-imported package before retrying
    return importlib.import_module("torchvision")
