"""Learned image codecs: SA-ICM (TCM network) and CompressAI's zoo models, behind the Codec interface.

Every image is coded into one container file (format below); decoding reads only that file. bpp is
8 x file bytes / original pixels, the container header included (33-46 bytes, at most 0.0012 bpp on a
640x480 image). The likelihood estimate of the same model (forward pass, no entropy coder) is a
separate number, `LearnedCodec.estimated_bpp`, over the same original pixel count.

Images are scaled to [0, 1], zero-padded symmetrically to the model's size multiple (128 for TCM, 64
for the zoo models), as the TCM authors' and CompressAI's evaluation scripts do, and cropped back;
decoded values are clamped to [0, 1] and rounded to 8 bits.

Container (version 1), big-endian:

    magic "ICML" | version u8 | device kind u8 (0 cpu, 1 cuda)
    model id: u8 length + ASCII (the codec name)  | quality: u8 length + ASCII (e.g. "3", "0.05")
    original width u16, height u16 | latent height u16, width u16 (the `shape` decompress needs)
    string count u8, then per string: u32 length + bytes (entropy-coded streams, in model order)

The device kind is stored because CompressAI's entropy parameters are not bit-exact between CPU and
GPU: decoding a CUDA-made stream on the CPU (or the reverse) silently yields a garbage image, so it is
refused here with an error instead.

torch and compressai are imported inside the functions that need them, so that importing the codec
registry, and building a codec to validate a configuration, stay cheap.
"""
from __future__ import annotations

import collections
import functools
import glob
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import Codec, CodecError, CodecUnavailable

MAGIC = b"ICML"
VERSION = 1
DEVICE_KINDS = ("cpu", "cuda")
RANDOM_INIT_SEED = 0


@dataclass(frozen=True)
class Bitstream:
    """Everything a container file holds."""

    model: str
    quality: str
    device_kind: str
    width: int
    height: int
    latent_shape: tuple[int, int]
    strings: tuple[bytes, ...]


def _short_text(text: str, what: str) -> bytes:
    data = text.encode("ascii")
    if len(data) > 255:
        raise CodecError(f"{what} {text!r} is longer than 255 bytes")
    return struct.pack(">B", len(data)) + data


def write_bitstream(bitstream: Bitstream, path: str | Path) -> None:
    latent_height, latent_width = bitstream.latent_shape
    sizes = {"width": bitstream.width, "height": bitstream.height, "latent height": latent_height,
             "latent width": latent_width}
    for what, value in sizes.items():
        if not 0 < value < 2**16:
            raise CodecError(f"{what} {value} does not fit the container's 16-bit field")
    parts = [
        MAGIC,
        struct.pack(">BB", VERSION, DEVICE_KINDS.index(bitstream.device_kind)),
        _short_text(bitstream.model, "model id"),
        _short_text(bitstream.quality, "quality"),
        struct.pack(">HHHHB", *sizes.values(), len(bitstream.strings)),
    ]
    for string in bitstream.strings:
        parts += [struct.pack(">I", len(string)), string]
    Path(path).write_bytes(b"".join(parts))


def read_bitstream(path: str | Path) -> Bitstream:
    data = Path(path).read_bytes()
    position = 0

    def take(count: int) -> bytes:
        nonlocal position
        if position + count > len(data):
            raise CodecError(f"{path}: truncated container ({len(data)} bytes)")
        position += count
        return data[position - count : position]

    if take(4) != MAGIC:
        raise CodecError(f"{path}: not a learned-codec container (magic is not {MAGIC!r})")
    version, device_index = struct.unpack(">BB", take(2))
    if version != VERSION or device_index >= len(DEVICE_KINDS):
        raise CodecError(f"{path}: unsupported container version {version} / device kind {device_index}")
    model = take(take(1)[0]).decode("ascii")
    quality = take(take(1)[0]).decode("ascii")
    width, height, latent_height, latent_width, count = struct.unpack(">HHHHB", take(9))
    strings = tuple(take(struct.unpack(">I", take(4))[0]) for _ in range(count))
    if position != len(data):
        raise CodecError(f"{path}: {len(data) - position} unexpected bytes after the last string")
    latent_shape = (latent_height, latent_width)
    return Bitstream(model, quality, DEVICE_KINDS[device_index], width, height, latent_shape, strings)


def quality_key(quality: float | int | str) -> str:
    """The canonical text of a quality: 3 and 3.0 are "3", 0.05 is "0.05"."""
    return f"{float(quality):g}"


