"""Diagnostics: problems found in a spec project, as data.

Every check yields ``Diagnostic`` values instead of raising, so one run reports
every problem at once. A diagnostic records where it is (file, 1-based line and
column, and the JSON pointer of the node inside the merged project) and carries a
hint that says what to do.

Text form, one problem per entry::

    syncplan.yaml:12:7: error[E201]: unknown system 'crmm' in flow 'deals'
      hint: did you mean 'crm'?
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]

# Codes by family; a W code is a warning of the family of its number.
# E0xx: reading files. E1xx: the schema. E2xx: references.
# E3xx: ownership. E4xx: types and templates. E5xx: security. E6xx: write modes.
# E9xx: the compiled plan fails compiler.plan.check, which checks plan files too.
CODES: dict[str, str] = {
    "E001": "file cannot be read",
    "E002": "file is not valid UTF-8",
    "E003": "YAML syntax error",
    "E004": "JSON syntax error",
    "E005": "duplicate key",
    "E006": "tab character in indentation",
    "E007": "document is empty",
    "E008": "nesting too deep",
    "E009": "file too large",
    "E010": "control character in file",
    "E011": "include not found",
    "W011": "include cycle",
    "E012": "more than one YAML document",
    "E013": "unsupported YAML feature",
    "E014": "project root not found",
    "E015": "name defined in two files",
    "E101": "wrong type",
    "E102": "unknown key",
    "E103": "missing required key",
    "E104": "value not allowed",
    "E105": "invalid value",
    "E201": "unknown system",
    "E202": "unknown entity",
    "E203": "unknown field",
    "E204": "unknown stream",
    "E205": "entity read but produced by no flow",
    "E206": "system cannot be read",
    "E207": "system cannot be written",
    "E208": "field has no mapping",
    "E209": "unknown owner",
    "W210": "no flows to run",
    "E301": "field taken from a system that does not own it",
    "E302": "field written into its owner",
    "E303": "field written by two flows",
    "E304": "write cycle between systems",
    "E305": "flows depend on each other in a loop",
    "E401": "type does not fit the field",
    "E402": "template syntax error",
    "E403": "template names an unknown variable",
    "E404": "invalid regular expression",
    "E405": "invalid time zone",
    "E406": "invalid schedule",
    "E407": "invalid date format",
    "E408": "constraint does not fit the field",
    "E501": "literal secret in settings",
    "E502": "scope missing",
    "W501": "scope granted but not needed",
    "E601": "create needs an idempotency key",
    "E602": "write mode needs a key",
    "E603": "key is not a field of the entity",
    "E604": "two columns share a header",
    "E901": "plan check failed",
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem: where it is, what it is, and what to do about it."""

    severity: Severity
    code: str
    message: str
    file: str
    line: int
    column: int
    pointer: str
    hint: str | None = None

    def to_text(self) -> str:
        head = f"{self.file}:{self.line}:{self.column}: {self.severity}[{self.code}]: "
        text = head + self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.file, self.line, self.column, self.code, self.message)


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """Return ``"did you mean 'x'?"`` for the closest choice, or None.

    A choice is close when one of the two starts with the other (both three
    characters or longer), or when a few
    edits turn ``name`` into it. A few is about one per three characters, and
    fewer than the shorter of the two has; a swap of two neighbours counts as
    one edit. The fewest edits win, so 'cvs' suggests 'csv', not 'ics', and
    'declned' suggests nothing rather than 'end'.
    """
    written = name.lower()
    allowed = max(1, len(written) // 3)
    ranked = []
    for choice in set(choices):
        candidate = choice.lower()
        distance = edit_distance(written, candidate)
        prefix = min(len(written), len(candidate)) >= 3 and (
            candidate.startswith(written) or written.startswith(candidate))
        if (distance <= allowed and distance < min(len(written), len(candidate))
                or prefix):
            ratio = difflib.SequenceMatcher(None, written, candidate).ratio()
            ranked.append((distance, -ratio, choice))
    if not ranked:
        return None
    return f"did you mean {min(ranked)[2]!r}?"


def edit_distance(first: str, second: str) -> int:
    """Return the optimal string alignment distance of two strings.

    Insertions, deletions, substitutions and swaps of adjacent characters each
    count as one edit.
    """
    previous_row: list[int] = []
    row = list(range(len(second) + 1))
    for i, first_char in enumerate(first, start=1):
        before_previous, previous_row = previous_row, row
        row = [i] + [0] * len(second)
        for j, second_char in enumerate(second, start=1):
            cost = 0 if first_char == second_char else 1
            row[j] = min(previous_row[j] + 1, row[j - 1] + 1,
                         previous_row[j - 1] + cost)
            if (i > 1 and j > 1 and first_char == second[j - 2]
                    and first[i - 2] == second_char):
                row[j] = min(row[j], before_previous[j - 2] + 1)
    return row[len(second)]


def choices_hint(name: str, choices: Iterable[str], what: str) -> str:
    """Return a did-you-mean hint, or the list of valid names when none is close."""
    options = sorted(choices)
    suggestion = did_you_mean(name, options)
    if suggestion:
        return suggestion
    if not options:
        return f"no {what} is defined yet; define one first"
    shown = ", ".join(repr(option) for option in options[:12])
    more = "" if len(options) <= 12 else f" and {len(options) - 12} more"
    return f"use one of the defined {what}s: {shown}{more}"


def format_text(diagnostics: Iterable[Diagnostic]) -> str:
    return "\n".join(diagnostic.to_text() for diagnostic in diagnostics)


def format_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([asdict(d) for d in diagnostics], indent=2, ensure_ascii=False)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)
