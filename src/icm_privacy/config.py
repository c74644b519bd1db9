"""Loading and checking the workflow configuration before any job runs.

The JSON schema (workflow/schemas/config.schema.yaml) checks shapes and fills defaults; the checks
here need the code: codec names and quality ranges come from the codec registry.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from .codecs import CODECS, Codec, CodecError, CodecUnavailable, make_codec
from .codecs.icm import ICM_CODECS, WEIGHTS_DIR, weights_source
from .points import CodecPoint, format_quality

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
MAX_LISTED_PROBLEMS = 20  # files named in one error; the count says how many more


class ConfigError(ValueError):
    """An invalid configuration; the message names the offending key and the allowed values."""


def entry_key(index: int, entry: dict, key: str = "") -> str:
    """A codec entry's key as messages name it: its place (and option) and its label, as the configuration
    has them: "codecs.2.qualities (entry 'avif-cli')"."""
    return f"codecs.{index}{'.' + key if key else ''} (entry {entry.get('label', entry['codec'])!r})"


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
    """Build the codec once with its options: a misspelt option stops the run here. Returns the codec,
    or None when it cannot run on this machine (available_codecs decides what that means)."""
    codec_class = CODECS[entry["codec"]]
    try:
        return codec_class(**entry.get("options", {}))
    except TypeError as error:
        allowed = [name for name in inspect.signature(codec_class).parameters if name != "threads"]
        raise ConfigError(f"config key {entry_key(index, entry, 'options')}: {error}; "
                          f"allowed: {', '.join(allowed) or 'none'}") from None
    except CodecUnavailable:
        return None
    except CodecError as error:
        raise ConfigError(f"config key {entry_key(index, entry, 'options')}: {error}") from None


def _check_qualities(entry: dict, index: int, codec: Codec | type[Codec]) -> None:
    """Every quality inside the codec's range (a plug-in's or a command's own), and whole where it must be."""
    low, high = codec.quality_range
    for quality in entry["qualities"]:
        if not low <= quality <= high:
            raise ConfigError(f"config key {entry_key(index, entry, 'qualities')}: {format_quality(quality)} is out of "
                              f"range for codec {entry['codec']} (allowed {format_quality(low)}..{format_quality(high)})")
        if codec.integer_qualities and not float(quality).is_integer():
            raise ConfigError(f"config key {entry_key(index, entry, 'qualities')}: {quality} is not a whole number; "
                              f"codec {entry['codec']} takes whole numbers only")


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
            raise ConfigError(f"config key {entry_key(index, config['codecs'][index], 'options.root')}: "
                              f"{len(problems)} problem(s) with the imported "
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
                f"config key {entry_key(index, entry, 'codec')}: unknown codec {entry['codec']!r}; "
                f"allowed: {', '.join(sorted(CODECS))}"
            )
        label = entry.setdefault("label", entry["codec"])
        if label in labels or label == "original":
            raise ConfigError(f"config key {entry_key(index, entry, 'label')}: {label!r} is used twice or reserved; "
                              "set distinct labels")
        labels.add(label)
        if entry["codec"] == "k-same-pixel":  # the gallery defaults to this run's original face crops
            entry.setdefault("options", {}).setdefault("gallery", f"{config['results']}/crops/original")
        codec = _check_options(entry, index)
        if entry["codec"] == "import" and codec is not None:
            imported[index] = codec
        _check_qualities(entry, index, codec or CODECS[entry["codec"]])
    if imported:
        _check_imported_files(config, imported)
    _check_attacked_codecs(config)
    unknown = sorted(set(config["gallery"].get("codecs", [])) - labels)
    if unknown:
        raise ConfigError(f"config key gallery.codecs: {', '.join(unknown)} name no codec entry; entries: "
                          f"{', '.join(sorted(labels))}")
    return config


def check_gallery_images(config: dict, images: dict) -> None:
    """Every image the gallery asks for is one of the run's images (`images`: image id -> source)."""
    missing = [image for image in config["gallery"]["images"] if str(image) not in images]
    if missing:
        raise ConfigError(f"config key gallery.images: {', '.join(map(str, missing))} not among the dataset's "
                          f"{len(images)} images")


def load_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    return validate_config(yaml.safe_load(path.read_text()) or {})


@dataclass(frozen=True)
class SkippedEntry:
    """An optional codec entry that cannot run on this machine, and why."""

    index: int
    label: str
    codec: str
    reason: str

    def __str__(self) -> str:
        return f"codecs.{self.index} (entry {self.label!r}, codec {self.codec}, optional) is skipped: {self.reason}"


