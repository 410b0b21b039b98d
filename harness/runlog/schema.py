"""What a run folder holds, typed: the manifest's facts and the records of samples.jsonl and
latency.jsonl. Read with harness.core.schema.validate: the keys the report reads are checked,
keys added by later versions are tolerated (`Stored`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from harness.core.schema import NonNegativeInt, PositiveInt, PricesTable, ShownName, Stored


class CurvePoint(Stored):
    step: int | None = None
    epoch: float | None = None
    loss: float | None = None
    val_loss: float | None = None


class AdapterFacts(Stored):
    """What the report reads of an adapter arm in a manifest."""

    train_size: PositiveInt | None = None
    seed: int = 0
    train_device_s: Annotated[float, Field(ge=0)] = 0.0
    side: Literal["adapter", "combined"] | None = None
    built_on: str | None = None
    constrained: bool = False
    val_loss_rising: bool | None = None
    loss_curve: list[CurvePoint] = []
    val_curve: list[CurvePoint] = []


class SearchTrialFacts(Stored):
    number: int | None = None
    params: dict[str, Any] = {}
    metric: float
    device_s: Annotated[float, Field(ge=0)] | None = None


class SearchFacts(Stored):
    method: str = ""
    trials: list[SearchTrialFacts] = []


class DataCheckFacts(Stored):
    warnings: list[str] = []
    label_counts: dict[str, NonNegativeInt] = {}
    n_train: NonNegativeInt | None = None
    n_pool: NonNegativeInt | None = None  # the shot pool: training rows less validation and leaked rows
    leaked_rows: NonNegativeInt = 0


class ValidationFacts(Stored):
    labels_covered: Annotated[list[NonNegativeInt], Field(min_length=2, max_length=2)] | None = None  # (present, of)


class FormatArm(Stored):
    name: Annotated[ShownName, Field(min_length=1)]
    describe: str = ""


class FormatsFacts(Stored):
    """The format spread: perturbed formats of the selected prompt `of`, scored on the test items."""

    of: Annotated[str, Field(min_length=1)]
    asked: int = 0
    variants: list[FormatArm] = []


class TaskFacts(Stored):
    metrics: Annotated[list[str], Field(min_length=1)]
    labels: list[ShownName] | None = None
    kind: str | None = None
    adapters: dict[str, AdapterFacts] = {}
    data_check: DataCheckFacts = DataCheckFacts()
    validation: ValidationFacts | None = None
    search: dict[str, SearchFacts] = {}
    selected_prompt: ShownName | None = None
    formats: FormatsFacts | None = None
    cluster_field: str | None = None
    clusters: dict[str, str] | None = None  # test item -> the source it shares with others


class RetentionFacts(Stored):
    metrics: Annotated[list[str], Field(min_length=1)]
    labels: list[str] = []
    kind: str | None = None


class Manifest(Stored):
    run_id: str | None = None
    model: str | None = None
    backend: str | None = None
    seed: int = 0
    prices: PricesTable = PricesTable()
    retention: dict[str, dict[str, RetentionFacts]] = {}
    tasks: Annotated[dict[ShownName, TaskFacts], Field(min_length=1)]


class Record(Stored):
    """One line of samples.jsonl / validation.jsonl."""

    task: ShownName
    item: str
    variant: ShownName
    scores: dict[str, float]
    prediction: str | None
    gold: str
    prompt_tokens: NonNegativeInt
    completion_tokens: NonNegativeInt
    latency_s: Annotated[float, Field(ge=0)]


class LatencyRecord(Stored):
    """One line of latency.jsonl: a request sent alone and its wall time."""

    task: str
    item: str
    variant: str
    latency_s: Annotated[float, Field(ge=0)]
    completion_tokens: NonNegativeInt = 0
