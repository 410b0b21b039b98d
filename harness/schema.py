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

import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import UserError, closest

M = TypeVar("M", bound=BaseModel)

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Method = Literal["grid", "random", "tpe"]


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


class VariantTable(Strict):
    name: Annotated[str, Field(min_length=1)] | None = None
    template: Annotated[str, Field(min_length=1)]
    shots: NonNegativeInt = 0
    selection: Literal["random", "balanced", "similar"] = "random"
    constrained: bool = False
    max_tokens: PositiveInt | None = None
    cue: str = ""
    label_order: Literal["given", "reversed", "sorted", "shuffled"] = "given"


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
    seed: int | None = None
    precision: Literal["auto", "fp32", "bf16", "fp16"] | None = None
    early_stopping_patience: PositiveInt | None = None

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
    name: Annotated[str, Field(min_length=1)]
    variants: list[VariantTable] = []
    train_sizes: list[PositiveInt] = []
    seeds: Annotated[list[int], Field(min_length=1)] = [0]
    train: TrainTable = TrainTable()
    sweep: SweepTable | None = None
    retention: list[str] | None = None
    prompt_search: PromptSearchTable | None = None

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
    seed: int = 0
    val_limit: PositiveInt = 100
    prices: PricesTable = PricesTable()
    task: Annotated[list[TaskTable], Field(min_length=1)]


class AdapterConfig(Stored):
    """The keys of a peft adapter_config.json the harness reads."""

    r: PositiveInt
    lora_alpha: float | None = None
    target_modules: list[str] | str | None = None
    peft_type: str | None = None


class TaskFacts(Stored):
    metrics: Annotated[list[str], Field(min_length=1)]
    labels: list[str] | None = None
    kind: str | None = None
    adapters: dict[str, dict[str, Any]] = {}


class Manifest(Stored):
    run_id: str | None = None
    tasks: dict[str, TaskFacts]


class Record(Stored):
    """One line of samples.jsonl / validation.jsonl."""

    task: str
    item: str
    variant: str
    scores: dict[str, float | None]
    prediction: Any = None
    gold: Any = None
    prompt_tokens: NonNegativeInt | None = None
    completion_tokens: NonNegativeInt | None = None
    latency_s: float | None = None


class TrialRecord(BaseModel):
    """One line of a search's trials.jsonl: exactly the fields of sweep.Trial."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    number: NonNegativeInt
    params: dict[str, Any]
    metric: float
    train_loss: float | None
    val_loss: float | None
    wall_s: float
    device_s: float
    adapter: str


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
    import typing

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
            out += f".{part}" if out else str(part)
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
    if error["type"] == "extra_forbidden":
        key = str(loc[-1])
        parent = _path(loc[:-1])
        table = f" in {parent}" if loc[:-1] else ""
        return f"{where}: unknown setting {key!r}{table}{closest(key, _known(model, loc))}"
    if error["type"] == "missing":
        return f"{where}: {_path(loc)} is required"
    return f"{where}: {_path(loc)}: {error['msg'][0].lower() + error['msg'][1:]}, got {_shown(error.get('input'))}"


def validate(model: type[M], data: Any, where: str | Path) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(describe(exc, model, str(where))) from None
