"""Semantic checks and lowering of a merged project into plan parts.

The schema has already checked shapes, so this module checks meaning. Every name
must refer to something defined, and mapped values must fit their fields.
Templates must parse and read existing fields, settings must contain no literal
secret, and each write mode must have the key it needs. Ownership and cycles are
checked by ``compiler.ownership`` on the result.

The document read here contains only the items that passed the schema. An item
with a schema error is dropped, and a reference to it is not reported as unknown
(``compiler.partial``). Each ``_lower_*`` method returns the plan model of one
part, or ``None`` when the part has an error; problems are collected, never
raised, so one run reports all.
"""

from __future__ import annotations

import logging
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from jinja2 import TemplateSyntaxError, nodes

from compiler.catalog import (
    CONSTRAINT_TYPES,
    FORMAT_HINT,
    KINDS,
    TYPE_FIT,
    constraint_types_text,
    header_key,
    unknown_directive,
)
from compiler.cron import CRON_HINT, cron_problem
from compiler.diagnostics import Diagnostic, choices_hint, has_errors
from compiler.loader import join_pointer
from compiler.plan import (
    AggregatePlan,
    ColumnPlan,
    DestinationPlan,
    EntityPlan,
    ErrorPolicy,
    FieldMapping,
    FieldPlan,
    FieldSource,
    FlowPlan,
    LookupPlan,
    MapPlan,
    Measure,
    Normalizer,
    RateLimit,
    RetryPlan,
    SourcePlan,
    SystemPlan,
    TriggerPlan,
    Window,
    make_environment,
)
from compiler.partial import outline_flows
from compiler.project import Project
from compiler.templates import check_template, is_template

logger = logging.getLogger(__name__)

_Lowered = TypeVar("_Lowered")

DERIVED_OWNER = "syncplan"
RESERVED_TABS = frozenset({"errors", "runs"})
SECRET_SETTINGS = ("token", "key", "password", "client_secret", "refresh_token",
                   "credentials")
_REFERENCE = re.compile(r"^\$\{(env|file):([^}:]+)(?::-([^}]*))?\}$")
_ANY_REFERENCE = re.compile(r"\$\{[^}]*\}")
# Shapes of real credentials, so a token pasted into any setting is caught.
_SECRET_SHAPES = re.compile(
    r"(?:sk_live_|sk_test_|xox[abpr]-|ghp_|gho_|github_pat_|AKIA[0-9A-Z]{16}|pat-na1-"
    r"|ya29\.|-----BEGIN [A-Z ]*PRIVATE KEY-----|eyJ[A-Za-z0-9_-]{10,}\.)"
)
_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}
SHEETS_SCOPE = "https://www.googleapis.com/auth/spreadsheets"
SHEETS_READONLY_SCOPE = "https://www.googleapis.com/auth/spreadsheets.readonly"
# The settings each auth type of an http system needs.
HTTP_AUTH_NEEDS = {
    "bearer": ("token",),
    "api_key": ("key",),
    "basic": ("username", "password"),
    "oauth2_client_credentials": ("token_url", "client_id", "client_secret"),
    "oauth2_refresh_token": ("token_url", "client_id", "refresh_token"),
}
# Request headers, query parameters and body keys of an http stream that carry
# credentials, so a literal value in them is caught like one under auth.
_SECRET_HEADER = re.compile(
    r"(?i)^(authorization|proxy-authorization|cookie|x-api-key|api-key|apikey)$"
    r"|secret|password|api[-_]?key|[-_]token$"
)
_SECRET_PARAMETER = re.compile(
    r"(?i)^(key|token|access_token|refresh_token|id_token|auth_token|hapikey"
    r"|signature|sig)$|secret|password|api[-_]?key"
)


@dataclass
class Analysis:
    """The lowered parts of a project, ready for ownership checks and the plan."""

    systems: dict[str, SystemPlan] = field(default_factory=dict)
    entities: dict[str, EntityPlan] = field(default_factory=dict)
    flows: dict[str, FlowPlan] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)


def parse_path(text: str) -> list[str | int]:
    """Split a dotted path such as ``organizer.email`` or ``items[0].id``."""
    parts: list[str | int] = []
    for chunk in text.replace("[", ".").replace("]", "").split("."):
        if chunk == "":
            continue
        parts.append(int(chunk) if chunk.isdigit() else chunk)
    return parts


def is_reference(value: str) -> bool:
    return bool(_REFERENCE.match(value))


class PathFields(dict[str, str]):
    """Declared fields of an http stream, keyed by dotted path into each record.

    A mapping's ``from`` is always split at its dots against these, because an
    http record is nested JSON, while the columns of a CSV file may contain
    dots in their names.
    """

    def type_of(self, path: list[str | int]) -> str | None:
        """Return the type at ``path``, "any" below a declared field, or None."""
        for length in range(len(path), 0, -1):
            declared = self.get(".".join(str(step) for step in path[:length]))
            if declared is not None:
                return declared if length == len(path) else "any"
        return None

    def heads(self) -> set[str]:
        """Return the top-level keys the declared paths start with."""
        return {name.split(".")[0] for name in self}


