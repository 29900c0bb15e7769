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
    # Attribute docstrings become the descriptions of plan.schema.json.
    model_config = ConfigDict(extra="forbid", frozen=True,
                              use_attribute_docstrings=True)


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
    """Name of the step."""
    arg: Any = None
    """Argument of the step: a zero_pad width, a replace pattern, a map table or a
    default value; null for steps without one."""


class FieldPlan(_Model):
    """A typed field of an entity with its owner, constraints and normalizers."""

    name: str
    """Field name, unique in its entity."""
    type: FieldType
    """Canonical type the raw value is converted to."""
    owner: str
    """Id of the system of record, or 'syncplan' for a derived field."""
    required: bool = False
    """A record without a value for this field is an error record."""
    normalize: list[Normalizer] = Field(default_factory=list)
    """Steps applied to the raw text, in order, before type conversion."""
    pattern: str | None = None
    """Regular expression (Python syntax) the whole value must match."""
    minimum: float | None = None
    """Smallest allowed number."""
    maximum: float | None = None
    """Largest allowed number."""
    min_length: int | None = None
    """Minimum number of characters."""
    max_length: int | None = None
    """Maximum number of characters."""
    scale: int | None = None
    """decimal and money: digits after the decimal point, rounded half up."""
    values: list[str] | None = None
    """enum: the allowed canonical values."""
    synonyms: dict[str, str] | None = None
    """enum: other spellings mapped to a canonical value."""
    currency: str | None = None
    """money: ISO 4217 currency code of the amount."""
    formats: list[str] | None = None
    """date and datetime: strptime formats accepted besides ISO 8601."""
    timezone: str | None = None
    """datetime: IANA zone given to values that carry none."""
    derived: str | None = None
    """Jinja2 template computing the field from the other fields of the record."""


class EntityPlan(_Model):
    """A canonical record type: its key fields and its fields in declared order."""

    id: str
    """Entity id."""
    key: list[str]
    """Fields that identify a record."""
    fields: list[FieldPlan]
    """Fields in declared order, which is also their column order."""


class RateLimit(_Model):
    """A token bucket: ``requests`` tokens refilled every ``per_seconds``."""

    requests: int
    """Tokens in the bucket: requests allowed per period."""
    per_seconds: float
    """Length of the period in seconds."""


class SystemPlan(_Model):
    """One connection with its settings; secrets are references, never values."""

    id: str
    """System id."""
    kind: str
    """Kind of system: csv, json, ndjson, ics, sheets or http."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """Kind-specific settings as written in the spec; secrets stay references."""
    auth: dict[str, Any] | None = None
    """Authentication settings; secrets stay ${env:NAME} or ${file:PATH} references."""
    rate_limit: RateLimit | None = None
    """Request budget of the system."""
    scopes: list[str] = Field(default_factory=list)
    """OAuth scopes the system was granted, sorted."""


class LookupPlan(_Model):
    """Take one field of another entity's canonical record matched by fields."""

    entity: str
    """Entity whose canonical records are searched."""
    match: dict[str, FieldSource]
    """Field of that entity to the source of the value it must equal."""
    take: str
    """Field of the matched record that becomes the value."""


class FieldSource(_Model):
    """Where one mapped value comes from.

    ``path`` is a list of keys and list indexes into the source record, ``template``
    a Jinja2 template rendered in the sandbox, ``value`` a constant and ``lookup``
    a match against the canonical records of another entity.
    """

    kind: Literal["path", "template", "value", "lookup"]
    """Kind of source, which names the one other property that is set."""
    path: list[str | int] | None = None
    """Keys and list indexes into the source record."""
    template: str | None = None
    """Jinja2 template rendered in the sandbox."""
    value: Any = None
    """Constant value."""
    lookup: LookupPlan | None = None
    """Match against the canonical records of another entity."""


class FieldMapping(_Model):
    """The source of one entity field in a flow."""

    field: str
    """Entity field that receives the value."""
    source: FieldSource
    """Source of the value."""


class Window(_Model):
    """A time window for calendar sources, relative to the run's start."""

    days_back: int | None = None
    """Days before the run's start."""
    days_ahead: int | None = None
    """Days after the run's start."""
    start: str | None = None
    """Fixed start date (YYYY-MM-DD)."""
    end: str | None = None
    """Fixed end date (YYYY-MM-DD), exclusive."""


