"""The sync plan: the compiled, executable form of a spec project.

The compiler lowers a spec project into these models and writes them as JSON with
sorted keys; the runtime loads that JSON back into them. Everything here is plain
data: references to secrets stay ``${env:NAME}`` / ``${file:PATH}`` strings, and
paths stay relative to the project root, so the same spec always gives the same
bytes wherever it is compiled.

Lists are used wherever order matters (fields, which become sheet columns, and
flows, which run in dependency order), because the JSON is written with sorted keys
and dict order would not survive.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PLAN_FORMAT = "syncplan.plan/1"

FieldType = Literal[
    "string",
    "integer",
    "decimal",
    "boolean",
    "date",
    "datetime",
    "duration",
    "email",
    "url",
    "enum",
    "money",
]

WriteMode = Literal["create", "upsert", "update", "append", "mirror"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Normalizer(_Model):
    """One normalization step applied to a raw value before type conversion."""

    op: Literal[
        "trim",
        "collapse_spaces",
        "lower",
        "upper",
        "title",
        "zero_pad",
        "replace",
        "map",
        "default",
        "strip_invisible",
    ]
    arg: Any = None


class FieldPlan(_Model):
    """A typed field of an entity with its owner, constraints and normalizers."""

    name: str
    type: FieldType
    owner: str
    required: bool = False
    normalize: list[Normalizer] = Field(default_factory=list)
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    scale: int | None = None
    values: list[str] | None = None
    synonyms: dict[str, str] | None = None
    currency: str | None = None
    formats: list[str] | None = None
    timezone: str | None = None
    derived: str | None = None


class EntityPlan(_Model):
    """A canonical record type: its key fields and its fields in declared order."""

    id: str
    key: list[str]
    fields: list[FieldPlan]


class RateLimit(_Model):
    """A token bucket: ``requests`` tokens refilled every ``per_seconds``."""

    requests: int
    per_seconds: float


class SystemPlan(_Model):
    """One connection with its settings; secrets are references, never values."""

    id: str
    kind: str
    settings: dict[str, Any] = Field(default_factory=dict)
    auth: dict[str, Any] | None = None
    rate_limit: RateLimit | None = None
    scopes: list[str] = Field(default_factory=list)


class LookupPlan(_Model):
    """Take one field of another entity's canonical record matched by fields."""

    entity: str
    match: dict[str, FieldSource]
    take: str


class FieldSource(_Model):
    """Where one mapped value comes from.

    ``path`` is a list of keys and list indexes into the source record, ``template``
    a Jinja2 template rendered in the sandbox, ``value`` a constant and ``lookup``
    a match against the canonical records of another entity.
    """

    kind: Literal["path", "template", "value", "lookup"]
    path: list[str | int] | None = None
    template: str | None = None
    value: Any = None
    lookup: LookupPlan | None = None


class FieldMapping(_Model):
    """The source of one entity field in a flow."""

    field: str
    source: FieldSource


class Window(_Model):
    """A time window for calendar sources, relative to the run's start."""

    days_back: int | None = None
    days_ahead: int | None = None
    start: str | None = None
    end: str | None = None


class SourcePlan(_Model):
    """What a flow reads: a system's stream, or the canonical records of an entity."""

    system: str | None = None
    stream: str | None = None
    entity: str | None = None
    window: Window | None = None
    cursor: str | None = None


class Measure(_Model):
    """One aggregated value: ``sum``, ``count``, ``min``, ``max`` or ``first``."""

    name: str
    function: Literal["sum", "count", "min", "max", "first"]
    field: str


class AggregatePlan(_Model):
    """Group mapped records by fields and compute measures per group."""

    group_by: list[str]
    measures: list[Measure]


class MapPlan(_Model):
    entity: str
    fields: list[FieldMapping]


class ColumnPlan(_Model):
    """A destination column: the field, the header written, and accepted aliases."""

    field: str
    header: str
    aliases: list[str] = Field(default_factory=list)


class DestinationPlan(_Model):
    """Where a flow writes: a system's object (a tab, for sheets) in one write mode."""

    system: str
    object: str
    mode: WriteMode
    key: list[str] = Field(default_factory=list)
    idempotency_key: list[str] = Field(default_factory=list)
    columns: list[ColumnPlan]


class RetryPlan(_Model):
    attempts: int = 3
    backoff: Literal["exponential", "fixed", "none"] = "exponential"
    base_seconds: float = 0.5
    max_seconds: float = 30.0


class ErrorPolicy(_Model):
    retry: RetryPlan = Field(default_factory=RetryPlan)
    keep_failed: bool = True


class TriggerPlan(_Model):
    kind: Literal["manual", "schedule", "webhook"]
    schedule: str | None = None
    system: str | None = None
    event: str | None = None


class FlowPlan(_Model):
    """One flow: trigger, source, filter, mapping, destinations and error policy."""

    id: str
    description: str | None = None
    trigger: TriggerPlan
    source: SourcePlan
    filter: str | None = None
    map: MapPlan
    aggregate: AggregatePlan | None = None
    destinations: list[DestinationPlan]
    on_error: ErrorPolicy = Field(default_factory=ErrorPolicy)
    depends_on: list[str] = Field(default_factory=list)
    permissions: dict[str, list[str]] | None = None


class Plan(_Model):
    """A compiled project: systems, entities and flows in execution order."""

    format: Literal["syncplan.plan/1"] = PLAN_FORMAT
    project: str
    spec_hash: str
    systems: dict[str, SystemPlan]
    entities: dict[str, EntityPlan]
    flows: list[FlowPlan]

    def entity(self, entity_id: str) -> EntityPlan:
        return self.entities[entity_id]

    def flow(self, flow_id: str) -> FlowPlan:
        for flow in self.flows:
            if flow.id == flow_id:
                return flow
        raise KeyError(flow_id)


LookupPlan.model_rebuild()
FieldSource.model_rebuild()
