"""Schemas for everything a user or an earlier run hands the harness: plans (every table, at every
depth), training settings, search spaces, prices, adapter configs, manifests and stored records.

pydantic in strict mode: a value of the wrong type is refused rather than guessed at ("abc" is not
a number, 2.5 is not a whole number, a single number is not a list); the only coercion is a whole
number where a real one is expected. Non-finite numbers are refused everywhere. Every failure
becomes one UserError line naming the file, the key path and what was expected; an unknown key gets
a "did you mean" hint. Meaning checks that need more than a type (a template the task has, a shot
count against the pool) stay with the code that knows the task.
"""

from __future__ import annotations

import json
import re
import tomllib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.core.errors import UserError, closest, not_utf8
from harness.core.identity import PLAN_NAME_MAX, odd_character, plain_name
from harness.core.options import SEED

T = TypeVar("T")

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Method = Literal["grid", "random", "tpe"]
Seed = Annotated[int, Field(ge=SEED.lo, le=SEED.hi)]  # the command line's --seed range


def _plainly_shown(name: str) -> str:
    odd = odd_character(name)
    if odd is not None:  # U+202E in a variant name made the verdict sentence read backwards
        raise ValueError(f"contains {odd}, which would change how it reads in the terminal and the reports")
    return name


# a name that reaches the terminal and the reports: a task, variant or label
ShownName = Annotated[str, AfterValidator(_plainly_shown)]


class Strict(BaseModel):
    """A user-written table: unknown keys refused, no type guessing, no inf/nan."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class Stored(BaseModel):
    """A file the harness wrote: the keys it reads are typed, later additions are tolerated."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=True, frozen=True)


class PricesTable(Strict):
    device_usd_per_hour: NonNegativeFloat = 2.0
    train_device_usd_per_hour: NonNegativeFloat | None = None
    usd_per_1k_prompt_tokens: NonNegativeFloat = 0.0
    usd_per_1k_completion_tokens: NonNegativeFloat = 0.0
    usd_per_labelled_row: NonNegativeFloat = 0.0
    requests_per_month: PositiveFloat | None = None
    months: PositiveFloat = 12.0
    usd_per_error: NonNegativeFloat | None = None


class VariantTable(Strict):
    name: Annotated[ShownName, Field(min_length=1)] | None = None
    template: Annotated[str, Field(min_length=1)]
    shots: NonNegativeInt = 0
    selection: Literal["random", "balanced", "similar", "fixed", "bootstrap"] = "random"
    constrained: bool = False
    max_tokens: PositiveInt | None = None
    cue: str = ""
    label_order: Literal["given", "reversed", "sorted", "shuffled"] = "given"
    stop: list[Annotated[str, Field(min_length=1)]] | None = None
    temperature: Annotated[float, Field(ge=0, le=5)] | None = None
    many_shot: bool = False  # 'similar' examples, as many as the context allows (shots left unset)
    scoring: Literal["generate", "loglik", "loglik_norm"] = "generate"  # loglik: the likeliest label, no decoding
    calibration: Literal["none", "contextual", "batch"] = "none"  # of a loglik choice

    @model_validator(mode="after")
    def _many_or_counted(self) -> VariantTable:
        if self.many_shot and self.shots:
            raise ValueError("give shots or many_shot = true, not both (many_shot fills the context)")
        return self


