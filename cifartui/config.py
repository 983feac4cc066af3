"""The config schema (typed, validated, with defaults), YAML load/save and ``--set key=value`` overrides.

pydantic gives us types, ranges and field paths for free; this module turns its errors into messages
that name the field, the bad value and what is allowed, with a "did you mean" for unknown keys.
"""

from __future__ import annotations

import difflib
import os
import re
import reprlib
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from cifartui import presets
from cifartui.errors import UserError
from cifartui.record.bounded_yaml import MAX_CONFIG_BYTES, YAMLLimit, safe_load_yaml  # noqa: F401 - safe_load_yaml is used by the queue too
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(UserError):
    """A config problem. The message is ready to print: what, where, and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    source: Literal["cifar10", "cifar100", "imagefolder", "synthetic"] = "synthetic"
    root: str = "./data"
    download: bool = True
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    image_size: int | None = Field(None, ge=8, le=1024)
    augment: Literal["none", "standard", "strong", "trivial", "randaugment"] = Field(
        "standard", description="none; standard = pad-crop + flip; strong = resized crop + flip + erasing; "
        "trivial / randaugment = pad-crop + flip + a TrivialAugmentWide / RandAugment op drawn per image")
    randaug_magnitude: int = Field(9, ge=0, le=30, description="RandAugment strength (0-30) for augment: randaugment")
    # Mixup / CutMix (timm.data.Mixup) on the device batch; the loss then takes soft targets
    mixup: float = Field(0.0, ge=0.0, le=10.0, description="Mixup alpha (0 = off; 0.2-0.8 typical); train accuracy is not measured while mixing")
    cutmix: float = Field(0.0, ge=0.0, le=10.0, description="CutMix alpha (0 = off; 1.0 typical); with mixup too, each batch picks one at random")
    mix_prob: float = Field(1.0, ge=0.0, le=1.0, description="fraction of batches mixed when mixup or cutmix is on")
    crop_padding: int = Field(4, ge=0, le=64)
    classes: list[str] | None = None  # train on a subset of the classes, by name
    exclude: str | None = Field(None, description="file of images to leave out of training, one reference a line "
                                "(the Suspects view saves <run>/exclude.txt; cifartui suspects RUN --refs prints them)")
    num_classes: int = Field(10, ge=2, le=10000)  # synthetic only
    train_size: int = Field(5000, ge=2)  # synthetic only
    test_size: int = Field(1000, ge=1)  # synthetic only
    synthetic_size: int = Field(32, ge=8, le=512)  # synthetic image side


class ModelConfig(_Section):
    name: str = "resnet18"
    pretrained: Union[bool, str] = False
    checkpoint: str | None = None
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0)

    @field_validator("name")
    @classmethod
    def _name_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a timm model name is required, e.g. resnet18")
        return v.strip()


class TrainConfig(_Section):
    epochs: int = Field(10, ge=1, le=100000)
    batch_size: int = Field(128, ge=1, le=65536)
    eval_batch_size: int | None = Field(None, ge=1, le=65536)
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    decay_norm_and_bias: bool = False  # weight decay on norm layers and biases too (off: timm create_optimizer_v2 skips them)
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    scheduler: Literal["cosine", "step", "onecycle", "none"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    early_stop_patience: int = Field(0, ge=0)
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    channels_last: bool = True
    compile: bool = False
    grad_clip: float | None = Field(None, gt=0.0)
    log_interval: int = Field(20, ge=1)
    save_every_steps: int = Field(0, ge=0)  # also save last.pt every N steps (mid-epoch resume); 0 = each epoch
    # Multi-process (torchrun) only; ignored in a single process. The global batch is batch_size x world_size.
    sync_bn: bool = False  # SyncBatchNorm: batch statistics over the global batch (CUDA only)
    scale_lr: bool = False  # linear scaling: the lr used is lr x world_size
    # Model EMA (timm ModelEmaV3), scored beside the raw weights each epoch; best.pt keeps the better
    ema: bool = Field(False, description="keep an exponential moving average of the weights and score it each epoch")
    ema_decay: float = Field(0.9998, gt=0.0, lt=1.0, description="EMA decay (its cap when ema_warmup is on)")
    ema_warmup: bool = Field(True, description="update k decays min(ema_decay, 1 - k^-2/3): a short run averages its recent steps")
    accum_steps: int = Field(1, ge=1, le=1024, description="gradient accumulation: batch_size x accum_steps images per optimizer step")


class EvalConfig(_Section):
    tta: Literal["none", "flip"] = Field("none", description="flip: average the logits of each image and its mirror (2x eval time)")


class OutputConfig(_Section):
    root: str = "./runs"
    save_samples: bool = True  # thumbnails of val/test images for the confusion drilldown
    # a shell command run once when a run ends, headless, queued or in the app (cifartui.notify: env CIFARTUI_RUN, ...)
    notify: str | None = Field(None, max_length=4000)
    notify_timeout: float = Field(60.0, gt=0, le=3600)  # seconds; then it is killed (the run is not affected)


class Config(_Section):
    name: str = "run"
    seed: int = Field(0, ge=0, le=2**31 - 1)
    device: str = "auto"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda|cuda:\d+|mps", v):
            raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
        return v

    @field_validator("name")
    @classmethod
    def _run_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,79}", v) or ".." in v:
            raise ValueError("use letters, digits, '.', '_', '+' or '-' (no '/' and no '..'), up to 80 characters")
        return v

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def with_overrides(self, **values: Any) -> "Config":
        """A copy with dotted keys changed, e.g. ``with_overrides(**{"train.lr": 1e-5})``; validated."""
        data = self.model_dump(mode="json")
        for key, value in values.items():
            _set_dotted(data, key, value)
        return validate(data)


MAX_SHOWN = 80  # characters of a value shown in an error message
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = MAX_SHOWN
_repr.maxlist = _repr.maxdict = _repr.maxtuple = _repr.maxset = 4
_repr.maxlevel = 2


def shorten(value: Any, limit: int = MAX_SHOWN) -> str:
    """A value for an error message: repr'd within bounds, at most ``limit`` characters."""
    try:
        text = value if isinstance(value, str) and limit > MAX_SHOWN else _repr.repr(value)
    except Exception:  # noqa: BLE001 - a message must never fail
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- loading --------------------------------------------------------------------------------------
def _fields_at(path: tuple) -> list[str]:
    model: type[BaseModel] = Config
    for part in path:
        info = model.model_fields.get(str(part))
        if info is None or not (isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)):
            return []
        model = info.annotation
    return list(model.model_fields)


