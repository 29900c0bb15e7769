"""Broken spec projects and the exact diagnostic each one must produce.

Every case is a small project written to a temporary folder. The table names the
code, file, line and column of the diagnostic that matters: the first one of the
run, or (with ``first=False``) one that must be somewhere in the list. Most cases
edit one line of ``BASE``, a valid project; the line numbers in its comment make
the expected positions easy to check by eye.

A sample of the cases also runs through the ``syncplan validate`` console
command, to check the exit code, the ``FILE:LINE:COL: error[CODE]:`` line, the
hint and that no traceback reaches the user.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.projects import HTTP_ITEMS_SPEC

from compiler import Diagnostic, compile_project
from compiler.diagnostics import CODES

# Line numbers of BASE, for reading the expected positions below:
#  1 version          7 key: id               13 source
#  2 systems          8 fields                14 map
#  3 crm              9 id                    15 entity: client
#  4 report          10 name                  16 fields: {id: id, name: name}
#  5 entities        11 flows                 17 destinations
#  6 client          12 clients               18 - {system: report, ...}
BASE = """\
version: 1
systems:
  crm: {kind: csv, path: data/crm.csv, columns: [id, name, amount]}
  report: {kind: sheets, spreadsheet: out/report.xlsx}
entities:
  client:
    key: id
    fields:
      id: {type: string, owner: crm}
      name: {type: string, owner: crm}
flows:
  clients:
    source: {system: crm}
    map:
      entity: client
      fields: {id: id, name: name}
    destinations:
      - {system: report, object: Clients, mode: upsert}
"""

# A flow of BASE as it would appear in an included file.
CLIENTS_FLOW = """\
flows:
  clients:
    source: {system: crm}
    map: {entity: client, fields: {id: id}}
    destinations: [{system: report, object: Other, mode: upsert}]
"""

# Three REST systems, 'a' owning both fields of 'item'; flows start at line 13.
HTTP = HTTP_ITEMS_SPEC

# An ics calendar and a report, for type and template cases. Line 14 contains the
# mapped fields; ``calendar`` can insert a filter there, which moves the map to
# line 15.
CALENDAR = """\
version: 1
systems:
  cal: {kind: ics, path: team.ics}
  report: {kind: sheets, spreadsheet: out/r.xlsx}
entities:
  meeting:
    key: uid
    fields:
      uid: {type: string, owner: cal}
      starts: {type: FIELD_TYPE, owner: cal}
flows:
  meetings:
    source: {system: cal, stream: events}
    map: {entity: meeting, fields: {uid: uid, starts: FIELD_SOURCE}}
    destinations: [{system: report, object: Meetings, mode: upsert}]