class Analyzer:
    def __init__(self, project: Project) -> None:
        self.project = project
        self.data = project.data
        self.dropped = project.dropped
        self.result = Analysis()
        # Errors of the files or the schema: the document read here is then
        # only the part of the project without them (see compiler.partial).
        self.partial = has_errors(project.diagnostics)

    # --- helpers ----------------------------------------------------------

    def error(self, code: str, message: str, pointer: str, hint: str | None,
              *, key: bool = False) -> None:
        self.result.diagnostics.append(
            self.project.diagnostic(code, message, pointer, hint, key=key))

    def warning(self, code: str, message: str, pointer: str, hint: str | None) -> None:
        self.result.diagnostics.append(
            self.project.diagnostic(code, message, pointer, hint, severity="warning"))

    def _missing(self, section: str, name: str) -> bool:
        """Tell whether ``name`` is absent because its definition was dropped.

        A reference to it is not reported: the name exists, and the error in
        its definition is reported already.
        """
        return (name not in self.data.get(section, {})
                and self.dropped.may_define(section, name))

    def check_zone(self, name: str, pointer: str) -> bool:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            self.error("E405", f"unknown time zone {name!r}", pointer,
                       "use an IANA name such as 'Europe/London' or 'UTC'")
            return False
        return True

    def check_regex(self, pattern: str, pointer: str) -> bool:
        try:
            re.compile(pattern)
        except re.error as exc:
            self.error("E404", f"invalid regular expression {pattern!r}: {exc}",
                       pointer, "fix the expression (Python 're' syntax)")
            return False
        return True

    def check_format(self, fmt: str, pointer: str) -> bool:
        directive = unknown_directive(fmt)
        if directive is None:
            return True
        shown = f"%{directive}" if directive else "a lone '%' at its end"
        self.error("E407", f"date format {fmt!r} has the unknown directive {shown}",
                   pointer, FORMAT_HINT)
        return False

    def _check_constraints(self, name: str, spec: dict[str, Any],
                           pointer: str) -> bool:
        """Report constraints set on a type they cannot apply to, and empty ranges."""
        ok = True
        for setting, types in CONSTRAINT_TYPES.items():
            if setting in spec and spec["type"] not in types:
                self.error("E408", f"{setting} does not apply to field {name!r} of"
                           f" type {spec['type']!r}", f"{pointer}/{setting}",
                           f"remove {setting!r}, or change the type to one of"
                           f" {constraint_types_text(types)}")
                ok = False
        for low, high in (("minimum", "maximum"), ("min_length", "max_length")):
            if low in spec and high in spec and spec[low] > spec[high]:
                self.error("E408", f"{low} {spec[low]} of field {name!r} is greater"
                           f" than its {high} {spec[high]}", f"{pointer}/{low}",
                           f"make {low} at most {high}, or swap the two")
                ok = False
        return ok

    # --- the whole project ------------------------------------------------

    def run(self) -> Analysis:
        for name, spec in sorted(self.data.get("systems", {}).items()):
            system = self._guarded(self._lower_system, name, spec, "systems")
            if system is not None:
                self.result.systems[name] = system
        for name, spec in sorted(self.data.get("entities", {}).items()):
            entity = self._guarded(self._lower_entity, name, spec, "entities")
            if entity is not None:
                self.result.entities[name] = entity
        for name, spec in sorted(self.data.get("flows", {}).items()):
            flow = self._guarded(self._lower_flow, name, spec, "flows")
            if flow is not None:
                self.result.flows[name] = flow
        self._check_scopes()
        return self.result

    def _guarded(self, lower: Callable[[str, Any, str], _Lowered], name: str,
                 spec: Any, section: str) -> _Lowered | None:
        """Lower one item; in a project with earlier errors, survive a bad one.

        The schema checks have already reported what is wrong with the project,
        and the items with errors are left out, so a failure here means an item
        this module did not expect. The user still gets every diagnostic found
        so far and no traceback. A project without earlier errors gets no such
        guard, so that a bug shows in the tests.
        """
        pointer = join_pointer(f"/{section}", name)
        if not self.partial:
            return lower(name, spec, pointer)
        try:
            return lower(name, spec, pointer)
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
            logger.warning("skipped the checks of %s after an unexpected %s: %s;"
                           " fix the errors reported above and validate again",
                           pointer, type(exc).__name__, exc)
            return None

    # --- systems ----------------------------------------------------------

    def _lower_system(self, name: str, spec: dict[str, Any],
                      pointer: str) -> SystemPlan | None:
        ok = True
        settings = {k: v for k, v in spec.items()
                    if k not in ("kind", "description", "auth", "rate_limit", "scopes")}
        for key, value in sorted(settings.items()):
            ok &= self._check_setting_text(value, join_pointer(pointer, key), key)
        webhook = spec.get("webhook")
        if isinstance(webhook, dict) and "secret" in webhook:
            ok &= self._check_webhook_secret(webhook["secret"],
                                             f"{pointer}/webhook/secret")
        auth = spec.get("auth")
        if auth is not None:
            for key, value in sorted(auth.items()):
                ok &= self._check_setting_text(value, f"{pointer}/auth/{key}", key,
                                               in_auth=True)
        if "timezone" in spec:
            ok &= self.check_zone(spec["timezone"], f"{pointer}/timezone")
        kind = spec["kind"]
        ok &= self._check_kind_settings(name, kind, spec, pointer)
        if kind == "http":
            ok &= self._check_http_system(name, spec, pointer)
        rate_limit = None
        if "rate_limit" in spec:
            limit = spec["rate_limit"]
            rate_limit = RateLimit(requests=limit["requests"],
                                   per_seconds=_PERIODS[limit.get("per", "second")])
        if not ok:
            return None
        return SystemPlan(id=name, kind=kind, settings=settings, auth=auth,
                          rate_limit=rate_limit, scopes=sorted(spec.get("scopes", [])))

    def _check_kind_settings(self, name: str, kind: str, spec: dict[str, Any],
                             pointer: str) -> bool:
        needed = {"csv": "path", "json": "path", "ndjson": "path", "ics": "path",
                  "sheets": "spreadsheet", "http": "base_url"}[kind]
        if needed not in spec:
            self.error("E103", f"system {name!r} of kind {kind!r} needs '{needed}'",
                       pointer, f"add '{needed}:' to the system")
            return False
        if kind == "csv" and "delimiter" in spec:
            delimiter = spec["delimiter"]
            if delimiter != "auto" and len(delimiter.encode("utf-8").decode(
                    "unicode_escape")) != 1:
                self.error("E105", f"delimiter {delimiter!r} must be one character or"
                           " 'auto'", f"{pointer}/delimiter",
                           "use ',', ';', '\\t' or 'auto'")
                return False
        return True

    def _check_webhook_secret(self, value: Any, pointer: str) -> bool:
        if isinstance(value, str) and is_reference(value):
            return True
        self.error("E501", "the webhook secret holds a literal value; secrets must be"
                   " references", pointer, "move the secret out of the spec and"
                   " write ${env:WEBHOOK_SECRET} or ${file:secrets/webhook} instead")
        return False

    def _check_http_system(self, name: str, spec: dict[str, Any], pointer: str) -> bool:
        ok = True
        auth = spec.get("auth")
        if auth is not None:
            ok &= self._check_http_auth(name, auth, f"{pointer}/auth")
        for stream, stream_spec in sorted(spec.get("streams", {}).items()):
            stream_pointer = join_pointer(f"{pointer}/streams", stream)
            for part, pattern in (("headers", _SECRET_HEADER),
                                  ("query", _SECRET_PARAMETER),
                                  ("body", _SECRET_PARAMETER)):
                ok &= self._check_literal_credentials(
                    stream_spec.get(part), pattern, join_pointer(stream_pointer, part),
                    f"{part} of stream {stream!r}")
        return ok

    def _check_http_auth(self, name: str, auth: dict[str, Any], pointer: str) -> bool:
        auth_type = auth["type"]
        if auth_type not in HTTP_AUTH_NEEDS:
            self.error("E104", f"http system {name!r} cannot use auth type"
                       f" {auth_type!r}", f"{pointer}/type",
                       "use one of " + ", ".join(HTTP_AUTH_NEEDS))
            return False
        ok = True
        for needed in HTTP_AUTH_NEEDS[auth_type]:
            if needed not in auth:
                value = ("a reference such as ${env:" + needed.upper() + "}"
                         if needed in SECRET_SETTINGS else "its value")
                self.error("E103", f"auth of type {auth_type!r} of system {name!r}"
                           f" needs {needed!r}", pointer,
                           f"add '{needed}:' under auth with {value}")
                ok = False
        if auth_type == "api_key" and ("header" in auth) == ("query" in auth):
            self.error("E105", f"the api_key auth of system {name!r} needs exactly one"
                       " of 'header' and 'query'", pointer,
                       "add 'header: X-Api-Key' to send the key in a header, or"
                       " 'query: api_key' to send it in the query")
            ok = False
        return ok

    def _check_literal_credentials(self, value: Any, pattern: re.Pattern[str],
                                   pointer: str, where: str) -> bool:
        """Report credential-named entries of ``value`` that hold no reference."""
        if isinstance(value, list):
            return all(self._check_literal_credentials(item, pattern,
                                                       join_pointer(pointer, index),
                                                       where)
                       for index, item in enumerate(value))
        if not isinstance(value, dict):
            return True
        ok = True
        for key, item in sorted(value.items()):
            item_pointer = join_pointer(pointer, key)
            if isinstance(item, dict | list):
                ok &= self._check_literal_credentials(item, pattern, item_pointer,
                                                      where)
            elif (isinstance(item, str) and item and pattern.search(key)
                  and not _ANY_REFERENCE.search(item)):
                self.error("E501", f"{key!r} in the {where} holds a literal value;"
                           " secrets must be references", item_pointer,
                           f"write ${{env:{_env_name(key)}}} (for a header such as"
                           f" Authorization: 'Bearer ${{env:{_env_name(key)}}}'), or"
                           " move the credential under 'auth'")
                ok = False
        return ok

    def _check_setting_text(self, value: Any, pointer: str, key: str, *,
                            in_auth: bool = False) -> bool:
        if isinstance(value, dict):
            return all(self._check_setting_text(v, join_pointer(pointer, k), k,
                                                in_auth=in_auth)
                       for k, v in sorted(value.items()))
        if isinstance(value, list):
            return all(self._check_setting_text(v, join_pointer(pointer, i), key,
                                                in_auth=in_auth)
                       for i, v in enumerate(value))
        if not isinstance(value, str):
            return True
        for match in _ANY_REFERENCE.finditer(value):
            if not _REFERENCE.match(match.group()):
                self.error("E105", f"invalid reference {match.group()!r}", pointer,
                           "write ${env:NAME}, ${env:NAME:-default} or ${file:PATH}")
                return False
        secret_setting = key in SECRET_SETTINGS and (in_auth or key == "credentials")
        if secret_setting and not is_reference(value):
            self.error("E501", f"the setting {key!r} holds a literal value; secrets"
                       " must be references", pointer,
                       f"move the secret out of the spec and write ${{env:"
                       f"{key.upper()}}} or ${{file:secrets/{key}}} instead")
            return False
        if _SECRET_SHAPES.search(value):
            self.error("E501", f"the setting {key!r} looks like it holds a credential",
                       pointer, "move the secret out of the spec and refer to it with"
                       " ${env:NAME} or ${file:PATH}")
            return False
        return True

    def _check_scopes(self) -> None:
        others = outline_flows(self.project.merged.get("flows", {}),
                               self.result.flows, self.dropped)
        for name, system in sorted(self.result.systems.items()):
            spec = self.data["systems"][name]
            if system.kind != "sheets" or "scopes" not in spec:
                continue
            writes = any(d.system == name for flow in self.result.flows.values()
                         for d in flow.destinations)
            if not writes and others.may_write(name):
                continue  # the scope needed depends on a flow not checked
            needed = {SHEETS_SCOPE} if writes else {SHEETS_READONLY_SCOPE}
            granted = set(system.scopes)
            pointer = f"/systems/{name}/scopes"
            satisfied = needed <= granted or (
                needed == {SHEETS_READONLY_SCOPE} and SHEETS_SCOPE in granted)
            if not satisfied:
                missing = ", ".join(sorted(needed - granted))
                self.error("E502", f"system {name!r} lacks the scope {missing} that its"
                           " flows need", pointer, f"add {missing} to 'scopes'")
            extra = granted - needed - {SHEETS_SCOPE} if not writes else granted - needed
            for scope in sorted(extra):
                self.warning("W501", f"system {name!r} is granted {scope!r}, which no"
                             " flow needs", pointer,
                             "remove the scope so the grant is no wider than the use")

    # --- entities ---------------------------------------------------------

    def _lower_entity(self, name: str, spec: dict[str, Any],
                      pointer: str) -> EntityPlan | None:
        ok = True
        fields: list[FieldPlan] = []
        owners = set(self.data.get("systems", {})) | {DERIVED_OWNER}
        # Templates may read a dropped field: it exists, its definition is wrong.
        all_fields = set(spec["fields"]) | self.dropped.fields_of(name)
        for field_name, fspec in spec["fields"].items():
            field_pointer = f"{pointer}/fields/{field_name}"
            lowered = self._lower_field(field_name, fspec, field_pointer, owners,
                                        name, all_fields)
            if lowered is None:
                ok = False
            else:
                fields.append(lowered)
        key = spec["key"] if isinstance(spec["key"], list) else [spec["key"]]
        for index, key_field in enumerate(key):
            if key_field in self.dropped.fields_of(name):
                ok = False  # no plan without its key; its error is reported
            elif key_field not in spec["fields"]:
                where = f"{pointer}/key" + ("" if isinstance(spec["key"], str)
                                            else f"/{index}")
                self.error("E603", f"key {key_field!r} is not a field of entity"
                           f" {name!r}", where,
                           choices_hint(key_field, spec["fields"], "field"))
                ok = False
        if not ok:
            return None
        return EntityPlan(id=name, key=key, fields=fields)

    def _lower_field(self, name: str, spec: dict[str, Any], pointer: str,
                     owners: set[str], entity: str,
                     entity_fields: set[str]) -> FieldPlan | None:
        ok = True
        owner = spec["owner"]
        if owner not in owners and not self.dropped.may_define("systems", owner):
            self.error("E209", f"owner {owner!r} of field {name!r} is not a system",
                       f"{pointer}/owner", choices_hint(owner, owners, "system"))
            ok = False
        if spec.get("derived") is not None:
            if owner != DERIVED_OWNER:
                self.error("E105", f"field {name!r} is derived, so its owner must be"
                           f" {DERIVED_OWNER!r}", f"{pointer}/owner",
                           f"write 'owner: {DERIVED_OWNER}'")
                ok = False
            # A derived template reads the entity record being built.
            for problem in check_template(spec["derived"], entity_fields,
                                          record_source=f"entity {entity!r}"):
                self.error(problem.code, problem.message, f"{pointer}/derived",
                           problem.hint)
                ok = False
        if spec["type"] == "enum" and not spec.get("values"):
            self.error("E103", f"enum field {name!r} needs 'values'", pointer,
                       "list the allowed values, such as 'values: [open, won, lost]'")
            ok = False
        if "pattern" in spec:
            ok &= self.check_regex(spec["pattern"], f"{pointer}/pattern")
        if "timezone" in spec:
            ok &= self.check_zone(spec["timezone"], f"{pointer}/timezone")
        ok &= self._check_constraints(name, spec, pointer)
        for index, fmt in enumerate(spec.get("formats", [])):
            ok &= self.check_format(fmt, f"{pointer}/formats/{index}")
        values = spec.get("values") or []
        for synonym, target in sorted((spec.get("synonyms") or {}).items()):
            if target not in values:
                self.error("E104", f"synonym {synonym!r} maps to {target!r}, which is"
                           f" not one of the values of field {name!r}",
                           f"{pointer}/synonyms/{synonym}",
                           choices_hint(target, values, "value"))
                ok = False
        normalizers = []
        for index, step in enumerate(spec.get("normalize", [])):
            step_pointer = f"{pointer}/normalize/{index}"
            if isinstance(step, str):
                normalizers.append(Normalizer(op=step))
                continue
            (op, arg), = step.items()
            if op == "replace":
                ok &= self.check_regex(arg["pattern"], f"{step_pointer}/replace/pattern")
            normalizers.append(Normalizer(op=op, arg=arg))
        if not ok:
            return None
        keep = ("required", "pattern", "minimum", "maximum", "min_length", "max_length",
                "scale", "values", "synonyms", "currency", "formats", "timezone",
                "derived")
        extra = {k: spec[k] for k in keep if k in spec}
        return FieldPlan(name=name, type=spec["type"], owner=owner,
                         normalize=normalizers, **extra)

    # --- flows ------------------------------------------------------------

    def _lower_flow(self, name: str, spec: dict[str, Any],
                    pointer: str) -> FlowPlan | None:
        trigger = self._lower_trigger(spec.get("trigger"), f"{pointer}/trigger")
        source, source_fields = self._lower_source(name, spec["source"],
                                                   f"{pointer}/source")
        if source is not None and "aggregate" in spec:
            source_fields = self._aggregate_fields(spec["aggregate"], source_fields,
                                                   f"{pointer}/aggregate")
        ok = trigger is not None and source is not None
        filter_text = spec.get("filter")
        if filter_text is not None:
            record_fields = None if source is None or "aggregate" in spec \
                else _names(source_fields)
            for problem in check_template(filter_text, record_fields, expression=True):
                self.error(problem.code, problem.message, f"{pointer}/filter",
                           problem.hint)
                ok = False
        mapping = self._lower_map(name, spec["map"], f"{pointer}/map",
                                  source_fields if source is not None else None)
        aggregate = None
        if "aggregate" in spec:
            aggregate = AggregatePlan(
                group_by=list(spec["aggregate"]["group_by"]),
                measures=[Measure(name=m, function=next(iter(f)), field=next(iter(
                    f.values()))) for m, f in spec["aggregate"]["measures"].items()])
        entity = self.result.entities.get(spec["map"]["entity"])
        destinations = []
        for index, dspec in enumerate(spec["destinations"]):
            destination = self._lower_destination(
                name, dspec, f"{pointer}/destinations/{index}", entity, mapping)
            ok &= destination is not None
            if destination is not None:
                destinations.append(destination)
        if not ok or mapping is None:
            return None
        retry_spec = spec.get("on_error", {}).get("retry", {})
        return FlowPlan(
            id=name,
            description=spec.get("description"),
            trigger=trigger,
            source=source,
            filter=filter_text,
            map=mapping,
            aggregate=aggregate,
            destinations=destinations,
            on_error=ErrorPolicy(retry=RetryPlan(**retry_spec)),
            permissions=spec.get("permissions"),
        )

    def _lower_trigger(self, spec: dict[str, Any] | None,
                       pointer: str) -> TriggerPlan | None:
        if not spec or "manual" in spec:
            return TriggerPlan(kind="manual")
        if "schedule" in spec:
            problem = cron_problem(spec["schedule"])
            if problem:
                self.error("E406", f"invalid schedule {spec['schedule']!r}: {problem}",
                           f"{pointer}/schedule", CRON_HINT)
                return None
            return TriggerPlan(kind="schedule", schedule=spec["schedule"])
        webhook = spec["webhook"]
        if self._missing("systems", webhook["system"]):
            return None
        if webhook["system"] not in self.data.get("systems", {}):
            self.error("E201", f"unknown system {webhook['system']!r} in the webhook"
                       " trigger", f"{pointer}/webhook/system",
                       choices_hint(webhook["system"], self.data.get("systems", {}),
                                    "system"))
            return None
        return TriggerPlan(kind="webhook", system=webhook["system"],
                           event=webhook.get("event"))

    def _lower_source(self, flow: str, spec: dict[str, Any], pointer: str
                      ) -> tuple[SourcePlan | None, dict[str, str] | None]:
        window = Window(**spec["window"]) if "window" in spec else None
        if "entity" in spec:
            entity_id = spec["entity"]
            entities = self.data.get("entities", {})
            if self._missing("entities", entity_id):
                return None, None
            if entity_id not in entities:
                self.error("E202", f"unknown entity {entity_id!r} in the source of flow"
                           f" {flow!r}", f"{pointer}/entity",
                           choices_hint(entity_id, entities, "entity"))
                return None, None
            fields = {name: f["type"] for name, f in entities[entity_id]["fields"]
                      .items()}
            # A dropped field may be read; its type is not known.
            fields.update(dict.fromkeys(self.dropped.fields_of(entity_id), "any"))
            if not self._check_cursor(spec, fields, pointer):
                return None, None
            return SourcePlan(entity=entity_id, window=window,
                              cursor=spec.get("cursor")), fields
        system_id = spec["system"]
        systems = self.data.get("systems", {})
        if self._missing("systems", system_id):
            return None, None
        if system_id not in systems:
            self.error("E201", f"unknown system {system_id!r} in the source of flow"
                       f" {flow!r}", f"{pointer}/system",
                       choices_hint(system_id, systems, "system"))
            return None, None
        system_spec = systems[system_id]
        kind = KINDS[system_spec["kind"]]
        if not kind.readable:
            self.error("E206", f"system {system_id!r} of kind {system_spec['kind']!r}"
                       " cannot be a source", f"{pointer}/system",
                       "read from a file, calendar or API system instead")
            return None, None
        streams = dict(kind.streams)
        if system_spec["kind"] == "http":
            streams = {s: None for s in system_spec.get("streams", {})}
        stream = spec.get("stream")
        if stream is None and len(streams) == 1:
            stream = next(iter(streams))
        if stream not in streams:
            where = f"{pointer}/stream" if "stream" in spec else pointer
            shown = "(none)" if stream is None else repr(stream)
            hint = choices_hint(stream or "", streams, "stream")
            if system_spec["kind"] == "http" and not streams:
                hint = (f"declare the endpoint under 'streams:' of system"
                        f" {system_id!r}, such as 'streams: {{deals: {{path: /deals,"
                        " records: results}}'")
            self.error("E204", f"unknown stream {shown} of system {system_id!r}",
                       where, hint)
            return None, None
        info = kind.streams.get(stream)
        fields = info.fields if info is not None else None
        if system_spec["kind"] == "http":
            fields = _http_stream_fields(system_spec["streams"][stream])
        if fields is None and "columns" in system_spec:
            fields = {column: "string" for column in system_spec["columns"]}
        if not self._check_cursor(spec, fields, pointer):
            return None, None
        return SourcePlan(system=system_id, stream=stream, window=window,
                          cursor=spec.get("cursor")), fields

    def _check_cursor(self, spec: dict[str, Any], fields: dict[str, str] | None,
                      pointer: str) -> bool:
        cursor = spec.get("cursor")
        if cursor is None or fields is None or cursor in fields:
            return True
        self.error("E203", f"the cursor names {cursor!r}, which the source does not"
                   " have", f"{pointer}/cursor",
                   choices_hint(cursor, fields, "source field"))
        return False

    def _aggregate_fields(self, spec: dict[str, Any], fields: dict[str, str] | None,
                          pointer: str) -> dict[str, str] | None:
        result: dict[str, str] = {}
        for index, name in enumerate(spec["group_by"]):
            if fields is not None and name not in fields:
                self.error("E203", f"unknown field {name!r} in group_by",
                           f"{pointer}/group_by/{index}",
                           choices_hint(name, fields, "source field"))
                continue
            result[name] = fields[name] if fields is not None else "any"
        for measure, fspec in spec["measures"].items():
            (function, source_field), = fspec.items()
            if fields is not None and source_field not in fields:
                self.error("E203", f"unknown field {source_field!r} in measure"
                           f" {measure!r}", f"{pointer}/measures/{measure}/{function}",
                           choices_hint(source_field, fields, "source field"))
                continue
            if function == "count":
                result[measure] = "integer"
            else:
                result[measure] = fields[source_field] if fields is not None else "any"
        return result

    def _lower_map(self, flow: str, spec: dict[str, Any], pointer: str,
                   source_fields: dict[str, str] | None) -> MapPlan | None:
        entity_id = spec["entity"]
        entities = self.data.get("entities", {})
        if self._missing("entities", entity_id):
            return None
        if entity_id not in entities:
            self.error("E202", f"unknown entity {entity_id!r} in flow {flow!r}",
                       f"{pointer}/entity", choices_hint(entity_id, entities, "entity"))
            return None
        entity = self.result.entities.get(entity_id)
        if entity is None:
            return None
        by_name = {f.name: f for f in entity.fields}
        ok = True
        mappings = []
        for field_name, raw in spec["fields"].items():
            field_pointer = f"{pointer}/fields/{field_name}"
            target = by_name.get(field_name)
            if target is None and self.dropped.may_define_field(entity_id, field_name):
                ok = False
                continue
            if target is None:
                self.error("E203", f"entity {entity_id!r} has no field {field_name!r}",
                           field_pointer, choices_hint(field_name, by_name, "field"),
                           key=True)
                ok = False
                continue
            if target.derived is not None:
                self.error("E105", f"field {field_name!r} is derived and cannot be"
                           " mapped", field_pointer,
                           "remove this mapping; the field is computed from 'derived'",
                           key=True)
                ok = False
                continue
            source = self._lower_field_source(raw, field_pointer, target,
                                              source_fields)
            if source is None:
                ok = False
                continue
            mappings.append(FieldMapping(field=field_name, source=source))
        mapped = {m.field for m in mappings} | {f.name for f in entity.fields
                                                if f.derived is not None}
        for key_field in entity.key:
            if key_field not in mapped and ok:
                self.error("E208", f"flow {flow!r} does not map the key field"
                           f" {key_field!r} of entity {entity_id!r}",
                           f"{pointer}/fields", f"add '{key_field}:' with its source")
                ok = False
        for target in entity.fields:
            if target.required and target.name not in mapped and ok:
                self.error("E208", f"flow {flow!r} does not map the required field"
                           f" {target.name!r} of entity {entity_id!r}",
                           f"{pointer}/fields", f"add '{target.name}:' with its source")
                ok = False
        if not ok:
            return None
        return MapPlan(entity=entity_id, fields=mappings)

    def _lower_field_source(self, raw: Any, pointer: str, target: FieldPlan,
                            source_fields: dict[str, str] | None) -> FieldSource | None:
        if isinstance(raw, str):
            raw = {"template": raw} if is_template(raw) else {"from": raw}
        if "from" in raw:
            path = parse_path(raw["from"])
            if (source_fields is not None and raw["from"] in source_fields
                    and not isinstance(source_fields, PathFields)):
                path = [raw["from"]]
            if not path:
                self.error("E105", f"empty path {raw['from']!r}", pointer,
                           "name a source field")
                return None
            return self._check_path(path, pointer, target, source_fields)
        if "template" in raw:
            names = _names(source_fields)
            problems = check_template(raw["template"], names)
            for problem in problems:
                self.error(problem.code, problem.message, pointer, problem.hint)
            return None if problems else FieldSource(kind="template",
                                                     template=raw["template"])
        if "value" in raw:
            return FieldSource(kind="value", value=raw["value"])
        return self._lower_lookup(raw["lookup"], f"{pointer}/lookup", target,
                                  source_fields)

    def _check_path(self, path: list[str | int], pointer: str, target: FieldPlan,
                    source_fields: dict[str, str] | None) -> FieldSource | None:
        head = path[0]
        if isinstance(source_fields, PathFields):
            return self._check_nested_path(path, pointer, target, source_fields)
        if source_fields is not None and isinstance(head, str):
            if head not in source_fields:
                self.error("E203", f"the source has no field {head!r}", pointer,
                           choices_hint(head, source_fields, "source field"))
                return None
            source_type = source_fields[head] if len(path) == 1 else "any"
            fits = TYPE_FIT.get(source_type)
            if fits is not None and target.type not in fits:
                self.error("E401", f"source field {head!r} is {source_type}, which does"
                           f" not fit the {target.type} field {target.name!r}", pointer,
                           f"map {_article(target.type)} source field, or convert it"
                           " with a template")
                return None
        return FieldSource(kind="path", path=path)

    def _check_nested_path(self, path: list[str | int], pointer: str,
                           target: FieldPlan,
                           source_fields: PathFields) -> FieldSource | None:
        text = ".".join(str(step) for step in path)
        source_type = source_fields.type_of(path)
        if source_type is None:
            self.error("E203", f"the source has no field {text!r}", pointer,
                       choices_hint(text, source_fields, "source field"))
            return None
        fits = TYPE_FIT.get(source_type)
        if fits is not None and target.type not in fits:
            self.error("E401", f"source field {text!r} is {source_type}, which does"
                       f" not fit the {target.type} field {target.name!r}", pointer,
                       f"map {_article(target.type)} source field, or convert it"
                       " with a template")
            return None
        return FieldSource(kind="path", path=path)

    def _lower_lookup(self, spec: dict[str, Any], pointer: str, target: FieldPlan,
                      source_fields: dict[str, str] | None) -> FieldSource | None:
        entity_id = spec["entity"]
        entity = self.result.entities.get(entity_id)
        if entity is None:
            if (entity_id not in self.data.get("entities", {})
                    and not self.dropped.may_define("entities", entity_id)):
                self.error("E202", f"unknown entity {entity_id!r} in a lookup",
                           f"{pointer}/entity",
                           choices_hint(entity_id, self.data.get("entities", {}),
                                        "entity"))
            return None
        by_name = {f.name: f for f in entity.fields}
        ok = True
        if spec["take"] not in by_name and self.dropped.may_define_field(
                entity_id, spec["take"]):
            ok = False
        elif spec["take"] not in by_name:
            self.error("E203", f"entity {entity_id!r} has no field {spec['take']!r}",
                       f"{pointer}/take", choices_hint(spec["take"], by_name, "field"))
            ok = False
        elif target.type not in TYPE_FIT.get(by_name[spec["take"]].type, frozenset()):
            self.error("E401", f"lookup takes the {by_name[spec['take']].type} field"
                       f" {spec['take']!r}, which does not fit the {target.type} field"
                       f" {target.name!r}", f"{pointer}/take",
                       "take a field of a fitting type")
            ok = False
        match: dict[str, FieldSource] = {}
        for match_field, raw in spec["match"].items():
            match_pointer = f"{pointer}/match/{match_field}"
            if match_field not in by_name and self.dropped.may_define_field(
                    entity_id, match_field):
                ok = False
                continue
            if match_field not in by_name:
                self.error("E203", f"entity {entity_id!r} has no field {match_field!r}",
                           match_pointer, choices_hint(match_field, by_name, "field"),
                           key=True)
                ok = False
                continue
            source = self._lower_field_source(raw, match_pointer, by_name[match_field],
                                              source_fields)
            if source is None:
                ok = False
            else:
                match[match_field] = source
        if not ok:
            return None
        return FieldSource(kind="lookup", lookup=LookupPlan(entity=entity_id,
                                                            match=match,
                                                            take=spec["take"]))

    def _lower_destination(self, flow: str, spec: dict[str, Any], pointer: str,
                           entity: EntityPlan | None,
                           mapping: MapPlan | None) -> DestinationPlan | None:
        systems = self.data.get("systems", {})
        system_id = spec["system"]
        if self._missing("systems", system_id):
            return None
        if system_id not in systems:
            self.error("E201", f"unknown system {system_id!r} in a destination of flow"
                       f" {flow!r}", f"{pointer}/system",
                       choices_hint(system_id, systems, "system"))
            return None
        kind = systems[system_id]["kind"]
        if not KINDS[kind].writable:
            self.error("E207", f"system {system_id!r} of kind {kind!r} cannot be"
                       " written", f"{pointer}/system",
                       "write to a sheets or http system")
            return None
        if kind == "sheets" and spec["object"].strip().lower() in RESERVED_TABS:
            self.error("E105", f"the tab name {spec['object']!r} is reserved for"
                       " syncplan's own tab", f"{pointer}/object",
                       "choose another tab name")
            return None
        if entity is None:
            return None
        fields_by_name = {f.name: f for f in entity.fields}
        ok = True

        def field_list(name: str, default: list[str]) -> list[str]:
            nonlocal ok
            raw = spec.get(name)
            if raw is None:
                return default
            items = [raw] if isinstance(raw, str) else list(raw)
            for index, item in enumerate(items):
                if item not in fields_by_name and self.dropped.may_define_field(
                        entity.id, item):
                    ok = False
                elif item not in fields_by_name:
                    where = f"{pointer}/{name}" + ("" if isinstance(raw, str)
                                                   else f"/{index}")
                    self.error("E603", f"{name} {item!r} is not a field of entity"
                               f" {entity.id!r}", where,
                               choices_hint(item, fields_by_name, "field"))
                    ok = False
            return items

        mode = spec["mode"]
        key = field_list("key", list(entity.key))
        idempotency_key = field_list("idempotency_key", [])
        if mode == "create" and "idempotency_key" not in spec:
            self.error("E601", f"destination {system_id}/{spec['object']} creates"
                       " records but names no idempotency key", f"{pointer}/mode",
                       "add 'idempotency_key: <field>' so a repeated run never"
                       " creates twice")
            ok = False
        if mode == "mirror" and "key" not in spec:
            self.error("E602", f"destination {system_id}/{spec['object']} mirrors"
                       " records but names no key", f"{pointer}/mode",
                       "add 'key: <field>'; mirror deletes rows by it, so it must be"
                       " explicit")
            ok = False
        if mode == "append":
            key = []
        if mode == "create":
            key = idempotency_key
        if kind == "http" or "http" in spec:
            fields = field_list("fields", []) if "fields" in spec else None
            if not ok:
                return None
            return self._lower_http_destination(flow, spec, pointer, kind, entity, key,
                                                idempotency_key, fields)
        default_fields = [f.name for f in entity.fields]
        written = field_list("fields", default_fields)
        for key_field in key:
            if key_field not in written:
                written = [key_field, *written]
        columns_spec = spec.get("columns", {})
        for field_name in columns_spec:
            if (field_name not in written and "fields" not in spec
                    and self.dropped.may_define_field(entity.id, field_name)):
                # Written by default, but its definition has a reported error.
                ok = False
                continue
            if field_name not in written:
                self.error("E203", f"columns names {field_name!r}, which this"
                           " destination does not write", f"{pointer}/columns/"
                           f"{field_name}", choices_hint(field_name, written, "field"),
                           key=True)
                ok = False
        if not ok:
            return None
        columns = []
        for field_name in written:
            column = columns_spec.get(field_name, field_name)
            if isinstance(column, str):
                columns.append(ColumnPlan(field=field_name, header=column))
            else:
                columns.append(ColumnPlan(field=field_name, header=column["header"],
                                          aliases=column.get("aliases", [])))
        if not self._check_headers(spec, columns, pointer):
            return None
        return DestinationPlan(system=system_id, object=spec["object"], mode=mode,
                               key=key, idempotency_key=idempotency_key,
                               columns=columns)

    def _check_headers(self, spec: dict[str, Any], columns: list[ColumnPlan],
                       pointer: str) -> bool:
        """Report two columns of a destination whose headers or aliases match.

        The sheet layer matches header cells ignoring case and runs of spaces, so
        such columns would read and write the same cell.
        """
        label = f"{spec['system']}/{spec['object']}"
        seen: dict[str, str] = {}
        ok = True
        for column in columns:
            names = [(column.header, self._header_pointer(spec, column.field,
                                                          pointer), "header")]
            column_pointer = join_pointer(f"{pointer}/columns", column.field)
            names += [(alias, f"{column_pointer}/aliases/{index}", "alias")
                      for index, alias in enumerate(column.aliases)]
            keys = set()
            for text, where, role in names:
                key = header_key(text)
                if not key:
                    # The sheet layer never matches a blank header cell, so the
                    # column would be added again on every run.
                    self.error("E105", f"destination {label}: field {column.field!r}"
                               " has a blank header or alias", where,
                               "write the header text, or remove the blank alias")
                    ok = False
                    continue
                if key in keys:
                    continue  # an alias equal to the column's own header
                keys.add(key)
                other = seen.setdefault(key, column.field)
                if other == column.field:
                    continue
                hint = (f"give field {column.field!r} a distinct header under"
                        f" 'columns:', such as '{column.field}:"
                        f" {' '.join(text.split())} 2'") if role == "header" else (
                    f"remove the alias {text!r} or make it distinct")
                self.error("E604", f"destination {label}: the {role} {text!r} of"
                           f" field {column.field!r} matches a header or alias of"
                           f" field {other!r}, because headers are compared ignoring"
                           " case and spaces", where, hint)
                ok = False
        return ok

    @staticmethod
    def _header_pointer(spec: dict[str, Any], field_name: str, pointer: str) -> str:
        """Return the pointer of the spec node that gives a column its header."""
        column = spec.get("columns", {}).get(field_name)
        if isinstance(column, str):
            return join_pointer(f"{pointer}/columns", field_name)
        if isinstance(column, dict):
            return join_pointer(f"{pointer}/columns", field_name) + "/header"
        written = spec.get("fields")
        if isinstance(written, list) and field_name in written:
            return f"{pointer}/fields/{written.index(field_name)}"
        return pointer

    # --- http destinations --------------------------------------------------

    def _lower_http_destination(self, flow: str, spec: dict[str, Any], pointer: str,
                                kind: str, entity: EntityPlan, key: list[str],
                                idempotency_key: list[str],
                                fields: list[str] | None) -> DestinationPlan | None:
        """Check the ``http`` block of a destination and lower it into its options.

        The destination's columns are the entity fields its templates read (or
        its explicit ``fields``), so the ownership checks see what each request
        sends. A key field owned by the destination system is left out of the
        columns, because sending it back only names the record it belongs to,
        such as the deal a note is attached to, and overwrites nothing.
        """
        label = f"{spec['system']}/{spec['object']}"
        http = spec.get("http")
        if kind != "http":
            self.error("E105", f"destination {label} has 'http' settings, but system"
                       f" {spec['system']!r} is of kind {kind!r}", f"{pointer}/http",
                       "remove 'http', or write to a system of kind http")
            return None
        if http is None:
            self.error("E103", f"destination {label} writes to an http system but has"
                       " no 'http' settings", pointer, "add 'http: {create: {method:"
                       " POST, path: /items, body: {...}}, id: id}'")
            # Lowered as if it sent every field, so that the ownership checks
            # report this destination's problems in the same run. The error
            # above still keeps the project from compiling.
            return self._lowered_http(spec, entity, key, idempotency_key,
                                      fields or [f.name for f in entity.fields], {})
        if not self._check_http_shape(label, spec["mode"], http, pointer):
            return None
        allowed = set(fields if fields is not None else
                      [f.name for f in entity.fields]) | set(key) | set(idempotency_key)
        if fields is None:
            allowed |= self.dropped.fields_of(entity.id)
        record_source = (f"the 'fields' of destination {label}" if fields is not None
                         else f"entity {entity.id!r}")
        checked = self._check_http_templates(flow, label, http, pointer, allowed,
                                             record_source)
        ok = self._check_http_credentials(label, http, pointer)
        if checked is None or not ok:
            return None
        reads, depends = checked
        written = fields if fields is not None else [
            f.name for f in entity.fields if f.name in reads]
        return self._lowered_http(spec, entity, key, idempotency_key, written,
                                  _http_options(http, sorted(depends)))

    def _check_http_templates(self, flow: str, label: str, http: dict[str, Any],
                              pointer: str, allowed: set[str], record_source: str
                              ) -> tuple[set[str], set[str]] | None:
        """Check every template; return the fields read and ``written`` labels used."""
        earlier = self._earlier_labels(flow, pointer)
        reads: set[str] = set()
        depends: set[str] = set()
        ok = True
        for text, where in _http_templates(http, f"{pointer}/http"):
            ok &= self._check_setting_text(text, where, where.rsplit("/", 1)[-1])
            for problem in check_template(text, allowed, record_source=record_source):
                if not _is_http_variable_problem(problem.message):
                    self.error(problem.code, problem.message, where, problem.hint)
                    ok = False
            found_reads, found_labels = _template_reads(text)
            reads |= found_reads
            for found in sorted(found_labels - earlier):
                self.error("E105", f"written[{found!r}] names no destination written"
                           f" before {label} in flow {flow!r}", where,
                           choices_hint(found, earlier, "destination") if earlier
                           else "order the destinations so the one it reads comes"
                           " first")
                ok = False
            depends |= found_labels & earlier
        return (reads, depends) if ok else None

    def _check_http_credentials(self, label: str, http: dict[str, Any],
                                pointer: str) -> bool:
        ok = True
        for part in ("create", "update", "lookup"):
            request = http.get(part) or {}
            for name, pattern in (("headers", _SECRET_HEADER),
                                  ("query", _SECRET_PARAMETER),
                                  ("body", _SECRET_PARAMETER)):
                ok &= self._check_literal_credentials(
                    request.get(name), pattern, f"{pointer}/http/{part}/{name}",
                    f"{name} of the {part} request of {label}")
        return ok

    def _lowered_http(self, spec: dict[str, Any], entity: EntityPlan, key: list[str],
                      idempotency_key: list[str], written: list[str],
                      options: dict[str, Any]) -> DestinationPlan:
        owners = {f.name: f.owner for f in entity.fields}
        columns = [ColumnPlan(field=name, header=name) for name in written
                   if not (name in key and owners[name] == spec["system"])]
        return DestinationPlan(system=spec["system"], object=spec["object"],
                               mode=spec["mode"], key=key,
                               idempotency_key=idempotency_key, columns=columns,
                               options={"http": options})

    def _check_http_shape(self, label: str, mode: str, http: dict[str, Any],
                          pointer: str) -> bool:
        if mode in ("append", "mirror"):
            self.error("E104", f"destination {label}: mode {mode!r} is not supported"
                       " by http destinations", f"{pointer}/mode",
                       "use create, upsert or update")
            return False
        ok = True
        needs = {"create": ("create",), "upsert": ("create", "update"),
                 "update": ("update",)}[mode]
        for part in needs:
            if part not in http:
                self.error("E103", f"destination {label} in mode {mode!r} needs"
                           f" 'http.{part}'", f"{pointer}/http",
                           f"add '{part}: {{method: ..., path: ..., body: {{...}}}}'")
                ok = False
        return ok

    def _earlier_labels(self, flow: str, pointer: str) -> set[str]:
        """Return system/object of the destinations before this one in the flow."""
        index = int(pointer.rsplit("/", 1)[1])
        destinations = self.data["flows"][flow]["destinations"][:index]
        return {f"{d['system']}/{d['object']}" for d in destinations}