class TrainTable(Strict):
    """[task.train]: any TrainConfig field but the task (a test keeps the two in step)."""

    model: str | None = None
    template: str | None = None
    train_size: PositiveInt | None = None
    val_fraction: Annotated[float, Field(ge=0, lt=0.9)] | None = None
    epochs: PositiveFloat | None = None
    lr: PositiveFloat | None = None
    schedule: Literal["linear", "cosine", "constant", "constant_with_warmup"] | None = None
    warmup_ratio: Annotated[float, Field(ge=0, le=1)] | None = None
    rank: PositiveInt | None = None
    alpha: PositiveInt | None = None
    dropout: Annotated[float, Field(ge=0, lt=1)] | None = None
    target_modules: Annotated[list[str], Field(min_length=1)] | None = None
    batch_size: PositiveInt | None = None
    grad_accum: PositiveInt | None = None
    max_seq_len: PositiveInt | None = None
    seed: Seed | None = None
    precision: Literal["auto", "fp32", "bf16", "fp16"] | None = None
    early_stopping_patience: PositiveInt | None = None
    pack: bool | None = None

    def settings(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


Numbers = Annotated[list[float], Field(min_length=1)] | Annotated[str, Field(min_length=1)]
Whole = Annotated[list[PositiveInt], Field(min_length=1)] | Annotated[str, Field(min_length=1)]


class SweepTable(Strict):
    """[task.sweep]: method, trials and the values of each training setting to try."""

    method: Method = "random"
    trials: PositiveInt = 4
    lr: Numbers | None = None
    epochs: Numbers | None = None
    dropout: Numbers | None = None
    warmup_ratio: Numbers | None = None
    batch_size: Whole | None = None
    rank: Whole | None = None
    alpha: Whole | None = None
    train_size: Whole | None = None
    grad_accum: Whole | None = None

    def space(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"method", "trials"})


Strings = Annotated[list[str], Field(min_length=1)] | Annotated[str, Field(min_length=1)]


class PromptSpaceTable(Strict):
    template: Strings | None = None
    shots: Annotated[list[NonNegativeInt], Field(min_length=1)] | str | None = None
    selection: Strings | None = None
    label_order: Strings | None = None
    cue: list[str] | str | None = None
    constrained: Annotated[list[bool], Field(min_length=1)] | str | None = None
    scoring: Strings | None = None
    calibration: Strings | None = None

    def space(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class PromptSearchTable(PromptSpaceTable):
    """[task.prompt_search]: the space either flat or under `space`."""

    method: Method = "random"
    trials: PositiveInt = 6
    max_device_s: PositiveFloat | None = None
    space_table: PromptSpaceTable | None = Field(default=None, alias="space")

    model_config = ConfigDict(populate_by_name=False)

    def search_space(self) -> dict[str, Any]:
        flat = {k: v for k, v in self.model_dump(exclude_none=True).items() if k in PromptSpaceTable.model_fields}
        if flat and self.space_table is not None:
            raise UserError("prompt_search: give the space either flat or under `space`, not both")
        return self.space_table.space() if self.space_table is not None else flat


class TaskTable(Strict):
    name: Annotated[ShownName, Field(min_length=1)]
    variants: list[VariantTable] = []
    train_sizes: list[PositiveInt] = []
    seeds: Annotated[list[Seed], Field(min_length=1)] = [0]
    train: TrainTable = TrainTable()
    sweep: SweepTable | None = None
    retention: list[str] | None = None
    prompt_search: PromptSearchTable | None = None
    formats: Annotated[int, Field(ge=0, le=50)] = 5  # format perturbations of the selected prompt (0: none)

    @field_validator("seeds", "train_sizes")
    @classmethod
    def _distinct(cls, values: list[int]) -> list[int]:
        if len(set(values)) != len(values):
            raise ValueError("values must be distinct (each is one adapter)")
        return values


class PlanFile(Strict):
    name: Annotated[str, Field(min_length=1)] | None = None
    model: Annotated[str, Field(min_length=1)] | None = None
    limit: PositiveInt | None = 200
    seed: Seed = 0
    val_limit: PositiveInt = 100
    latency_probe: Annotated[int, Field(ge=0, le=1000)] = 20
    noise_items: Annotated[int, Field(ge=0)] = 64  # test items the noise floor re-runs; 0: no noise floor
    prices: PricesTable = PricesTable()
    task: Annotated[list[TaskTable], Field(min_length=1)]

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str | None) -> str | None:
        # it names the run's folder under --results: 'x/../../elsewhere' wrote the run outside it
        if name is not None and not plain_name(name, PLAN_NAME_MAX):
            raise ValueError(
                "it names the run's folder: use letters, digits, '.', '_' and '-' "
                f"(no '/', no '..'; at most {PLAN_NAME_MAX} characters)"
            )
        return name

    @field_validator("task")
    @classmethod
    def _one_table_per_task(cls, tasks: list[TaskTable]) -> list[TaskTable]:
        names = [t.name for t in tasks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # two tables would write one task's records into the same place, each taking the other's
            raise ValueError(f"{', '.join(twice)} has more than one [[task]]; give one table its variants and sizes")
        return tasks


class AdapterConfig(Stored):
    """The keys of a peft adapter_config.json the harness reads."""

    r: PositiveInt
    lora_alpha: float | None = None
    target_modules: list[str] | str | None = None
    peft_type: str | None = None


def _known(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the table at `loc` accepts, for the did-you-mean hint."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        field = current.model_fields.get(str(part)) or next(
            (f for f in current.model_fields.values() if f.alias == part), None
        )
        if field is None:
            return []
        current = _inner_model(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(f.alias or n for n, f in current.model_fields.items())
    return []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


_TAG = re.compile(r"^(list\[.*\]|dict\[.*\]|constrained-\w+|function-.*|str|int|float|bool|literal\[.*\])$")


def _is_tag(part: Any) -> bool:
    """pydantic names the member of a union it tried inside the location: not a key."""
    return isinstance(part, str) and bool(_TAG.match(part))


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part + 1}]" if out else f"#{part + 1}"
        elif not _is_tag(part):
            key = str(part) if str(part).isprintable() else repr(part)  # a control character must not break the line
            out += f".{key}" if out else key
    return out or "(top level)"