def _format_error(err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    where = shorten(".".join(str(p) for p in loc), 120) or "(top level)"
    if err["type"] == "extra_forbidden":
        allowed = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return f"{where}: unknown key.{hint} Allowed here: {', '.join(allowed)}."
    value = err.get("input")
    shown = shorten(value) if not isinstance(value, dict) else "a mapping"
    msg = shorten(str(err["msg"]), 200)
    if err["type"] == "model_type":
        return f"{where}: expected a mapping of settings, got {shown}."
    return f"{where}: {shown} is not allowed: {msg[0].lower() + msg[1:]}."


def validate(data: Any, source: str = "config") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of settings (name: ..., train: ...).")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        lines = [_format_error(e) for e in errors[:20]]
        if len(errors) > 20:
            lines.append(f"... and {len(errors) - 20} more problems")
        raise ConfigError(f"{source}: invalid config\n  " + "\n  ".join(lines)) from None
    except RecursionError:
        raise ConfigError(f"{source}: the config is nested too deeply to be a config.") from None


def parse_yaml(text: str, source: str = "config") -> Any:
    try:
        return safe_load_yaml(text)
    except YAMLLimit as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source}: refused YAML{where}: {exc.problem}.\n  Write the settings out plainly.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = shorten(str(getattr(exc, "problem", None) or exc), 200)
        raise ConfigError(f"{source}: malformed YAML{where}: {problem}.\n  Fix the syntax there (indentation, ':' after keys, quotes).") from None


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {shorten(key)}: '{shorten('.'.join(parts[: i + 1]))}' is a value, not a section.")
        node = child
    node[parts[-1]] = value


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"--set {shorten(item)}: expected KEY=VALUE, e.g. --set train.lr=3e-4")
    key, raw = item.split("=", 1)
    key = key.strip()
    if len(key) > 200 or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise ConfigError(f"--set {shorten(item)}: {shorten(key)} is not a dotted key such as train.lr")
    try:
        value = safe_load_yaml(raw) if raw.strip() else None
    except YAMLLimit as exc:
        raise ConfigError(f"--set {shorten(key)}: refused value: {exc.problem}.") from None
    except yaml.YAMLError:
        value = raw
    return key, value


