"""Your own codec as a Python plug-in, reached by an import path in the config.

    - codec: plugin
      label: my-model
      qualities: [1, 2]
      options:
        factory: my_package.models:build   # package.module:name, importable (e.g. on PYTHONPATH)
        arguments: {channels: 192}         # keyword arguments of the factory
        checkpoint: weights/my_model_{quality}.pth.tar

`factory` names either
- a Codec subclass (base.py): built with `arguments` and the entry's threads, and used as it is: its
  extension, quality range, conda env and GPU use are what the workflow schedules;
- a model factory: `factory(quality, **arguments)` returns an untrained CompressAI-style model (an
  nn.Module with forward, compress, decompress and update), coded through the package's learned-codec
  container and device handling (learned.py). Its options are those of the learned codecs (checkpoint,
  device, random_init) plus `padding_multiple` (default 64) and `model_name` (what the container
  records and decoding checks; default the factory's import path). The checkpoint is loaded strictly.

The module is imported when the configuration is loaded, so an unknown import path stops the run
before any job.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path

from .base import Codec, CodecError
from .learned import LearnedCodec


def import_module(module_name: str):
    try:
        return importlib.import_module(module_name)
    except RuntimeError as error:
        if "torchvision::nms" not in str(error):
            raise
    # a CPU torch beside PyPI's CUDA torchvision wheel (modules importing compressai): see torch_compat
    from ..torch_compat import import_torchvision

    import_torchvision()
    return importlib.import_module(module_name)


def load_factory(path: str | None):
    """The object an import path `package.module:name` names; refused with the reason."""
    module_name, _, attribute = str(path).partition(":")
    if not module_name or not attribute:
        raise CodecError(f"option 'factory': {path!r} is not an import path 'package.module:name'")
    try:
        module = import_module(module_name)
    except Exception as error:  # the plug-in's own import errors too: the run cannot use it
        raise CodecError(f"option 'factory': cannot import module {module_name!r} ({type(error).__name__}: {error}); "
                         "is its folder on PYTHONPATH?") from None
    if not hasattr(module, attribute):
        raise CodecError(f"option 'factory': module {module_name!r} ({module.__file__}) has no {attribute!r}")
    return getattr(module, attribute)


def plugin_source(path: str) -> str:
    """What identifies the plug-in's code besides its options: the `__version__` its module declares, else
    the sha256 of the module's file. Part of its entry's identity, so that editing the plug-in re-runs
    that entry's points (a plug-in spread over several files should declare a version)."""
    from ..sources import sha256_of

    module = import_module(str(path).partition(":")[0])
    version = getattr(module, "__version__", None)
    return f"version {version}" if version is not None else f"sha256 {sha256_of(Path(module.__file__))}"


class Plugin(Codec):
    name = "plugin"
    description = "your own codec from an import path: a Codec subclass, or a CompressAI-style model factory"
    conda_env = "learned"  # what a model plug-in needs; a Codec subclass plug-in brings its own
    uses_gpu = True

    def __new__(cls, factory: str | None = None, arguments: Mapping | None = None,
                checkpoint: str | Mapping | None = None, device: str | None = None, random_init: bool | None = None,
                padding_multiple: int | None = None, model_name: str | None = None, threads: int = 1):
        # The entry's codec is the plug-in's own object, not a wrapper, so that every attribute the
        # workflow reads (extension, quality range, conda env, GPU use, needs_faces) is the plug-in's.
        target = load_factory(factory)
        model_options = {"checkpoint": checkpoint, "device": device, "random_init": random_init,
                         "padding_multiple": padding_multiple, "model_name": model_name}
        model_options = {key: value for key, value in model_options.items() if value is not None}
        if isinstance(target, type) and issubclass(target, Codec):
            if model_options:
                raise CodecError(f"option(s) {', '.join(model_options)} are for model factories; "
                                 f"{factory} is a Codec subclass: give its options under 'arguments'")
            try:
                return target(**(arguments or {}), threads=threads)
            except TypeError as error:
                raise CodecError(f"option 'arguments': {factory}: {error}") from None
        if not callable(target):
            raise CodecError(f"option 'factory': {factory} is a {type(target).__name__}, not a Codec subclass "
                             "or a model factory")
        return PluginModel(str(factory), target, dict(arguments or {}), threads=threads, **model_options)


class PluginModel(LearnedCodec):
    """A CompressAI-style model made by a plug-in's factory, in the package's container."""

    def __init__(self, factory: str, build, arguments: dict, model_name: str | None = None,
                 padding_multiple: int = 64, checkpoint: str | Mapping | None = None, device: str = "auto",
                 random_init: bool = False, threads: int | None = None):
        self.name = model_name or factory
        if not self.name.isascii() or len(self.name) > 255:
            raise CodecError(f"option 'model_name': {self.name!r} must be ASCII of at most 255 characters "
                             "(the container records it)")
        self.build, self.arguments, self.padding_multiple = build, arguments, int(padding_multiple)
        super().__init__(checkpoint, device, random_init, threads)

    def random_model(self, quality: str):
        number = float(quality)
        model = self.build(int(number) if number.is_integer() else number, **self.arguments)
        if not all(callable(getattr(model, method, None)) for method in ("compress", "decompress", "update")):
            raise CodecError(f"{self.name}: the factory returned a {type(model).__name__}, not a model with "
                             "compress, decompress and update")
        return model

    def model_with_weights(self, quality: str, state_dict: dict):
        model = self.random_model(quality)
        model.load_state_dict(state_dict)  # strict; CompressAI models also resize their CDF buffers
        return model

    def check_official_weights(self) -> None:
        raise CodecError("option 'checkpoint' is required: a model plug-in has no official weights")