"""


# The 65th '[' opens the level past the limit, with or without libyaml.
FLOW_DEPTH_COLUMN = 4 + 64 - 1


def edit(old: str, new: str, text: str = BASE) -> str:
    """Return ``text`` with its one occurrence of ``old`` replaced by ``new``."""
    assert text.count(old) == 1, f"{old!r} must occur exactly once"
    return text.replace(old, new)


def with_trigger(trigger: str) -> str:
    """Return BASE with a trigger on line 13, which moves the flow down a line."""
    return edit("  clients:\n", f"  clients:\n    trigger: {trigger}\n")


def including(name: str) -> str:
    """Return BASE including one more file on line 2, which moves the rest down."""
    return edit("version: 1\n", f"version: 1\ninclude: [{name}]\n")


def http_flow(name: str, source: str, destination: str, tab: str = "Items") -> str:
    """Return one flow of the HTTP project, 7 lines long."""
    return (f"  {name}:\n"
            f"    source: {{system: {source}}}\n"
            "    map:\n"
            "      entity: item\n"
            "      fields: {id: id, name: name}\n"
            "    destinations:\n"
            f"      - {{system: {destination}, object: {tab}, mode: upsert, http:"
            f" {{create: {{path: /items, body: {{id: '{{{{ record.id }}}}',"
            f" name: '{{{{ record.name }}}}'}}}}, update: {{path: /items, body:"
            f" {{id: '{{{{ record.id }}}}', name: '{{{{ record.name }}}}'}}}},"
            f" id: id}}}}\n")


def calendar(field_type: str, field_source: str, filter_line: str = "") -> str:
    text = CALENDAR.replace("FIELD_TYPE", field_type).replace("FIELD_SOURCE",
                                                                field_source)
    if filter_line:
        text = edit("    map: {entity: meeting",
                    f"    filter: {filter_line}\n    map: {{entity: meeting", text)
    return text


def alias_bomb() -> str:
    """Return a spec whose aliases would expand to ten billion list items.

    The fifth level (line 12) is the first whose first alias passes the limit.
    """
    lines = ["version: 1", "systems:", "  crm:", "    kind: csv", "    path: a.csv",
             "    settings:", "      x0: &x0 [a, a, a, a, a, a, a, a, a, a]"]
    for level in range(1, 10):
        items = ", ".join([f"*x{level - 1}"] * 10)
        lines.append(f"      x{level}: &x{level} [{items}]")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Case:
    """One broken project and the diagnostic it must produce."""

    id: str
    files: dict[str, str | bytes]
    code: str
    file: str
    line: int
    column: int
    hint: str | None = None
    message: str | None = None
    first: bool = True


def root(text: str | bytes) -> dict[str, str | bytes]:
    return {"syncplan.yaml": text}


CASES: list[Case] = [
    # --- reading files -----------------------------------------------------
    Case("yaml_unclosed_brace", root("version: 1\nsystems: {crm: {kind: csv\n"),
         "E003", "syncplan.yaml", 3, 1, hint="closing brackets",
         message="flow mapping that starts at line 2, column 16"),
    Case("yaml_unclosed_bracket",
         root("version: 1\ninclude: [a.yaml, b.yaml\nsystems: {}\n"),
         "E003", "syncplan.yaml", 3, 8,
         message="flow sequence that starts at line 2, column 10"),
    Case("yaml_bad_indentation",
         root("version: 1\nsystems:\n  crm:\n    kind: csv\n   path: x\n"),
         "E003", "syncplan.yaml", 5, 4, hint="indentation",
         message="block mapping that starts at line 3, column 3"),
    Case("yaml_unclosed_quote", root('version: 1\nproject: "abc\nsystems: {}\n'),
         "E003", "syncplan.yaml", 4, 1,
         message="quoted scalar that starts at line 2, column 10"),
    Case("yaml_unknown_alias", root("version: 1\nproject: *nope\n"),
         "E003", "syncplan.yaml", 2, 10, hint="'&name'"),
    Case("yaml_bad_tagged_value", root("version: !!int abc\n"),
         "E003", "syncplan.yaml", 1, 10, message="'abc' is not a valid"),
    Case("json_trailing_comma", {"syncplan.json": '{\n  "version": 1,\n}\n'},
         "E004", "syncplan.json", 3, 1, hint="trailing comma"),
    Case("json_missing_colon", {"syncplan.json": '{"version" 1}'},
         "E004", "syncplan.json", 1, 12, message="expected ':'"),
    Case("tab_indentation", root("version: 1\nsystems:\n\tcrm: {kind: csv}\n"),
         "E006", "syncplan.yaml", 3, 1, hint="indent with spaces"),
    Case("tab_after_spaces", root("version: 1\nsystems:\n  crm:\n  \tkind: csv\n"),
         "E006", "syncplan.yaml", 4, 3),
    Case("duplicate_top_key", root("version: 1\nversion: 1\n"),
         "E005", "syncplan.yaml", 2, 1, message="first defined at line 1, column 1"),
    Case("duplicate_nested_key",
         root(edit("      name: {type: string, owner: crm}\n",
                   "      name: {type: string, owner: crm}\n"
                   "      id: {type: string, owner: crm}\n")),
         "E005", "syncplan.yaml", 11, 7, message="first defined at line 9, column 7"),
    Case("duplicate_key_flow_style",
         root(edit("{id: id, name: name}", "{id: id, name: name, id: name}")),
         "E005", "syncplan.yaml", 16, 36, message="'id'"),
    Case("json_duplicate_key",
         {"syncplan.json": '{\n  "version": 1,\n  "version": 1\n}\n'},
         "E005", "syncplan.json", 3, 3, message="first defined at line 2, column 3"),
    Case("json_duplicate_nested_key",
         {"syncplan.json": '{\n  "version": 1,\n  "systems": {\n'
                           '    "a": {"kind": "csv", "path": "x", "kind": "json"}\n'
                           "  }\n}\n"},
         "E005", "syncplan.json", 4, 39, message="first defined at line 4, column 11"),
    Case("empty_file", root(""), "E007", "syncplan.yaml", 1, 1),
    Case("comments_only", root("# a spec\n   # to be written\n\n"),
         "E007", "syncplan.yaml", 1, 1, hint="version: 1"),
    Case("null_document", root("~\n"), "E007", "syncplan.yaml", 1, 1,
         message="null"),
    Case("empty_included_file",
         {"syncplan.yaml": including("more.yaml"),
          "more.yaml": "---\n"},
         "E007", "more.yaml", 2, 1),
    Case("nesting_yaml_flow", root("version: 1\nx: " + "[" * 10_000 + "]" * 10_000),
         "E008", "syncplan.yaml", 2, FLOW_DEPTH_COLUMN, hint="flatten"),
    Case("nesting_yaml_block", root("version: 1\nx:\n" + "- " * 10_000 + "x\n"),
         "E008", "syncplan.yaml", 3, 127, message="deeper than 64 levels"),
    Case("nesting_json",
         {"syncplan.json": '{"version": 1, "x": ' + "[" * 10_000 + "]" * 10_000 + "}"},
         "E008", "syncplan.json", 1, 84, message="deeper than 64 levels"),
    Case("junk_10_megabytes", root("junk " * 2_000_000),
         "E009", "syncplan.yaml", 1, 1, message="over the 4 MiB limit",
         hint="include"),
    Case("alias_bomb", root(alias_bomb()), "E009", "syncplan.yaml", 12, 16,
         message="once its aliases are expanded"),
    Case("binary_bytes", root(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"),
         "E010", "syncplan.yaml", 2, 1, hint="binary file", message="U+001A"),
    Case("nul_in_text", root(b"version: 1\nproject: a\x00b\n"),
         "E010", "syncplan.yaml", 2, 11, message="U+0000"),
    Case("invalid_utf8", root(b"version: 1\nproject: \xc3\xa9t\xe9\n"),
         "E002", "syncplan.yaml", 2, 12, hint="UTF-8", message="0xe9"),
    Case("utf16_file", root("version: 1\n".encode("utf-16")),
         "E002", "syncplan.yaml", 1, 1, message="UTF-16"),
    Case("two_yaml_documents", root("version: 1\n---\nversion: 1\n"),
         "E012", "syncplan.yaml", 2, 1, hint="one document per file"),
    Case("python_tag", root("version: 1\nproject: !!python/object:os.system x\n"),
         "E013", "syncplan.yaml", 2, 10, message="python/object"),
    Case("custom_tag_on_mapping", root("version: 1\nsystems: !custom {}\n"),
         "E013", "syncplan.yaml", 2, 10, message="'!custom'"),
    Case("merge_key",
         root("version: 1\nsystems:\n  base: &b {kind: csv, path: a.csv}\n"
              "  crm:\n    <<: *b\n    path: b.csv\n"),
         "E013", "syncplan.yaml", 5, 5, message="'<<'"),
    Case("recursive_alias", root("version: 1\nsystems: &s\n  a: *s\n"),
         "E013", "syncplan.yaml", 3, 6, message="contains it"),
    Case("complex_key", root("version: 1\n? [a, b]\n: 1\n"),
         "E013", "syncplan.yaml", 2, 3, hint="plain name"),
    # --- the project --------------------------------------------------------
    Case("include_matches_nothing",
         root(edit("version: 1\n", "version: 1\ninclude:\n  - flows/*.yaml\n")),
         "E011", "syncplan.yaml", 3, 5, message="'flows/*.yaml'"),
    Case("include_outside_project",
         {"syncplan.yaml": including("../outside.yaml"),
          "../outside.yaml": CLIENTS_FLOW},
         "E011", "syncplan.yaml", 2, 11, message="outside the project folder"),
    Case("flow_defined_twice",
         {"syncplan.yaml": including("more.yaml"),
          "more.yaml": CLIENTS_FLOW},
         "E015", "more.yaml", 2, 3, message="already defined in syncplan.yaml:13:3"),
    Case("flow_defined_twice_json",
         {"syncplan.yaml": including("more.json"),
          "more.json": json.dumps({"flows": {"clients": {}}}, indent=2)},
         "E015", "more.json", 3, 5, message="flow 'clients'", first=False),
    Case("version_in_included_file",
         {"syncplan.yaml": including("more.yaml"),
          "more.yaml": "version: 1\n"},
         "E102", "more.yaml", 1, 1, hint="remove 'version:'"),
    # --- the schema ---------------------------------------------------------
    Case("list_at_top", root("- a\n- b\n"), "E101", "syncplan.yaml", 1, 1,
         message="not array"),
    Case("scalar_at_top", root("hello\n"), "E101", "syncplan.yaml", 1, 1,
         message="not string"),
    Case("json_list_at_top", {"syncplan.json": "[1, 2]"},
         "E101", "syncplan.json", 1, 1),
    Case("string_where_object", root("version: 1\nsystems: crm\n"),
         "E101", "syncplan.yaml", 2, 10, message="expected object, found string"),
    Case("number_where_string", root(edit("path: data/crm.csv", "path: 12")),
         "E101", "syncplan.yaml", 3, 26, message="expected string, found integer 12"),
    Case("unknown_top_key", root(edit("systems:\n", "systemz:\n")),
         "E102", "syncplan.yaml", 2, 1, hint="did you mean 'systems'?", first=False),
    Case("unknown_system_key", root(edit("kind: csv, path", "kind: csv, pth")),
         "E102", "syncplan.yaml", 3, 20, hint="did you mean 'path'?", first=False),
    Case("unknown_field_key", root(edit("id: {type: string, owner: crm}",
                                        "id: {type: string, ownr: crm}")),
         "E102", "syncplan.yaml", 9, 26, hint="did you mean 'owner'?", first=False),
    Case("unknown_destination_key",
         root(edit("mode: upsert}", "mode: upsert, objet: x}")),
         "E102", "syncplan.yaml", 18, 57, hint="did you mean 'object'?"),
    Case("unknown_trigger_key",
         root(with_trigger("{schedul: '0 * * * *'}")),
         "E102", "syncplan.yaml", 13, 15, hint="did you mean 'schedule'?"),
    Case("missing_kind", root(edit("kind: csv, ", "")),
         "E103", "syncplan.yaml", 3, 3, message="'kind'", hint="add 'kind:'"),
    Case("missing_owner",
         root(edit("id: {type: string, owner: crm}", "id: {type: string}")),
         "E103", "syncplan.yaml", 9, 7, message="'owner'"),
    Case("missing_map",
         root(edit("    map:\n      entity: client\n"
                   "      fields: {id: id, name: name}\n", "")),
         "E103", "syncplan.yaml", 12, 3, message="'map'"),
    Case("missing_version", root(edit("version: 1\n", "")),
         "E103", "syncplan.yaml", 1, 1, hint="version: 1"),
    Case("kind_not_allowed", root(edit("kind: csv", "kind: cvs")),
         "E104", "syncplan.yaml", 3, 15, hint="did you mean 'csv'?"),
    Case("mode_not_allowed", root(edit("mode: upsert", "mode: upsrt")),
         "E104", "syncplan.yaml", 18, 49, hint="did you mean 'upsert'?"),
    Case("field_type_not_allowed", root(edit("id: {type: string", "id: {type: strng")),
         "E104", "syncplan.yaml", 9, 18, hint="did you mean 'string'?"),
    Case("version_quoted", root(edit("version: 1", "version: '1'")),
         "E104", "syncplan.yaml", 1, 10, hint="remove the quotes"),
    Case("system_name_invalid", root(edit("  crm: {kind", "  12: {kind")),
         "E105", "syncplan.yaml", 3, 3, message="invalid name '12'", first=False),
    Case("infinite_number",
         root(edit("name: {type: string, owner: crm}",
                   "name: {type: string, owner: crm, minimum: .inf}")),
         "E105", "syncplan.yaml", 10, 49, message="not a finite number"),
    Case("invalid_reference", root(edit("spreadsheet: out/report.xlsx",
                                        'spreadsheet: "${vault:report}"')),
         "E105", "syncplan.yaml", 4, 39, hint="${env:NAME}"),
    Case("reserved_tab_name", root(edit("object: Clients", "object: Errors")),
         "E105", "syncplan.yaml", 18, 34, message="reserved"),
    # --- references ---------------------------------------------------------
    Case("unknown_source_system",
         root(edit("source: {system: crm}", "source: {system: crn}")),
         "E201", "syncplan.yaml", 13, 22, hint="did you mean 'crm'?"),
    Case("unknown_destination_system",
         root(edit("{system: report,", "{system: reprt,")),
         "E201", "syncplan.yaml", 18, 18, hint="did you mean 'report'?"),
    Case("unknown_webhook_system",
         root(with_trigger("{webhook: {system: crmm}}")),
         "E201", "syncplan.yaml", 13, 33, hint="did you mean 'crm'?"),
    Case("unknown_map_entity", root(edit("entity: client\n", "entity: clent\n")),
         "E202", "syncplan.yaml", 15, 15, hint="did you mean 'client'?"),
    Case("unknown_source_entity",
         root(edit("source: {system: crm}", "source: {entity: clien}")),
         "E202", "syncplan.yaml", 13, 22, hint="did you mean 'client'?"),
    Case("unknown_lookup_entity",
         root(edit("name: name}", "name: {lookup: {entity: clint, match: {id: id},"
                   " take: name}}}")),
         "E202", "syncplan.yaml", 16, 48, hint="did you mean 'client'?"),
    Case("unknown_map_field", root(edit("{id: id, name: name}", "{id: id, nme: name}")),
         "E203", "syncplan.yaml", 16, 24, hint="did you mean 'name'?"),
    Case("unknown_source_field", root(edit("name: name}", "name: nam}")),
         "E203", "syncplan.yaml", 16, 30, hint="did you mean 'name'?"),
    Case("unknown_lookup_take",
         root(edit("name: name}", "name: {lookup: {entity: client, match: {id: id},"
                   " take: nme}}}")),
         "E203", "syncplan.yaml", 16, 79, hint="did you mean 'name'?"),
    Case("unknown_lookup_match",
         root(edit("name: name}", "name: {lookup: {entity: client, match: {idd: id},"
                   " take: name}}}")),
         "E203", "syncplan.yaml", 16, 64, hint="did you mean 'id'?"),
    Case("unknown_stream", root(edit("source: {system: crm}",
                                     "source: {system: crm, stream: row}")),
         "E204", "syncplan.yaml", 13, 35, hint="did you mean 'rows'?"),
    Case("unknown_cursor", root(edit("source: {system: crm}",
                                     "source: {system: crm, cursor: amont}")),
         "E203", "syncplan.yaml", 13, 35, hint="did you mean 'amount'?"),
    Case("source_not_readable", root(edit("source: {system: crm}",
                                          "source: {system: report}")),
         "E206", "syncplan.yaml", 13, 22, message="cannot be a source"),
    Case("destination_not_writable", root(edit("{system: report,", "{system: crm,")),
         "E207", "syncplan.yaml", 18, 18, message="cannot be written"),
    Case("key_field_not_mapped", root(edit("{id: id, name: name}", "{name: name}")),
         "E208", "syncplan.yaml", 16, 15, message="key field 'id'"),
    Case("unknown_owner", root(edit("name: {type: string, owner: crm}",
                                    "name: {type: string, owner: crmm}")),
         "E209", "syncplan.yaml", 10, 35, hint="did you mean 'crm'?"),
    Case("entity_key_not_a_field", root(edit("    key: id\n", "    key: code\n")),
         "E603", "syncplan.yaml", 7, 10, hint="'id', 'name'"),
    Case("destination_key_not_a_field",
         root(edit("mode: upsert}", "mode: upsert, key: idd}")),
         "E603", "syncplan.yaml", 18, 62, hint="did you mean 'id'?"),
    # --- ownership ----------------------------------------------------------
    Case("take_from_non_owner",
         root(edit("source: {system: crm}", "source: {system: other}",
                   edit("  report:",
                        "  other: {kind: json, path: o.json}\n  report:"))),
         "E301", "syncplan.yaml", 17, 16, message="its owner is 'crm'",
         hint="lookup"),
    Case("write_into_owner", root(HTTP + http_flow("push", "a", "a")),
         "E302", "syncplan.yaml", 19, 18, message="into 'a', the field's owner"),
    Case("two_flows_one_column",
         root(BASE + "  more_clients:\n    source: {system: crm}\n"
              "    map: {entity: client, fields: {id: id, name: name}}\n"
              "    destinations: [{system: report, object: Clients, mode: upsert}]\n"),
         "E303", "syncplan.yaml", 22, 45,
         message="flows 'clients' and 'more_clients' both write the column 'name'"),
    Case("write_cycle",
         root(HTTP + http_flow("a_to_b", "a", "b") + http_flow("b_to_c", "b", "c")
              + http_flow("c_to_b", "c", "b", tab="Copies")),
         "E304", "syncplan.yaml", 33, 7, message="b -> c -> b"),
    Case("flows_depend_in_loop",
         root("version: 1\nsystems:\n  report: {kind: sheets, spreadsheet: r.xlsx}\n"
              "entities:\n"
              "  x: {key: id, fields: {id: {type: string, owner: syncplan}}}\n"
              "  y: {key: id, fields: {id: {type: string, owner: syncplan}}}\n"
              "flows:\n"
              "  make_x:\n    source: {entity: y}\n"
              "    map: {entity: x, fields: {id: id}}\n"
              "    destinations: [{system: report, object: X, mode: upsert}]\n"
              "  make_y:\n    source: {entity: x}\n"
              "    map: {entity: y, fields: {id: id}}\n"
              "    destinations: [{system: report, object: Y, mode: upsert}]\n"),
         "E305", "syncplan.yaml", 8, 3, message="make_x, make_y"),
    Case("entity_without_producer",
         root("version: 1\nsystems:\n  report: {kind: sheets, spreadsheet: r.xlsx}\n"
              "entities:\n"
              "  x: {key: id, fields: {id: {type: string, owner: syncplan}}}\n"
              "  y: {key: id, fields: {id: {type: string, owner: syncplan}}}\n"
              "flows:\n"
              "  make_y:\n    source: {entity: x}\n"
              "    map: {entity: y, fields: {id: id}}\n"
              "    destinations: [{system: report, object: Y, mode: upsert}]\n"),
         "E205", "syncplan.yaml", 9, 22, message="no flow produces it"),
    Case("lookup_into_own_entity",
         root(edit("name: name}", "name: {lookup: {entity: client, match: {id: id},"
                   " take: name}}}")),
         "E305", "syncplan.yaml", 16, 30, message="which only it produces"),
    # --- types and templates ------------------------------------------------
    Case("datetime_into_integer", root(calendar("integer", "start")),
         "E401", "syncplan.yaml", 14, 55, message="'start' is datetime",
         hint="an integer source field"),
    Case("template_does_not_parse",
         root(edit("name: name}", "name: '{{ record.name '}")),
         "E402", "syncplan.yaml", 16, 30, hint="Jinja2"),
    Case("filter_does_not_parse",
         root(calendar("datetime", "start", filter_line='"record.summary =="')),
         "E402", "syncplan.yaml", 14, 13, message="unexpected 'end of template'"),
    Case("filter_unknown_filter",
         root(calendar("datetime", "start", filter_line='"record.summary | lowr"')),
         "E402", "syncplan.yaml", 14, 13, hint="did you mean 'lower'?"),
    Case("template_unknown_variable",
         root(edit("name: name}", "name: '{{ recrd.name }}'}")),
         "E403", "syncplan.yaml", 16, 30, hint="did you mean 'record'?"),
    Case("template_unknown_ics_field",
         root(calendar("string", "'{{ record.sumary }}'")),
         "E403", "syncplan.yaml", 14, 55, message="record.sumary",
         hint="did you mean 'summary'?"),
    Case("filter_unknown_ics_field",
         root(calendar("datetime", "start", filter_line='"not record.all_dy"')),
         "E403", "syncplan.yaml", 14, 13, hint="did you mean 'all_day'?"),
    Case("derived_unknown_field",
         root(edit("      name: {type: string, owner: crm}\n",
                   "      name: {type: string, owner: crm}\n"
                   "      label: {type: string, owner: syncplan,"
                   " derived: '{{ record.nme | upper }}'}\n")),
         "E403", "syncplan.yaml", 11, 55, message="which entity 'client' does not have",
         hint="did you mean 'name'?"),
    Case("bad_regex", root(edit("name: {type: string, owner: crm}",
                                "name: {type: string, owner: crm, pattern: '([a-z'}")),
         "E404", "syncplan.yaml", 10, 49, message="'([a-z'"),
    Case("bad_time_zone", root(edit("out/report.xlsx}",
                                    "out/report.xlsx, timezone: Europe/Lundon}")),
         "E405", "syncplan.yaml", 4, 66, message="'Europe/Lundon'"),
    Case("cron_minute_out_of_range",
         root(with_trigger("{schedule: '61 * * * *'}")),
         "E406", "syncplan.yaml", 13, 25, message="outside 0-59"),
    Case("cron_four_fields",
         root(with_trigger("{schedule: '* * * *'}")),
         "E406", "syncplan.yaml", 13, 25, message="4 fields, not 5"),
    Case("cron_three_fields", root(with_trigger("{schedule: '* * *'}")),
         "E406", "syncplan.yaml", 13, 25, message="3 fields, not 5", hint="MON-FRI"),
    Case("cron_unknown_day_name", root(with_trigger("{schedule: '0 6 * * MON-FRY'}")),
         "E406", "syncplan.yaml", 13, 25, message="'MON-FRY'"),
    Case("cron_range_backwards", root(with_trigger("{schedule: '0 6 * * 5-1'}")),
         "E406", "syncplan.yaml", 13, 25, message="runs backwards"),
    Case("cron_step_zero", root(with_trigger("{schedule: '*/0 * * * *'}")),
         "E406", "syncplan.yaml", 13, 25, message="step '0'"),
    Case("field_time_zone_unknown",
         root(edit("name: {type: string, owner: crm}",
                   "name: {type: datetime, owner: crm, timezone: Mars/Olympus}")),
         "E405", "syncplan.yaml", 10, 52, message="'Mars/Olympus'"),
    Case("format_unknown_directive",
         root(edit("name: {type: string, owner: crm}",
                   "name: {type: date, owner: crm, formats: ['%d.%m.%Y', '%Q']}")),
         "E407", "syncplan.yaml", 10, 60, message="directive %Q", hint="%Y"),
    Case("format_lone_percent",
         root(edit("name: {type: string, owner: crm}",
                   "name: {type: date, owner: crm, formats: ['%d%']}")),
         "E407", "syncplan.yaml", 10, 48, message="lone '%'", hint="%%"),
    Case("minimum_on_string",
         root(edit("name: {type: string, owner: crm}",
                   "name: {type: string, owner: crm, minimum: 3}")),
         "E408", "syncplan.yaml", 10, 49, message="minimum does not apply",
         hint="decimal, integer and money"),
    Case("maximum_on_date",
         root(edit("name: {type: string, owner: crm}",
                   "name: {type: date, owner: crm, maximum: 3}")),
         "E408", "syncplan.yaml", 10, 47, message="maximum does not apply"),
    Case("pattern_on_integer",
         root(edit("name: {type: string, owner: crm}",
                   "name: {type: integer, owner: crm, pattern: '[0-9]+'}")),
         "E408", "syncplan.yaml", 10, 50, hint="email, enum, string and url"),
    Case("minimum_above_maximum",
         root(edit("name: {type: string, owner: crm}",
                   "name: {type: integer, owner: crm, minimum: 9, maximum: 1}")),
         "E408", "syncplan.yaml", 10, 50, message="greater than its maximum 1"),
    # --- security -----------------------------------------------------------
    Case("literal_token_in_auth",
         root(edit("  report:", "  api: {kind: http, base_url: 'https://api.example',"
                   " auth: {type: bearer, token: abc123}}\n  report:")),
         "E501", "syncplan.yaml", 4, 82, hint="${env:TOKEN}"),
    Case("token_shaped_setting",
         root(edit("path: data/crm.csv,", "path: data/crm.csv, settings: {note:"
                   " ghp_abcdefghijklmnopqrstuvwxyz0123456789},")),
         "E501", "syncplan.yaml", 3, 57, message="looks like it holds a credential"),
    Case("token_shaped_url",
         root(edit("  report:", "  api: {kind: http, base_url:"
                   " 'https://api.example/?k=sk_live_abcdefghijklmnop'}\n  report:")),
         "E501", "syncplan.yaml", 4, 31, message="'base_url'"),
    Case("literal_credentials_file",
         root(edit("out/report.xlsx}",
                   "out/report.xlsx, credentials: secrets/sa.json}")),
         "E501", "syncplan.yaml", 4, 69, message="'credentials'"),
    # --- write modes --------------------------------------------------------
    Case("create_without_idempotency_key", root(edit("mode: upsert", "mode: create")),
         "E601", "syncplan.yaml", 18, 49, hint="idempotency_key"),
    Case("mirror_without_key", root(edit("mode: upsert", "mode: mirror")),
         "E602", "syncplan.yaml", 18, 49, hint="key: <field>"),
    Case("duplicate_column_header",
         root(edit("mode: upsert}", "mode: upsert, columns: {name: ' Id '}}")),
         "E604", "syncplan.yaml", 18, 73, message="field 'id'", hint="'name: Id 2'"),
    Case("alias_matches_other_header",
         root(edit("mode: upsert}", "mode: upsert, columns: {name: {header: Name,"
                   " aliases: [ID]}}}")),
         "E604", "syncplan.yaml", 18, 98, message="the alias 'ID'"),
    Case("blank_column_header",
         root(edit("mode: upsert}", "mode: upsert, columns: {name: '  '}}")),
         "E105", "syncplan.yaml", 18, 73, message="blank header"),
]

# Spec values that the runtime rejects when it builds the run. Before the
# compiler checked them, validate passed and run stopped with an internal error.
RUN_CASES = [
    "bad_regex", "bad_time_zone", "field_time_zone_unknown", "cron_minute_out_of_range",
    "cron_three_fields", "format_unknown_directive", "minimum_on_string",
    "minimum_above_maximum", "duplicate_column_header", "blank_column_header",
]

# Cases that also run through the console command.
CLI_CASES = [
    "yaml_unclosed_brace", "tab_indentation", "json_duplicate_nested_key",
    "binary_bytes", "nesting_yaml_flow", "unknown_field_key", "flow_defined_twice",
    "write_cycle", "filter_unknown_filter", "literal_token_in_auth",
    "mirror_without_key",
]

CASES_BY_ID = {case.id: case for case in CASES}


def write_project(base: Path, files: dict[str, str | bytes]) -> Path:
    """Write the files of a case; return the project folder."""
    project = base / "project"
    project.mkdir()
    for name, content in files.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return project


def pick(diagnostics: list[Diagnostic], case: Case) -> Diagnostic:
    """Return the diagnostic a case is about: the first, or the one of its code."""
    assert diagnostics, f"{case.id}: no diagnostic at all"
    if case.first:
        return diagnostics[0]
    matching = [d for d in diagnostics if d.code == case.code and d.file == case.file
                and (d.line, d.column) == (case.line, case.column)]
    assert matching, f"{case.id}: no {case.code} in " + "; ".join(
        f"{d.code}@{d.file}:{d.line}:{d.column}" for d in diagnostics)
    return matching[0]


def test_case_table_size_and_ids() -> None:
    assert len(CASES) >= 45
    assert len(CASES_BY_ID) == len(CASES)
    assert set(CLI_CASES) <= set(CASES_BY_ID)
    assert set(RUN_CASES) <= set(CASES_BY_ID)


def test_case_codes_are_known() -> None:
    unknown = sorted({case.code for case in CASES} - set(CODES))
    assert unknown == []


def test_base_project_is_valid(tmp_path: Path) -> None:
    result = compile_project(write_project(tmp_path, root(BASE)))
    assert result.diagnostics == []
    assert result.plan is not None


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_spec_diagnostic(case: Case, tmp_path: Path) -> None:
    result = compile_project(write_project(tmp_path, case.files))
    found = pick(result.diagnostics, case)
    assert (found.code, found.file, found.line, found.column) == (
        case.code, case.file, case.line, case.column), found.to_text()
    assert found.severity == "error"
    assert result.plan is None
    assert found.hint, f"{case.id}: the diagnostic has no hint"
    if case.hint is not None:
        assert case.hint in found.hint
    if case.message is not None:
        assert case.message in found.message


def run_command(*args: str, cwd: Path | None = None
                ) -> subprocess.CompletedProcess[str]:
    """Run the ``syncplan`` console command as a separate process.

    File names in its output are relative to ``cwd``, so running it in the
    project folder gives the names the compiler uses.
    """
    script = Path(sys.executable).with_name("syncplan")
    command = [str(script)] if script.exists() else [sys.executable, "-m",
                                                     "sheets_addon"]
    return subprocess.run([*command, *args], capture_output=True,
                          text=True, timeout=60, check=False, cwd=cwd)


def run_validate(*args: str, cwd: Path | None = None
                 ) -> subprocess.CompletedProcess[str]:
    return run_command("validate", *args, cwd=cwd)


@pytest.mark.parametrize("case_id", CLI_CASES)
def test_bad_spec_through_cli(case_id: str, tmp_path: Path) -> None:
    case = CASES_BY_ID[case_id]
    project = write_project(tmp_path, case.files)
    expected = compile_project(project)
    found = pick(expected.diagnostics, case)

    completed = run_validate(str(project), cwd=project)

    assert completed.returncode == 1
    lines = completed.stdout.splitlines()
    head = f"{case.file}:{case.line}:{case.column}: error[{case.code}]: "
    matching = [index for index, line in enumerate(lines) if line.startswith(head)]
    assert matching, completed.stdout
    assert lines[matching[0]] == head + found.message
    assert lines[matching[0] + 1] == f"  hint: {found.hint}"
    assert "invalid" in completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr


@pytest.mark.parametrize("case_id", RUN_CASES)
def test_bad_spec_run_stops_at_validate(case_id: str, tmp_path: Path) -> None:
    case = CASES_BY_ID[case_id]
    project = write_project(tmp_path, case.files)
    (project / "data").mkdir()
    (project / "data" / "crm.csv").write_text("id,name,amount\n1,Ann,3\n",
                                              encoding="utf-8")

    completed = run_command("run", str(project), cwd=project)

    output = completed.stdout + completed.stderr
    assert completed.returncode == 1, output
    assert "internal error" not in output
    assert "Traceback" not in output
    assert f"{case.file}:{case.line}:{case.column}: error[{case.code}]: " in output
    assert not (project / "out").exists()


def test_cron_names_and_steps_are_valid(tmp_path: Path) -> None:
    spec = with_trigger("{schedule: '*/15 6-18 1,15 JAN-jun mon-FRI'}")
    result = compile_project(write_project(tmp_path, root(spec)))
    assert result.diagnostics == []
    assert result.plan is not None


def test_missing_project_folder(tmp_path: Path) -> None:
    result = compile_project(tmp_path / "nowhere")
    assert [d.code for d in result.diagnostics] == ["E014"]
    assert "does not exist" in result.diagnostics[0].message
    assert result.plan is None


def test_folder_without_root_file(tmp_path: Path) -> None:
    (tmp_path / "flows.yaml").write_text("flows: {}\n", encoding="utf-8")
    result = compile_project(tmp_path)
    assert [d.code for d in result.diagnostics] == ["E014"]
    assert "syncplan.yaml" in result.diagnostics[0].message