def _pick(errors: list[Any]) -> Any:
    """The error to show: the shallowest; for a union, the branch that matches what was given
    (a list with a bad element reads better than 'input should be a string')."""

    def wrong_branch(e: Any) -> bool:
        tags = [p for p in e["loc"] if _is_tag(p)]
        return bool(tags) and isinstance(e.get("input"), list) and not str(tags[-1]).startswith("list[")

    usable = [e for e in errors if not wrong_branch(e)] or errors
    return min(
        usable,
        key=lambda e: (
            sum(not _is_tag(p) for p in e["loc"]),
            not any(str(p).startswith("list[") for p in e["loc"]),
        ),
    )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(exc: ValidationError, model: type[BaseModel], where: str) -> str:
    """The first error of a validation failure as one line: where, key path, what was expected."""
    error = _pick(exc.errors())
    loc = tuple(error["loc"])
    if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        key = str(loc[-1])
        parent = _path(loc[:-1])
        table = f" in {parent}" if loc[:-1] else ""
        return f"{where}: unknown setting {key!r}{table}{closest(key, _known(model, loc))}"
    if error["type"] == "missing":
        return f"{where}: {_path(loc)} is required"
    return f"{where}: {_path(loc)}: {error['msg'][0].lower() + error['msg'][1:]}, got {_shown(error.get('input'))}"


def validate(model: type[T], data: Any, where: str | Path) -> T:
    """`data` as `model`, or one UserError line. `model` is a schema above, or a frozen dataclass of
    ours that is its own schema through its `__pydantic_config__` (a search trial), so the two
    cannot drift apart; such a row is checked in JSON mode, which types strictly without asking
    for a dataclass instance."""
    try:
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model.model_validate(data)  # type: ignore[return-value]
        return _adapter(model).validate_json(json.dumps(data))
    except ValidationError as exc:
        raise UserError(describe(exc, model if issubclass(model, BaseModel) else BaseModel, str(where))) from None


_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def _adapter(cls: type[T]) -> TypeAdapter[T]:
    if cls not in _ADAPTERS:  # building one costs more than validating a row: once per class
        _ADAPTERS[cls] = TypeAdapter(cls)
    return _ADAPTERS[cls]


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file the user wrote (a plan, a training config), or one UserError line: missing,
    unreadable, not UTF-8 (where), or not TOML. A byte-order mark, which Windows editors write, is
    taken as the UTF-8 it announces (tomllib refuses it: 'Invalid statement' at line 1, column 1)."""

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise not_utf8(f"{what} {path}", exc) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise UserError(f"{path} is not a {what} (nested too deeply)") from None
