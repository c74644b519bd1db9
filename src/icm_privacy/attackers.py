"""Who tries to re-identify a decoded face: the attackers whose rows (`attacker` column) fill faces.csv,
Table 1, privacy.csv and the frontier.

An attacker holds the original faces (the gallery) and gets a codec's decoded faces. What sets attackers
apart is what they learnt beforehand and how they turn a decoded face into the probe embedding they match:

| attacker | trains on | probe |
|---|---|---|
| `standard` | nothing | the decoded crop's embedding |
| `cross-resolution` | nothing | the crop of the decode before upsampling, against originals shrunk alike |
| `restored` | coco-train2017 images coded at the entry's points (restoration.py) | the embedding of the restored crop |
| `adapted` | coco-train2017 faces coded at the point (embedding_adapter.py) | the decoded embedding, mapped by the adapter |

Every attacker's probes are then scored by the same metrics (privacy.py), each with both threshold
policies of verification.py: fixed (calibrated on originals) and codec-aware (on decoded probes). An
attacker that learns is fitted by its own rules on the attacker training set; here it is only applied,
so a new attacker is one class below, plus its training rule if it learns.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from .tables import CROSS_RESOLUTION, STANDARD_ATTACKER

RESTORED = "restored"
ADAPTED = "adapted"
ADAPTIVE_ATTACKERS = (RESTORED, ADAPTED)  # the ones `privacy.attackers` switches on


class Attacker:
    """The naive attacker: a face model as shipped, on the crop of the decoded image."""

    name: ClassVar[str] = STANDARD_ATTACKER

    def gallery_version(self, point: str) -> str:
        """The image version whose face embeddings the probes are matched against."""
        return "original"

    def probe_version(self, point: str) -> str:
        """The image version whose face embeddings `probes` turns into probes."""
        return point

    def probes(self, point: str, model: str, embeddings: np.ndarray) -> np.ndarray:
        """(faces, d) probe embeddings from that version's (faces, d) embeddings by `model`."""
        return embeddings


class CrossResolutionAttacker(Attacker):
    """Matches a downscale point's decode before upsampling against the originals shrunk the same way."""

    name = CROSS_RESOLUTION

    def gallery_version(self, point: str) -> str:
        return f"{point}/reduced-original"

    def probe_version(self, point: str) -> str:
        return f"{point}/reduced"


class RestorationAttacker(Attacker):
    """Embeds the decoded face after a restoration network trained on the codec's output has restored it
    (the restored crops are made by the workflow's restore_faces jobs)."""

    name = RESTORED

    def probe_version(self, point: str) -> str:
        return f"{point}/restored"


class AdaptedAttacker(Attacker):
    """Maps each decoded embedding with the point's fitted EmbeddingAdapter of that face model."""

    name = ADAPTED

    def __init__(self, adapters: Mapping[str, Mapping[str, object]]):
        self.adapters = adapters  # point -> face model -> fitted EmbeddingAdapter

    def probes(self, point: str, model: str, embeddings: np.ndarray) -> np.ndarray:
        return self.adapters[point][model].transform(embeddings)


def attackers(adapter_files: Mapping[str, str] | None = None) -> dict[str, Attacker]:
    """Every attacker by name; the adapted one reads its fitted adapters (point -> file) when it is used."""
    from .embedding_adapter import load_adapters

    adapters = {point: load_adapters(path) for point, path in (adapter_files or {}).items()}
    return {attacker.name: attacker for attacker in (Attacker(), CrossResolutionAttacker(), RestorationAttacker(),
                                                      AdaptedAttacker(adapters))}


def probe_vectors(attacker: Attacker, point: str, model: str, vectors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """face id -> probe embedding, from face id -> embedding of the attacker's probe version."""
    face_ids = list(vectors)
    if not face_ids:
        return {}
    return dict(zip(face_ids, attacker.probes(point, model, np.stack([vectors[face] for face in face_ids]))))
