"""The restoration attacker's network: a small residual CNN trained to map a codec's decoded images back
to the originals, so that a face model sees what the attacker can recover of a face.

The network works like FFDNet (Zhang, Zuo and Zhang, 2018): the decoded image is split into four
half-resolution sub-images (pixel unshuffle), a plane holding the codec point's rank is appended (one
network serves every point of a codec entry and still knows which one it restores, as FFDNet knows the
noise level), a stack of 3x3 convolutions predicts the residual at half resolution, and pixel shuffle
puts it back. Working at half resolution quarters the cost per pixel and doubles the receptive field,
which the blur of the lowest rate points needs. The last convolution starts at zero, so training starts
from the decoded image itself.

`FaceRestorer` has scikit-learn's estimator shape: hyper-parameters in the constructor, `fit` on
training images (never an evaluated one: the workflow fits it on coco-train2017), learned state in
attributes ending in `_`. At least `face_share` of every batch are patches around the training images'
MTCNN faces, so that it learns faces, the rest anywhere in the images.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

LOSS_LOG_EVERY = 50  # steps per entry of the training history
LEAK = 0.1  # negative slope of the activations


class RestorationNetwork(nn.Module):
    """Residual CNN at half resolution, told which codec point it restores: the point's position among its
    entry's points in the configuration's order, scaled to [0, 1]."""

    def __init__(self, channels: int = 48, layers: int = 10):
        super().__init__()
        if layers < 2:
            raise ValueError(f"the restoration network needs at least 2 layers, got {layers}")
        # Leaky ReLUs: a plain ReLU layer died within a few hundred steps in trials (every unit at zero).
        stack = [nn.Conv2d(4 * 3 + 1, channels, 3, padding=1), nn.LeakyReLU(LEAK, inplace=True)]
        for _ in range(layers - 2):
            stack += [nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(LEAK, inplace=True)]
        for layer in stack[::2]:  # He initialisation: the stack keeps its activations' scale
            nn.init.kaiming_normal_(layer.weight, a=LEAK, nonlinearity="leaky_relu")
            nn.init.zeros_(layer.bias)
        last = nn.Conv2d(channels, 4 * 3, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*stack, last)
        self.layers = layers

    @property
    def receptive_radius(self) -> int:
        """Full-resolution pixels on each side that reach an output pixel: one per layer at half resolution
        is two here, plus the 2x2 cell of the unshuffle."""
        return 2 * self.layers + 1

    def forward(self, decoded: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
        """decoded: (B, 3, H, W) in [0, 1], H and W even; rank: (B,) in [0, 1]."""
        cells = nn.functional.pixel_unshuffle(decoded, 2)
        plane = rank.to(decoded.dtype)[:, None, None, None].expand(-1, 1, *cells.shape[2:])
        residual = nn.functional.pixel_shuffle(self.body(torch.cat([cells, plane], dim=1)), 2)
        return decoded + residual


@dataclass(frozen=True)
class TrainingImage:
    """One training image: the original, its decode at each codec point (quality text -> HxWx3 uint8),
    and its MTCNN face boxes (x0, y0, x1, y1)."""

    image_id: str
    original: np.ndarray
    decoded: Mapping[str, np.ndarray]
    faces: Sequence[tuple[int, int, int, int]]


def _to_tensor(batch: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float().div_(255.0)


def _to_uint8(tensor: torch.Tensor) -> np.ndarray:
    return tensor.clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class PatchSampler:
    """Random (original, decoded, point rank) patches of the training images: `face_share` of each batch
    centred on a face (jittered by up to a quarter patch; a face drawn uniformly among all faces), the
    rest at uniform positions; each patch at a codec point drawn uniformly, in one of its eight mirrorings
    and rotations by a multiple of 90 degrees (the training faces are a few hundred at most)."""

    def __init__(self, images: Sequence[TrainingImage], qualities: Sequence[str], patch: int, face_share: float):
        self.images, self.qualities, self.patch = list(images), list(qualities), patch
        self.faces = [(index, box) for index, image in enumerate(self.images) for box in image.faces]
        if not self.faces:
            raise ValueError("no MTCNN face in the training images: a restorer trained on them would not learn faces")
        small = [image.image_id for image in self.images if min(image.original.shape[:2]) < patch]
        if small:
            raise ValueError(f"training images smaller than the {patch}-px patch: {', '.join(small)}")
        self.face_share = face_share

    def _corner(self, rng: np.random.Generator, image: TrainingImage, centre: tuple[float, float] | None):
        height, width = image.original.shape[:2]
        if centre is None:
            return int(rng.integers(0, height - self.patch + 1)), int(rng.integers(0, width - self.patch + 1))
        jitter = rng.uniform(-self.patch / 4, self.patch / 4, size=2)
        top = int(np.clip(round(centre[1] + jitter[1] - self.patch / 2), 0, height - self.patch))
        left = int(np.clip(round(centre[0] + jitter[0] - self.patch / 2), 0, width - self.patch))
        return top, left

    def batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(originals, decoded) as (size, patch, patch, 3) uint8, and each patch's point rank (size,)."""
        originals = np.empty((size, self.patch, self.patch, 3), dtype=np.uint8)
        decoded = np.empty_like(originals)
        levels = rng.integers(0, len(self.qualities), size=size)
        on_faces = math.ceil(self.face_share * size)
        for slot in range(size):
            if slot < on_faces:
                index, (x0, y0, x1, y1) = self.faces[rng.integers(len(self.faces))]
                centre = ((x0 + x1) / 2, (y0 + y1) / 2)
            else:
                index, centre = int(rng.integers(len(self.images))), None
            image = self.images[index]
            top, left = self._corner(rng, image, centre)
            window = np.s_[top:top + self.patch, left:left + self.patch]
            flip_rows, flip_columns, transpose = rng.random(3) < 0.5
            for target, source in ((originals, image.original), (decoded, image.decoded[self.qualities[levels[slot]]])):
                patch = source[window][::-1 if flip_rows else 1, ::-1 if flip_columns else 1]
                target[slot] = patch.transpose(1, 0, 2) if transpose else patch
        return originals, decoded, point_ranks(levels, len(self.qualities))