def _article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _names(fields: dict[str, str] | None) -> set[str] | None:
    if isinstance(fields, PathFields):
        return fields.heads()
    return None if fields is None else set(fields)


def _http_stream_fields(stream: dict[str, Any]) -> PathFields | None:
    """Return the declared fields of an http stream, or None when it declares none."""
    declared = stream.get("fields")
    if declared is None:
        return None
    return PathFields({name: spec["type"] if isinstance(spec, dict) else spec
                       for name, spec in declared.items()})


def _env_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_").upper() or "SECRET"


# Variables that http destination templates see besides TEMPLATE_VARIABLES.
HTTP_TEMPLATE_VARIABLES = ("written", "id", "key")
_HTTP_REQUEST_PARTS = ("path", "query", "headers", "body")
_TEMPLATE_ENV = make_environment()


def _http_templates(http: dict[str, Any], pointer: str) -> list[tuple[str, str]]:
    """Return every template text of an http block with its JSON pointer."""
    found: list[tuple[str, str]] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, str):
            found.append((value, where))
        elif isinstance(value, dict):
            for name, item in value.items():
                walk(item, join_pointer(where, name))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, join_pointer(where, index))

    for part in ("create", "update", "lookup"):
        request = http.get(part)
        if not isinstance(request, dict):
            continue
        for name in _HTTP_REQUEST_PARTS:
            if name in request:
                walk(request[name], f"{pointer}/{part}/{name}")
    match = (http.get("lookup") or {}).get("match") or {}
    if isinstance(match.get("value"), str):
        found.append((match["value"], f"{pointer}/lookup/match/value"))
    return found