def resolve_device(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type not in DEVICE_KINDS:
        raise CodecError(f"device {device!r}: learned codecs run on cpu or cuda")
    return resolved


def import_compressai():
    """compressai imports torchvision at import time; see torch_compat."""
    from ..torch_compat import import_torchvision

    import_torchvision()
    import compressai

    return compressai


def read_state_dict(path: str | Path) -> dict:
    """Weights of a checkpoint file: a bare state_dict or the authors' {"state_dict": ...} dict.

    A `module.` prefix (left by nn.DataParallel) is removed. Loading is restricted to tensors and
    plain containers (weights_only); collections.Counter is allowed because the TCM/CompressAI training
    scripts store their MultiStepLR state beside the weights.
    """
    import torch

    with torch.serialization.safe_globals([collections.Counter]):
        checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    state_dict = checkpoint.get("state_dict", checkpoint)
    return {key.removeprefix("module."): value for key, value in state_dict.items()}


class LearnedCodec(Codec):
    """A CompressAI-style model (compress/decompress/forward) coding into one container per image.

    Options:
      checkpoint: weights file; a path with an optional "{quality}" placeholder, or a mapping
        quality -> path. The file is a bare state_dict or a dict with a "state_dict" entry (keys may
        carry a "module." prefix).
      device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N". Encode and decode must run on
        the same device kind; the container records it.
      random_init: TEST ONLY. Deterministic random weights (seed 0, then update(force=True)) instead
        of trained ones, to exercise the coding path where no weights can be had. Images are garbage.
      threads: torch intra-op threads, set when the first model loads; None leaves torch's default.

    Construction raises CodecUnavailable when weights that must be local files are missing (so that a
    run skips the codec at start-up), never touches the network and imports neither torch nor
    compressai; models load on first use.
    """

    extension = "lic"
    conda_env = "learned"
    uses_gpu = True
    padding_multiple: int

    def __init__(self, checkpoint: str | Mapping | None = None, device: str = "auto",
                 random_init: bool = False, threads: int | None = None):
        self.checkpoint = checkpoint
        self.device_option = device
        self.random_init = random_init
        self.threads = threads
        self._models: dict[str, object] = {}
        if random_init:
            return
        if checkpoint is None:
            self.check_official_weights()
        else:
            self._check_checkpoint_files()

    @functools.cached_property
    def device(self):
        return resolve_device(self.device_option)

    # --- what a subclass says ------------------------------------------------------------------

    def architecture(self, quality: str):
        """The model class for `quality` (canonical text); it has from_state_dict()."""
        raise NotImplementedError

    def random_model(self, quality: str):
        raise NotImplementedError

    def model_with_weights(self, quality: str, state_dict: dict):
        """The model for `quality` holding `state_dict` (strict: every name and shape must match)."""
        return self.architecture(quality).from_state_dict(state_dict)

    def check_official_weights(self) -> None:
        """Raise CodecUnavailable when, without a checkpoint option, no weights can be had."""
        raise NotImplementedError

    def official_weights(self, quality: str) -> tuple[dict, str]:
        """(state_dict, where it came from) when no checkpoint option is given."""
        raise NotImplementedError

    # --- model loading -------------------------------------------------------------------------

    def model(self, quality: float | str):
        """The model for `quality`, loaded once per codec object, in eval mode, on the device."""
        key = quality_key(quality)
        if key not in self._models:
            import torch

            import_compressai()
            if self.threads is not None:
                torch.set_num_threads(self.threads)
            if self.random_init:
                with torch.random.fork_rng(devices=[]):  # same weights every time, global RNG untouched
                    torch.manual_seed(RANDOM_INIT_SEED)
                    model = self.random_model(key)
            else:
                model = self._trained_model(key)
            model.update(force=self.random_init)  # trained weights keep the CDFs stored with them
            self._models[key] = model.eval().to(self.device)
        return self._models[key]

    def _trained_model(self, quality: str):
        from compressai.zoo import load_state_dict as convert_old_keys

        path = self.checkpoint_path(quality)
        if path is None:
            state_dict, source = self.official_weights(quality)
        else:
            source = str(path)
            try:
                state_dict = read_state_dict(path)
            except Exception as error:
                raise CodecError(f"{self.name} quality {quality}: cannot read checkpoint {path}: {error}") from error
        try:  # strict: every parameter name and shape must match the architecture
            return self.model_with_weights(quality, convert_old_keys(state_dict))
        except Exception as error:
            raise CodecError(f"{self.name} quality {quality}: weights {source} do not fit the model: {error}") \
                from error

    def _check_checkpoint_files(self) -> None:
        if isinstance(self.checkpoint, Mapping):
            missing = [str(path) for path in self.checkpoint.values() if not Path(path).is_file()]
        else:  # a template: at least one quality's file must be there; each job checks its own
            pattern = str(self.checkpoint).replace("{quality}", "*")
            missing = [] if glob.glob(pattern) else [pattern]
        if missing:
            raise CodecUnavailable(f"{self.name}: checkpoint {', '.join(missing)} not found (option 'checkpoint')")

    def checkpoint_path(self, quality: str) -> Path | None:
        if self.checkpoint is None:
            return None
        if isinstance(self.checkpoint, Mapping):
            paths = {quality_key(key): value for key, value in self.checkpoint.items()}
            if quality not in paths:
                raise CodecUnavailable(
                    f"{self.name} quality {quality}: option 'checkpoint' has no entry for it (has {', '.join(paths)})"
                )
            path = Path(paths[quality])
        else:
            path = Path(str(self.checkpoint).format(quality=quality))
        if not path.is_file():
            raise CodecUnavailable(
                f"{self.name} quality {quality}: checkpoint {path} does not exist (option 'checkpoint')"
            )
        return path

    # --- coding --------------------------------------------------------------------------------

    def _padding(self, height: int, width: int):
        import_compressai()
        from compressai.ops import compute_padding

        return compute_padding(height, width, min_div=self.padding_multiple)

    def model_input(self, rgb: np.ndarray):
        """HxWx3 uint8 -> 1x3xH'xW' float tensor in [0, 1] on the device, zero-padded around."""
        import torch
        import torch.nn.functional as F

        pad, _ = self._padding(*rgb.shape[:2])
        x = torch.tensor(rgb, device=self.device)  # a copy: rgb may be a read-only array
        x = x.permute(2, 0, 1)[None].float() / 255.0
        return F.pad(x, pad, mode="constant", value=0.0)

    def output_rgb(self, x_hat, width: int, height: int) -> np.ndarray:
        """Model output -> HxWx3 uint8: crop the padding, clamp to [0, 1], round to 8 bits."""
        import torch
        import torch.nn.functional as F

        _, unpad = self._padding(height, width)
        x_hat = F.pad(x_hat, unpad).clamp(0, 1)
        return (x_hat[0].permute(1, 2, 0) * 255.0).round().to("cpu", torch.uint8).numpy()

    def encode(self, rgb: np.ndarray, quality: float, bitstream_path: Path) -> None:
        import torch

        model = self.model(quality)
        with torch.no_grad():
            out = model.compress(self.model_input(rgb))
        strings = tuple(group[0] for group in out["strings"])  # one image per call: batch of 1
        height, width = rgb.shape[:2]
        shape = tuple(int(size) for size in out["shape"])
        write_bitstream(Bitstream(self.name, quality_key(quality), self.device.type, width, height, shape, strings),
                        bitstream_path)

    def decode(self, bitstream_path: Path, width: int, height: int) -> np.ndarray:
        import torch

        bitstream = read_bitstream(bitstream_path)
        if bitstream.model != self.name:
            raise CodecError(f"{bitstream_path}: made by model {bitstream.model!r}, not {self.name!r}")
        if (bitstream.width, bitstream.height) != (width, height):
            raise CodecError(
                f"{bitstream_path}: codes a {bitstream.width}x{bitstream.height} image, expected {width}x{height}"
            )
        if bitstream.device_kind != self.device.type:
            raise CodecError(
                f"{bitstream_path}: encoded on {bitstream.device_kind}, this decoder runs on {self.device.type}; "
                "CompressAI entropy parameters differ between devices, so decode on the device kind that encoded"
            )
        model = self.model(bitstream.quality)
        with torch.no_grad():
            out = model.decompress([[string] for string in bitstream.strings], bitstream.latent_shape)
        return self.output_rgb(out["x_hat"], width, height)

    def estimated_bpp(self, rgb: np.ndarray, quality: float) -> float:
        """Rate the model's likelihoods predict (forward pass), bits per original pixel."""
        import torch

        model = self.model(quality)
        with torch.no_grad():
            likelihoods = model(self.model_input(rgb))["likelihoods"].values()
            bits = sum(float(-torch.log2(values).sum()) for values in likelihoods)
        height, width = rgb.shape[:2]
        return bits / (width * height)


class SaIcm(LearnedCodec):
    """SA-ICM: TCM (N=128, M=320) trained on SAM edge regions (Shindo et al., ICIP 2024).

    The quality is a label that selects a checkpoint: with checkpoint
    "resources/weights/sa-icm/icm_{quality}.pth.tar", qualities 78 and 93 pick the authors' alpha =
    0.78 / 0.93 models; "resources/weights/sa-icm-v2/sa-icm_{quality}.pth.tar" with 0.03 ... 0.06 the
    SA-ICM-v2 ones.
    """

    name = "sa-icm"
    description = "SA-ICM (TCM network, authors' checkpoints), quality = checkpoint label"
    padding_multiple = 128

    def architecture(self, quality: str):
        from .tcm import TCM

        return TCM

    def random_model(self, quality: str):
        return self.architecture(quality)()

    def check_official_weights(self) -> None:
        raise CodecUnavailable(
            f"{self.name}: no weights. Download icm_78.pth.tar / icm_93.pth.tar (link in the README of "
            "https://github.com/final-0/SA-ICM) and set codec option 'checkpoint', e.g. "
            "resources/weights/sa-icm/icm_{quality}.pth.tar"
        )


class ZooCodec(LearnedCodec):
    """A model of compressai.zoo (MSE-optimized), quality = its zoo index.

    Weights: option 'checkpoint' if given, else CompressAI's official file, downloaded once by torch.hub
    into $TORCH_HOME/hub/checkpoints and checked against the hash prefix in its file name.
    """

    zoo_name: str
    padding_multiple = 64  # 4 strided stages in g_a, 2 more in h_a
    integer_qualities = True

    def _zoo_index(self, quality: str) -> int:
        from compressai.zoo.image import cfgs

        valid = sorted(cfgs[self.zoo_name])
        if float(quality) not in valid:
            raise CodecError(f"{self.name}: quality {quality} is not one of the zoo's {valid}")
        return int(float(quality))

    def architecture(self, quality: str):
        from compressai.zoo.image import model_architectures

        self._zoo_index(quality)
        return model_architectures[self.zoo_name]

    def random_model(self, quality: str):
        from compressai.zoo.image import cfgs

        return self.architecture(quality)(*cfgs[self.zoo_name][self._zoo_index(quality)])

    def check_official_weights(self) -> None:
        """Nothing to check when the run starts: the DAG is built without touching the network, so an
        offline submit host builds the same DAG. Whether the weights can be had (torch.hub's cache, else
        a download) is known when the job loads the model; official_weights says why not."""

    def official_weights(self, quality: str) -> tuple[dict, str]:
        import torch
        from compressai.zoo.image import model_urls

        url = model_urls[self.zoo_name]["mse"][self._zoo_index(quality)]
        try:
            state_dict = torch.hub.load_state_dict_from_url(
                url, map_location="cpu", progress=False, check_hash=True, weights_only=True
            )
        except Exception as error:
            raise CodecUnavailable(
                f"{self.name} quality {quality}: CompressAI's weights {url} are not in "
                f"{torch.hub.get_dir()}/checkpoints and could not be downloaded ({error}); put the file "
                "there or set codec option 'checkpoint'"
            ) from error
        return state_dict, url


class Bmshj2018Factorized(ZooCodec):
    name = zoo_name = "bmshj2018-factorized"
    quality_range = (1, 8)
    description = "Balle et al. 2018 factorized prior (CompressAI zoo)"


class Bmshj2018Hyperprior(ZooCodec):
    name = zoo_name = "bmshj2018-hyperprior"
    quality_range = (1, 8)
    description = "Balle et al. 2018 scale hyperprior (CompressAI zoo)"


class Mbt2018Mean(ZooCodec):
    name = zoo_name = "mbt2018-mean"
    quality_range = (1, 8)
    description = "Minnen et al. 2018 mean-scale hyperprior (CompressAI zoo)"


class Mbt2018(ZooCodec):
    name = zoo_name = "mbt2018"
    quality_range = (1, 8)
    description = "Minnen et al. 2018 joint autoregressive + hyperprior (CompressAI zoo)"


class Cheng2020Anchor(ZooCodec):
    name = zoo_name = "cheng2020-anchor"
    quality_range = (1, 6)
    description = "Cheng et al. 2020 anchor (CompressAI zoo)"


class Cheng2020Attention(ZooCodec):
    name = zoo_name = "cheng2020-attn"
    quality_range = (1, 6)
    description = "Cheng et al. 2020 with attention (CompressAI zoo)"


LEARNED_CODECS = (SaIcm, Bmshj2018Factorized, Bmshj2018Hyperprior, Mbt2018Mean, Mbt2018, Cheng2020Anchor,
                  Cheng2020Attention)