def load(path: str | os.PathLike | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply ``--set`` overrides."""
    if path is None:
        data: Any = {}
        source = "config"
    else:
        try:
            p = presets.resolve(path)  # a path that exists wins, else a preset name (`cifartui configs`)
        except presets.UnknownConfig as exc:
            raise ConfigError(str(exc)) from None
        source = str(path) if p == Path(path).expanduser() else f"preset {os.fspath(path)}"
        try:
            with open(p, "rb") as f:  # bounded: a config is a few KB (and /dev/zero never ends)
                raw = f.read(MAX_CONFIG_BYTES + 1)
            if len(raw) > MAX_CONFIG_BYTES:
                raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES >> 20} MB, not a config file.")
            text = raw.decode("utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{source}: config file not found. `cifartui configs` lists ready recipes.") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read the config ({exc}).") from None
        data = parse_yaml(text, source)
        if data is None:
            data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of settings (name: ..., train: ...).")
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(data, key, value)
    return validate(data, source)


def load_text(text: str, source: str = "config") -> Config:
    return validate(parse_yaml(text, source), source)


def diff(a: Config, b: Config) -> list[tuple[str, Any, Any]]:
    """Dotted keys whose values differ, with both values (for the config screen and run comparison)."""
    out: list[tuple[str, Any, Any]] = []

    def walk(x: Any, y: Any, prefix: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in list(x) + [k for k in y if k not in x]:
                walk(x.get(k), y.get(k), f"{prefix}{k}.")
        elif x != y:
            out.append((prefix[:-1], x, y))

    walk(a.model_dump(mode="json"), b.model_dump(mode="json"), "")
    return out


# Settings a resume may change; any other difference makes the saved optimizer state and schedule meaningless.
RESUME_MAY_CHANGE = ("train.epochs", "train.early_stop_patience", "train.log_interval", "train.compile",
                     "train.save_every_steps", "device", "output.", "name", "data.root", "data.download", "eval.")


def check_resume(saved: Config, cfg: Config) -> None:
    """Refuse (ConfigError, exit 2) a resume whose config changes more than RESUME_MAY_CHANGE allows."""
    changed = [k for k, _a, _b in diff(saved, cfg) if not any(k == p or k.startswith(p) for p in RESUME_MAY_CHANGE)]
    if changed:
        raise ConfigError(
            f"--resume: the config differs from the run's in {', '.join(changed)}; the saved optimizer and "
            "schedule would not match.\n  Resume with the run's config (only "
            f"{', '.join(p + '*' if p.endswith('.') else p for p in RESUME_MAY_CHANGE)} may change), "
            "or start a new run with model.checkpoint."
        )


def dotted_keys(model: type[BaseModel] = Config, prefix: str = "") -> list[str]:
    """Every setting's dotted key (train.lr, data.source, ...), for a "did you mean" on a key typed elsewhere
    (the runs filter's cfg.KEY terms)."""
    out: list[str] = []
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            out += dotted_keys(info.annotation, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out