def _is_http_variable_problem(message: str) -> bool:
    # check_template accepts only TEMPLATE_VARIABLES. These names exist in http
    # destination templates, so its "unknown variable" problems about them go.
    return any(message.endswith(f"names the unknown variable {name!r}")
               for name in HTTP_TEMPLATE_VARIABLES)


def _template_reads(text: str) -> tuple[set[str], set[str]]:
    """Return the record fields a template reads and the ``written`` labels it uses.

    A template that does not parse reads nothing here; check_template reports it.
    """
    try:
        tree = _TEMPLATE_ENV.parse(text)
    except TemplateSyntaxError:
        return set(), set()
    reads: set[str] = set()
    labels: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not isinstance(target, nodes.Name):
            continue
        name = node.attr if isinstance(node, nodes.Getattr) else (
            node.arg.value if isinstance(node.arg, nodes.Const) else None)
        if not isinstance(name, str):
            continue
        if target.name == "record":
            reads.add(name)
        elif target.name == "written":
            labels.add(name)
    return reads, labels


def _http_options(http: dict[str, Any], depends_on: list[str]) -> dict[str, Any]:
    """Return the runtime options of an http destination, with defaults filled in."""
    options: dict[str, Any] = {"depends_on": depends_on}
    defaults = {"create": "POST", "update": "PATCH", "lookup": "GET"}
    for part, method in defaults.items():
        if part in http:
            request = dict(http[part])
            request["method"] = str(request.get("method", method)).upper()
            options[part] = request
    for name in ("id", "idempotency_header"):
        if name in http:
            options[name] = http[name]
    return options