def available_codecs(config: dict) -> tuple[list[dict], dict[str, Codec], list[SkippedEntry]]:
    """The codec entries that run here, their codecs by label, and the optional entries skipped.

    An entry that needs something this machine lacks (a program, VTM binaries, learned-codec weights)
    stops the run, naming the entry and the reason, unless the entry says `optional: true`: then it is
    skipped and listed in the run summary, the report and the recorded configuration.
    """
    available, codecs, skipped = [], {}, []
    for index, entry in enumerate(config["codecs"]):
        try:
            codecs[entry["label"]] = make_codec(entry["codec"], **entry.get("options", {}),
                                                threads=entry.get("threads", 1))
        except CodecUnavailable as reason:
            if not entry.get("optional"):
                raise ConfigError(f"config key {entry_key(index, entry)}: cannot run on this machine: {reason}. "
                                  "Fix the entry, or set `optional: true` on it to run without it") from None
            skipped.append(SkippedEntry(index, entry["label"], entry["codec"], str(reason)))
        else:
            available.append(entry)
    return available, codecs, skipped


def prepare_run(config: dict) -> tuple[dict, dict[str, Codec], list[SkippedEntry]]:
    """What the workflow does with its configuration at start-up, before any job.

    Validates `config` (defaults filled in place), builds each entry's codec and leaves in
    config["codecs"] the entries that run. Returns the validated configuration as written (every
    entry, for the record), the codecs by label and the skipped optional entries.
    """
    validate_config(config)
    written = copy.deepcopy(config)
    config["codecs"], codecs, skipped = available_codecs(config)
    return written, codecs, skipped


@contextlib.contextmanager
def user_errors():
    """An error in the user's configuration or dataset ends the process with its message alone: a
    traceback of this package's code would only hide what to fix in the user's files."""
    from .datasets import DatasetError

    try:
        yield
    except (ConfigError, DatasetError) as error:
        raise SystemExit(f"icm-privacy: {error}") from None


def entry_source(entry: dict) -> str:
    """What identifies an entry's code besides its options: a plug-in's module version or file hash
    (codecs/plugin.py), the weights an icm-* codec ships (codecs/icm.py); empty for the package's other
    codecs, whose code is the workflow's."""
    if entry["codec"] in {codec.name for codec in ICM_CODECS}:
        return weights_source(entry["codec"], entry.get("options", {}).get("weights_dir", WEIGHTS_DIR))
    if entry["codec"] != "plugin":
        return ""
    from .codecs.plugin import plugin_source

    return plugin_source(entry["options"]["factory"])


def cross_resolution_points(config: dict) -> list[CodecPoint]:
    """The codec points a cross-resolution attacker also sees: downscale points, when enabled."""
    if not config["privacy"]["cross_resolution"]:
        return []
    return [point for point in codec_points(config) if point.codec == "downscale"]


# Codecs whose output a learning attacker cannot train on, and why.
UNATTACKABLE_CODECS = {
    "import": "its bitstreams were made elsewhere, so it cannot code the attacker's training images",
    "k-same-pixel": "its output holds faces of the evaluated images (the k-Same gallery)",
}


def _attacked_labels(config: dict) -> list[str]:
    listed = config["privacy"]["attack_training"].get("codecs")
    if listed is not None:
        return listed
    return [entry["label"] for entry in config["codecs"] if entry["codec"] not in UNATTACKABLE_CODECS]


def _check_attacked_codecs(config: dict) -> None:
    """The entries `privacy.attack_training.codecs` names exist, and a learning attacker can train on them."""
    entries = {entry["label"]: entry for entry in config["codecs"]}
    for index, label in enumerate(config["privacy"]["attack_training"].get("codecs") or []):
        key = f"config key privacy.attack_training.codecs.{index}"
        if label not in entries:
            raise ConfigError(f"{key}: no codec entry is labelled {label!r}; labels: {', '.join(entries)}")
        reason = UNATTACKABLE_CODECS.get(entries[label]["codec"])
        if reason:
            raise ConfigError(f"{key}: entry {label!r} (codec {entries[label]['codec']}) cannot be attacked: {reason}")


def attacked_points(config: dict) -> list[CodecPoint]:
    """The codec points the learning attackers (`privacy.attackers`) train on and attack; none when off."""
    if not config["privacy"]["attackers"]:
        return []
    labels = set(_attacked_labels(config))
    return [point for point in codec_points(config) if point.label in labels]


def codec_points(config: dict) -> list[CodecPoint]:
    return [
        CodecPoint(entry["label"], entry["codec"], quality, entry.get("options", {}), entry.get("threads", 1))
        for entry in config["codecs"]
        for quality in entry["qualities"]
    ]
