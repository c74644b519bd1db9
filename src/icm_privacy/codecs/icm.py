"""The project's own learned codecs: one small network trained here with three objectives, shipped in the repo.

`icm-edge` is trained with SA-ICM's objective (rate + lambda x distortion on object edges only), `icm-task`
with rate + lambda x distortion of YOLOv5n's features (a detection-driven ICM codec), and `icm-mse` with
plain rate + lambda x MSE, the control (docs/icm_training.md). The architecture is CompressAI's mean-scale hyperprior (mbt2018-mean) with
N=64, M=96 channels instead of the zoo's 128/192, so that a file stays under 8 MB and CPU training fits
a few hours. Quality = rate point: 0 has the lowest lambda (fewest bits); manifest.json lists the points
shipped.

The weights live in resources/weights/icm/training/, where they were trained; resources/weights/icm/
manifest.json gives each (codec, rate point) its file, sha256 and training settings; a file whose sha256 differs is refused before it is loaded.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from ..sources import sha256_of
from .base import CodecError, CodecUnavailable
from .learned import LearnedCodec

WEIGHTS_DIR = Path(__file__).resolve().parents[3] / "resources" / "weights" / "icm"
MANIFEST = "manifest.json"
CHANNELS = (64, 96)  # N, M


class IcmCodec(LearnedCodec):
    """A shipped icm-* model; option weights_dir (default resources/weights/icm) holds files and manifest."""

    objective: str
    padding_multiple = 64  # 4 strided stages in g_a, 2 more in h_a
    integer_qualities = True

    def __init__(self, weights_dir: str | Path = WEIGHTS_DIR, **options):
        self.weights_dir = Path(weights_dir)
        super().__init__(**options)
        if self.checkpoint is None and not self.random_init:  # the rate points the manifest ships
            rates = [int(rate) for rate in self.manifest]
            self.quality_range = (min(rates), max(rates))

    def architecture(self, quality: str):
        from compressai.models import MeanScaleHyperprior

        return MeanScaleHyperprior

    def random_model(self, quality: str):
        return self.architecture(quality)(*CHANNELS)

    @functools.cached_property
    def manifest(self) -> dict:
        return shipped_points(self.name, self.weights_dir)

    def check_official_weights(self) -> None:
        missing = [entry["file"] for entry in self.manifest.values() if not (self.weights_dir / entry["file"]).is_file()]
        if missing:
            raise CodecUnavailable(f"{self.name}: {', '.join(missing)} missing in {self.weights_dir}")

    def official_weights(self, quality: str) -> tuple[dict, str]:
        from .learned import read_state_dict

        if quality not in self.manifest:
            raise CodecError(f"{self.name}: no rate point {quality} in {self.weights_dir / MANIFEST} "
                             f"(has {', '.join(self.manifest)})")
        entry = self.manifest[quality]
        path = self.weights_dir / entry["file"]
        actual = sha256_of(path)
        if actual != entry["sha256"]:
            raise CodecError(f"{path}: sha256 {actual} differs from {entry['sha256']} in {MANIFEST}; the file is "
                             "damaged or not the shipped one: restore it from git or retrain (docs/icm_training.md)")
        return read_state_dict(path), str(path)


class IcmEdge(IcmCodec):
    name = "icm-edge"
    objective = "edge"
    description = "Mean-scale hyperprior (N=64, M=96) trained here with SA-ICM's edge objective; quality = rate point"


class IcmMse(IcmCodec):
    name = "icm-mse"
    objective = "mse"
    description = "The same network trained here with rate + MSE (icm-edge's control); quality = rate point"


class IcmTask(IcmCodec):
    name = "icm-task"
    objective = "task"
    description = "The same network fine-tuned from icm-mse on YOLOv5n's neck features; quality = rate point"


ICM_CODECS = (IcmEdge, IcmMse, IcmTask)


def shipped_points(name: str, weights_dir: str | Path) -> dict:
    """Rate point -> manifest entry (file, sha256, training record) of codec `name`."""
    path = Path(weights_dir) / MANIFEST
    try:
        return json.loads(path.read_text())["codecs"][name]
    except FileNotFoundError:
        raise CodecUnavailable(f"{name}: {path} does not exist (train with docs/icm_training.md)") from None
    except (KeyError, ValueError) as error:
        raise CodecError(f"{path}: no valid entry for {name} ({error!r})") from error


def weights_source(name: str, weights_dir: str | Path = WEIGHTS_DIR) -> str:
    """The sha256 of each rate point codec `name` ships ("" without a manifest): the workflow passes it
    to the codec's jobs, so that new weights re-run them."""
    try:
        points = shipped_points(name, weights_dir)
    except CodecUnavailable:
        return ""
    return " ".join(f"{rate}:{entry['sha256']}" for rate, entry in sorted(points.items()))
