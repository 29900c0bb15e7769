"""Normalizers: the text clean-up steps of a field, compiled once per plan load.

``compile_normalizers`` turns a field's ``normalize`` list into a tuple of
one-argument callables, applied in declared order to ``str`` values only. A step
may return a non-``str`` value (a ``map`` entry whose value is a number or null);
the later steps then leave that value unchanged.

``default`` is not a text step: its argument is returned separately and is used
when the value is missing after all steps ran.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from compiler.plan import Normalizer
from runtime.values.problems import FieldPlanError

logger = logging.getLogger(__name__)

TextStep = Callable[[str], Any]

#: Marker for "no default declared", because ``None`` is a declarable default.
NO_DEFAULT: Any = object()

_WHITESPACE_RUN = re.compile(r"\s+")  # str patterns match Unicode spaces, NBSP included

# Zero-width characters, bidirectional marks, embeddings and isolates, the soft
# hyphen, the word joiner family and the byte order mark: all invisible when shown,
# yet they make two equal-looking keys differ.
_INVISIBLE_CLASS = (
    "\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\ufeff"
)
# The zero-width joiner (U+200D) glues emoji into one symbol (family, profession
# and flag sequences), so it is kept between two emoji-like characters. The class
# approximates the emoji ranges of Unicode 15 and is not the full property.
_EMOJI_CLASS = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u21aa\u231a-\u23ff\u24c2"
    "\u25aa-\u27bf\u2934\u2935\u2b05-\u2b55\u3030\u303d\u3297\u3299\ufe0f"
    "\U0001f000-\U0001faff\U000e0020-\U000e007f"
)
_INVISIBLE = re.compile(
    f"[{_INVISIBLE_CLASS}]|(?<![{_EMOJI_CLASS}])\u200d|\u200d(?![{_EMOJI_CLASS}])"
)
_TITLE_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")


def compile_normalizers(
    field_name: str, normalizers: Sequence[Normalizer]
) -> tuple[tuple[TextStep, ...], Any]:
    """Compile the text steps of a field and return them with its default value.

    The default is ``NO_DEFAULT`` when none is declared. When several ``default``
    entries are declared, the last one wins.
    """
    steps: list[TextStep] = []
    default = NO_DEFAULT
    for position, normalizer in enumerate(normalizers):
        where = f"field {field_name!r}, normalizer {position} ({normalizer.op})"
        if normalizer.op == "default":
            default = normalizer.arg
            continue
        factory = _FACTORIES[normalizer.op]
        steps.append(factory(normalizer.arg, where))
    return tuple(steps), default


def _no_arg(step: TextStep) -> Callable[[Any, str], TextStep]:
    def factory(arg: Any, where: str) -> TextStep:
        if arg is not None:
            logger.warning("%s takes no argument; ignoring %r", where, arg)
        return step

    return factory


def collapse_spaces(text: str) -> str:
    """Replace every run of whitespace, non-breaking spaces included, by one space."""
    return _WHITESPACE_RUN.sub(" ", text)


def strip_invisible(text: str) -> str:
    """Remove zero-width characters, bidirectional marks and the byte order mark."""
    if text.isascii():
        return text
    return _INVISIBLE.sub("", text)


def title_case(text: str) -> str:
    """Capitalize each word. An apostrophe inside a word does not start a new one.

    ``str.title`` would turn "o'neil" into "O'Neil" but also "they're" into
    "They'Re"; here both keep a lower-case letter after the apostrophe.
    """
    return _TITLE_WORD.sub(_capitalize_match, text)


def _capitalize_match(match: re.Match[str]) -> str:
    return match.group().capitalize()


def _zero_pad(arg: Any, where: str) -> TextStep:
    if isinstance(arg, bool) or not isinstance(arg, int) or arg < 1:
        raise FieldPlanError(
            f"{where}: the width must be a positive integer such as 5, got {arg!r}"
        )
    width = arg

    def zero_pad(text: str) -> str:
        # Only plain ASCII digit strings are codes to pad; "A42" or "-4" stay as given.
        if text.isascii() and text.isdigit():
            return text.zfill(width)
        return text

    return zero_pad


def _replace(arg: Any, where: str) -> TextStep:
    if not isinstance(arg, dict) or not isinstance(arg.get("pattern"), str):
        raise FieldPlanError(
            f"{where}: expected {{'pattern': REGEX, 'with': REPLACEMENT}}, got {arg!r}"
        )
    unknown = set(arg) - {"pattern", "with"}
    if unknown:
        raise FieldPlanError(
            f"{where}: unknown keys {sorted(unknown)!r}; use 'pattern' and 'with'"
        )
    replacement = arg.get("with", "")
    if not isinstance(replacement, str):
        raise FieldPlanError(f"{where}: 'with' must be text, got {replacement!r}")
    try:
        pattern = re.compile(arg["pattern"])
        # Parses the replacement template now, so a bad group reference such as
        # \2 with one group fails at plan load instead of on the first record.
        pattern.sub(replacement, "")
    except re.error as error:
        raise FieldPlanError(
            f"{where}: invalid regular expression or replacement: {error}"
            " (the syntax is Python's re module, groups are written \\1 or \\g<name>)"
        ) from error
    substitute = pattern.sub

    def replace(text: str) -> str:
        return substitute(replacement, text)

    return replace


def _map_key(key: Any) -> str:
    # A YAML key written yes/no or 1 arrives as a bool or an int. Written as text
    # here, it matches the same raw values as the quoted key would.
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key).strip().casefold()


def _map(arg: Any, where: str) -> TextStep:
    if not isinstance(arg, dict) or not arg:
        raise FieldPlanError(
            f"{where}: expected a non-empty mapping of raw value to value, got {arg!r}"
        )
    table: dict[str, Any] = {}
    for key, value in arg.items():
        folded = _map_key(key)
        if folded in table and table[folded] != value:
            raise FieldPlanError(
                f"{where}: keys {key!r} and another one are equal after trimming and"
                " ignoring case, but map to different values; keep one of them"
            )
        table[folded] = value
    lookup = table.get
    unmapped = object()

    def map_value(text: str) -> Any:
        mapped = lookup(text.strip().casefold(), unmapped)
        if mapped is unmapped:
            return text
        return mapped

    return map_value


_FACTORIES: dict[str, Callable[[Any, str], TextStep]] = {
    "trim": _no_arg(str.strip),
    "collapse_spaces": _no_arg(collapse_spaces),
    "lower": _no_arg(str.lower),
    "upper": _no_arg(str.upper),
    "title": _no_arg(title_case),
    "strip_invisible": _no_arg(strip_invisible),
    "zero_pad": _zero_pad,
    "replace": _replace,
    "map": _map,
}