def device_for(gpu: bool) -> str:
    """CUDA when the configuration asks for a GPU (`gpu: true`) and the job has one, else the CPU."""
    return "cuda" if gpu and torch.cuda.is_available() else "cpu"


def point_ranks(levels: np.ndarray, points: int) -> np.ndarray:
    """A point's index among its entry's points (in the configuration's order) as the network's plane value."""
    return np.asarray(levels, dtype=np.float32) / max(points - 1, 1)


class FaceRestorer:
    """Learns to undo one codec entry's coding, at all its points (see the module).

    Hyper-parameters: network width and depth, training steps, batch size, patch side (even), the share
    of each batch on faces, the learning rate (Adam, cosine decay to a tenth), seed, CPU threads and
    device. Learned state: `network_`, `qualities_` (the points it restores, in rank order),
    `history_` (step, mean loss), `cpu_seconds_` and `wall_seconds_` of training.
    """

    def __init__(self, channels: int = 48, layers: int = 10, steps: int = 3000, batch_size: int = 16, patch: int = 64,
                 face_share: float = 0.5, learning_rate: float = 1e-3, seed: int = 0, threads: int = 2,
                 device: str = "cpu"):
        self.channels, self.layers, self.steps, self.batch_size = channels, layers, steps, batch_size
        self.patch, self.face_share, self.learning_rate = patch, face_share, learning_rate
        self.seed, self.threads, self.device = seed, threads, device

    def fit(self, images: Sequence[TrainingImage], qualities: Sequence[str]) -> FaceRestorer:
        """Train on `images`, each decoded at every one of `qualities` (the entry's points, lowest rank first)."""
        if self.patch % 2 or not 0.5 <= self.face_share <= 1:
            raise ValueError(f"patch must be even and face_share in [0.5, 1], got {self.patch} and {self.face_share}")
        torch.set_num_threads(self.threads)
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        sampler = PatchSampler(images, qualities, self.patch, self.face_share)
        network = RestorationNetwork(self.channels, self.layers).to(self.device)
        optimiser = torch.optim.Adam(network.parameters(), lr=self.learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(self.steps, 1), self.learning_rate / 10)
        history, losses = [], []
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        for step in range(1, self.steps + 1):
            originals, decoded, ranks = sampler.batch(rng, self.batch_size)
            restored = network(_to_tensor(decoded, self.device), torch.from_numpy(ranks).to(self.device))
            loss = nn.functional.mse_loss(restored, _to_tensor(originals, self.device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
            if step % LOSS_LOG_EVERY == 0 or step == self.steps:
                history.append((step, float(np.mean(losses))))
                losses = []
        self.cpu_seconds_ = time.process_time() - started_cpu
        self.wall_seconds_ = time.perf_counter() - started_wall
        self.network_ = network.eval()
        self.qualities_ = list(qualities)
        self.history_ = history
        return self

    @property
    def parameters_(self) -> int:
        return sum(parameter.numel() for parameter in self.network_.parameters())

    def _rank(self, quality: str) -> torch.Tensor:
        if quality not in self.qualities_:
            raise ValueError(f"this restorer was trained for qualities {self.qualities_}, not {quality!r}")
        rank = point_ranks(np.array([self.qualities_.index(quality)]), len(self.qualities_))
        return torch.from_numpy(rank).to(self.device)

    @torch.no_grad()
    def restore(self, decoded: np.ndarray, quality: str) -> np.ndarray:
        """The whole HxWx3 uint8 decoded image, restored (odd sides are padded by edge replication and cut back)."""
        height, width = decoded.shape[:2]
        padded = np.pad(decoded, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        restored = self.network_(_to_tensor(padded[None], self.device), self._rank(quality))
        return _to_uint8(restored)[0, :height, :width]

    def restore_boxes(self, decoded: np.ndarray, quality: str,
                      boxes: Sequence[tuple[int, int, int, int]]) -> list[np.ndarray]:
        """Each box (x0, y0, x1, y1) of the restored image, computed from a window around it that holds the
        network's receptive field: the same pixels as `restore` on the whole image, at a fraction of the cost.
        Windows start on even coordinates, so the 2x2 cells are those of the whole image."""
        margin = self.network_.receptive_radius + 1
        height, width = decoded.shape[:2]
        crops = []
        for x0, y0, x1, y1 in boxes:
            left, top = max(x0 - margin, 0) // 2 * 2, max(y0 - margin, 0) // 2 * 2
            right, bottom = min(x1 + margin + (x1 + margin) % 2, width), min(y1 + margin + (y1 + margin) % 2, height)
            window = self.restore(decoded[top:bottom, left:right], quality)
            crops.append(np.ascontiguousarray(window[y0 - top:y1 - top, x0 - left:x1 - left]))
        return crops

    def save(self, path: str | Path) -> None:
        """Hyper-parameters, learned state and training record in one torch file (written atomically)."""
        from .files import atomic_path

        state = {"hyper_parameters": {name: getattr(self, name) for name in (
                     "channels", "layers", "steps", "batch_size", "patch", "face_share", "learning_rate", "seed")},
                 "network": self.network_.state_dict(), "qualities": self.qualities_, "history": self.history_,
                 "cpu_seconds": self.cpu_seconds_, "wall_seconds": self.wall_seconds_}
        with atomic_path(path) as temporary:
            torch.save(state, temporary)

    @classmethod
    def load(cls, path: str | Path, threads: int = 2, device: str = "cpu") -> FaceRestorer:
        try:
            state = torch.load(path, map_location=device, weights_only=True)
            restorer = cls(**state["hyper_parameters"], threads=threads, device=device)
            restorer.network_ = RestorationNetwork(restorer.channels, restorer.layers).to(device)
            restorer.network_.load_state_dict(state["network"])
        except (OSError, RuntimeError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: not a restorer saved by FaceRestorer.save ({error})") from error
        restorer.network_.eval()
        torch.set_num_threads(threads)
        restorer.qualities_, restorer.history_ = state["qualities"], state["history"]
        restorer.cpu_seconds_, restorer.wall_seconds_ = state["cpu_seconds"], state["wall_seconds"]
        return restorer