class SourcePlan(_Model):
    """What a flow reads: a system's stream, or the canonical records of an entity."""

    system: str | None = None
    """Id of the system read, when the source is a system."""
    stream: str | None = None
    """Stream of that system."""
    entity: str | None = None
    """Entity whose canonical records are read, when the source is an entity."""
    window: Window | None = None
    """Time window that calendar events are expanded in."""
    cursor: str | None = None
    """Source field whose highest value is kept between runs."""


class Measure(_Model):
    """One aggregated value: ``sum``, ``count``, ``min``, ``max`` or ``first``."""

    name: str
    """Name of the computed value."""
    function: Literal["sum", "count", "min", "max", "first"]
    """Aggregate function."""
    field: str
    """Field the function reads."""


class AggregatePlan(_Model):
    """Group mapped records by fields and compute measures per group."""

    group_by: list[str]
    """Fields that form a group."""
    measures: list[Measure]
    """Values computed per group."""


class MapPlan(_Model):
    entity: str
    """Entity the records become."""
    fields: list[FieldMapping]
    """Source of each mapped field."""


class ColumnPlan(_Model):
    """A destination column: the field, the header written, and accepted aliases."""

    field: str
    """Entity field written in the column."""
    header: str
    """Header written for a new column."""
    aliases: list[str] = Field(default_factory=list)
    """Other headers that identify the same column."""


class DestinationPlan(_Model):
    """Where a flow writes: a system's object (a tab, for sheets) in one write mode."""

    system: str
    """Id of the system written to."""
    object: str
    """What is written: the tab name for sheets."""
    mode: WriteMode
    """Write mode: create, upsert, update, append or mirror."""
    key: list[str] = Field(default_factory=list)
    """Fields that match records to rows; empty for append."""
    idempotency_key: list[str] = Field(default_factory=list)
    """create: fields that make a create safe to repeat."""
    columns: list[ColumnPlan]
    """Columns written, in order."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Settings of the destination's connector, such as the requests of an http
    destination; references to secrets stay references."""


class RetryPlan(_Model):
    attempts: int = 3
    """Attempts in all, the first included."""
    backoff: Literal["exponential", "fixed", "none"] = "exponential"
    """Delay between attempts: exponential with jitter, fixed, or none."""
    base_seconds: float = 0.5
    """First delay in seconds."""
    max_seconds: float = 30.0
    """Maximum delay in seconds."""


class ErrorPolicy(_Model):
    retry: RetryPlan = Field(default_factory=RetryPlan)
    """Retries of failed requests."""
    keep_failed: bool = True
    """Keep failed records in the state store for retry."""


class TriggerPlan(_Model):
    kind: Literal["manual", "schedule", "webhook"]
    """When the flow runs: manual, schedule or webhook."""
    schedule: str | None = None
    """Five-field cron expression in UTC, for kind schedule."""
    system: str | None = None
    """System whose webhook starts the flow, for kind webhook."""
    event: str | None = None
    """Webhook event type, for kind webhook."""


class FlowPlan(_Model):
    """One flow: trigger, source, filter, mapping, destinations and error policy."""

    id: str
    """Flow id."""
    description: str | None = None
    """Free text from the spec."""
    trigger: TriggerPlan
    """When the flow runs."""
    source: SourcePlan
    """Source of the records."""
    filter: str | None = None
    """Jinja2 expression; records for which it is false are skipped."""
    map: MapPlan
    """Mapping of source records into entity records."""
    aggregate: AggregatePlan | None = None
    """Grouping and measures applied before the map."""
    destinations: list[DestinationPlan]
    """Targets the records are written to."""
    on_error: ErrorPolicy = Field(default_factory=ErrorPolicy)
    """Retries and the keeping of failed records."""
    depends_on: list[str] = Field(default_factory=list)
    """Flows that must run first because they produce entities this flow reads."""
    permissions: dict[str, list[str]] | None = None
    """Emails and email domains allowed to see and start the flow."""


class Plan(_Model):
    """A compiled project: systems, entities and flows in execution order."""

    format: Literal["syncplan.plan/1"] = PLAN_FORMAT
    """Plan format version."""
    project: str
    """Project name."""
    spec_hash: str
    """SHA-256 of the spec files this plan was compiled from."""
    systems: dict[str, SystemPlan]
    """Systems by id."""
    entities: dict[str, EntityPlan]
    """Entities by id."""
    flows: list[FlowPlan]
    """Flows in run order: producers before consumers."""

    def entity(self, entity_id: str) -> EntityPlan:
        return self.entities[entity_id]

    def flow(self, flow_id: str) -> FlowPlan:
        for flow in self.flows:
            if flow.id == flow_id:
                return flow
        raise KeyError(flow_id)


LookupPlan.model_rebuild()
FieldSource.model_rebuild()
