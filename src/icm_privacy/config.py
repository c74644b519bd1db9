"""Loading and checking the workflow configuration before any job runs.

The JSON schema (workflow/schemas/config.schema.yaml) checks shapes and fills defaults; the checks
here need the code: codec names and quality ranges come from the codec registry.
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from .codecs import CODECS, Codec, CodecError, CodecUnavailable, make_codec

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
MAX_LISTED_PROBLEMS = 20  # files named in one error; the count says how many more


class ConfigError(ValueError):
    """An invalid configuration; the message names the offending key and the allowed values."""


@dataclass(frozen=True)
class CodecPoint:
    """One (codec entry, quality) pair: the unit that gets its own bitstreams and table row."""

    label: str
    codec: str
    quality: float
    options: dict
    threads: int

    @property
    def quality_text(self) -> str:
        """The quality as it appears in paths: 32, not 32.0."""
        return format_quality(self.quality)


def format_quality(quality: float) -> str:
    return str(int(quality)) if float(quality).is_integer() else str(quality)


def _fill_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))  # never share a default
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def _allowed(error: jsonschema.ValidationError) -> str:
    """What the failing part of the schema allows, where it lists it (enum messages list it already)."""
    schema = error.schema
    if error.validator == "additionalProperties":
        return f"; allowed keys: {', '.join(schema['properties'])}"
    items = schema.get("items")
    if error.validator != "enum" and isinstance(items, dict) and "enum" in items:
        return f"; allowed: {', '.join(map(str, items['enum']))}"
    return ""


def _check_options(entry: dict, index: int) -> Codec | None:
    """Build the codec once with its options: a misspelt option or a missing binary stops the run here.
    Returns the codec, or None when it cannot run on this machine."""
    codec_class = CODECS[entry["codec"]]
    try:
        return codec_class(**entry.get("options", {}))
    except TypeError as error:
        allowed = [name for name in inspect.signature(codec_class).parameters if name != "threads"]
        raise ConfigError(f"config key codecs.{index}.options: {error}; allowed: {', '.join(allowed) or 'none'}") from None
    except CodecUnavailable:
        return None  # well-formed but not runnable here: available_codecs skips it with the reason
    except CodecError as error:
        raise ConfigError(f"config key codecs.{index}.options: {error}") from None


def _check_imported_files(config: dict, imported: dict[int, Codec]) -> None:
    """Imported bitstreams and decoded images (codec `import`) against the dataset's images."""
    from .datasets import list_images
    from .images import upright_size

    sizes = {}
    for image_id, path in list_images(config["dataset"]).items():
        try:
            sizes[image_id] = upright_size(path)
        except Exception:  # an unreadable original is refused, with the reason, when images are prepared
            sizes[image_id] = None
    for index, codec in imported.items():
        problems = codec.check_files(sizes, config["codecs"][index]["qualities"])
        if problems:
            shown = problems[:MAX_LISTED_PROBLEMS] + [f"... {len(problems) - MAX_LISTED_PROBLEMS} more"] * (
                len(problems) > MAX_LISTED_PROBLEMS)
            raise ConfigError(f"config key codecs.{index}.options.root: {len(problems)} problem(s) with the imported "
                              "files:\n  " + "\n  ".join(shown))


def validate_config(config: dict) -> dict:
    """Check `config` against the schema and the codec registry; fill defaults in place; return it."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = _fill_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda error: list(error.absolute_path))
    if errors:
        error = errors[0]
        raise ConfigError(f"config key {_key_path(error)}: {error.message}{_allowed(error)}")
    labels, imported = set(), {}
    for index, entry in enumerate(config["codecs"]):
        if entry["codec"] not in CODECS:
            raise ConfigError(
                f"config key codecs.{index}.codec: unknown codec {entry['codec']!r}; "
                f"allowed: {', '.join(sorted(CODECS))}"
            )
        label = entry.setdefault("label", entry["codec"])
        if label in labels or label == "original":
            raise ConfigError(f"config key codecs.{index}.label: {label!r} is used twice or reserved; set distinct labels")
        labels.add(label)
        if entry["codec"] == "k-same-pixel":  # the gallery defaults to this run's original face crops
            entry.setdefault("options", {}).setdefault("gallery", f"{config['results']}/crops/original")
        codec = _check_options(entry, index)
        if entry["codec"] == "import" and codec is not None:
            imported[index] = codec
        low, high = (codec or CODECS[entry["codec"]]).quality_range  # a plug-in's range is its own
        for quality in entry["qualities"]:
            if not low <= quality <= high:
                raise ConfigError(
                    f"config key codecs.{index}.qualities: {quality} is out of range for {entry['codec']} "
                    f"(allowed {low}..{high})"
                )
    if imported:
        _check_imported_files(config, imported)
    return config


def load_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    return validate_config(yaml.safe_load(path.read_text()) or {})


def available_codecs(config: dict) -> tuple[list[dict], dict[str, Codec], list[str]]:
    """The codec entries that can run here, their codecs by label, and a message for each entry that cannot.

    A codec that needs something the machine lacks (VTM binaries, learned-codec weights) is skipped
    with the reason instead of failing in every one of its jobs.
    """
    available, codecs, skipped = [], {}, []
    for entry in config["codecs"]:
        try:
            codecs[entry["label"]] = make_codec(entry["codec"], **entry.get("options", {}),
                                                threads=entry.get("threads", 1))
        except CodecUnavailable as reason:
            skipped.append(f"codec entry {entry['label']!r} is skipped: {reason}")
        else:
            available.append(entry)
    return available, codecs, skipped


def cross_resolution_points(config: dict) -> list[CodecPoint]:
    """The codec points a cross-resolution attacker also sees: downscale points, when enabled."""
    if not config["privacy"]["cross_resolution"]:
        return []
    return [point for point in codec_points(config) if point.codec == "downscale"]


def codec_points(config: dict) -> list[CodecPoint]:
    return [
        CodecPoint(entry["label"], entry["codec"], quality, entry.get("options", {}), entry.get("threads", 1))
        for entry in config["codecs"]
        for quality in entry["qualities"]
    ]
