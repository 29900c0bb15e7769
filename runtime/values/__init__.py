"""Canonical field values: typed conversion and normalization of raw values.

``compile_field(field)`` turns one ``FieldPlan`` into a converter, compiled once
per plan load and called for every value of the field. The converter takes a raw
value (text from CSV, or a typed value from JSON and ICS readers: int, float,
Decimal, bool, date, aware datetime, timedelta, list or None) and returns the
canonical value or raises ``ValueProblem(code, message)``.

Canonical Python values per field type:

- string, email, url, enum: ``str``
- integer: ``int``; decimal and money: ``decimal.Decimal``; boolean: ``bool``
- date: ``datetime.date``; duration: ``datetime.timedelta``
- datetime: aware ``datetime.datetime``, local time of the field's time zone with
  that zone's UTC offset at that instant, held as a fixed ``datetime.timezone``

``compile_column(field)`` converts a whole chunk of one field's values at once,
equal to ``compile_field`` per element, or returns None to send the chunk to the
per-value converter.

``to_json_value`` and ``from_json_value`` convert canonical values to and from
the JSON stored in the state store.
"""

from runtime.values.columns import ColumnConverter, compile_column
from runtime.values.fields import FieldConverter, compile_field
from runtime.values.jsonvalues import from_json_value, to_json_value
from runtime.values.problems import FieldPlanError, ValueProblem

__all__ = [
    "ColumnConverter",
    "FieldConverter",
    "FieldPlanError",
    "ValueProblem",
    "compile_column",
    "compile_field",
    "from_json_value",
    "to_json_value",
]
