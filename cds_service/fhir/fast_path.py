"""The reader's fast path: a resource already valid R4 in every element read, checked in C.

Most resources arrive as well-formed R4. For those, msgspec checks the JSON against typed
structs built at start-up from the same element plans as the reader (only the elements the
knowledge reads; each primitive with its R4 pattern, codes of required bindings as literals),
and the resource is then used as it came: about 5 us per resource instead of about 30 us
walking and copying it in Python (docs/performance.md). Anything the fast path does not
accept as it stands (a shape deviation, an older version's element name, a wrong value, a
contained resource, two types for one choice element) goes to the reader's lenient path,
which repairs what it can and reports the rest precisely. The fast path never repairs and
never reports: it either accepts a resource exactly or declines it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import msgspec

from . import versions
from .definitions import ElementDefinition
from .patterns import CODE, ID, MAX_VALUES, REFERENCE, TIME, ZONE

# msgspec matches patterns with re.search: anchored with ^ and \Z (a $ would let a final newline through).
# Years 0000, 0001 and 9999 (the edges of what converts to UTC), 29 February, a leap second and
# more than 9 digits of a second are all left to the lenient path, which checks them fully.
_YEAR = r"(?!000[01]|9999)\d{4}"
_MONTH = r"(?:0[1-9]|1[0-2])"
_MONTH_DAY = r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
_FAST_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?"
PATTERNS: Mapping[str, str] = {
    "date": rf"^{_YEAR}(?:-{_MONTH}|-{_MONTH_DAY})?\Z",
    "dateTime": rf"^{_YEAR}(?:-{_MONTH}|-{_MONTH_DAY}(?:T{_FAST_TIME}{ZONE})?)?\Z",
    "instant": rf"^{_YEAR}-{_MONTH_DAY}T{_FAST_TIME}{ZONE}\Z",
    "time": rf"^{TIME}\Z",
    "code": rf"^{CODE}\Z",
    "id": rf"^{ID}\Z",
    "uri": r"^\S+\Z", "url": r"^\S+\Z", "canonical": r"^\S+\Z", "oid": r"^\S+\Z", "uuid": r"^\S+\Z",
}
# string, markdown: not empty (a length check runs in C; a pattern would call Python's re)
_NOT_EMPTY = Annotated[str, msgspec.Meta(min_length=1)]
_NUMBERS: Mapping[str, Any] = {
    "decimal": int | float,
    "integer": int,
    "integer64": int,
    "positiveInt": Annotated[int, msgspec.Meta(ge=1)],
    "unsignedInt": Annotated[int, msgspec.Meta(ge=0)],
}
# An element the fast path must never take (an older version's name, a contained resource).
_DECLINE = Annotated[str, msgspec.Meta(pattern="(?!)")]


class FastPath:
    """Structs for every type the reader's plans reach, built once."""

    def __init__(self, plan_for: Callable[[str], Mapping[str, ElementDefinition]], resource_types: frozenset[str]) -> None:
        self._plan_for = plan_for
        self._structs: dict[str, Any] = {}
        self._choices: dict[str, tuple[frozenset[str], ...]] = {}
        self._children: dict[str, tuple[tuple[str, str], ...]] = {}
        self._resources = {name: self._struct(name, resource=True) for name in resource_types}
        self._reaches_choice: dict[str, bool] = {}
        for type_name in list(self._children):
            self._has_choices(type_name)
        # Only the elements below which a choice can occur are walked after conversion.
        self._choice_children = {
            type_name: tuple((key, child) for key, child in children if self._reaches_choice.get(child))
            for type_name, children in self._children.items()
        }

    def accepts(self, raw: Mapping[str, Any], resource_type: str) -> bool:
        """True when every element the knowledge reads is already valid R4 in ``raw``: the
        resource can then be used as it is (nothing read from it needs repair or report)."""
        struct = self._resources.get(resource_type)
        if struct is None:
            return False
        try:
            msgspec.convert(raw, struct)
        except msgspec.ValidationError:
            return False
        return not self._choice_conflict(raw, resource_type)

    def _struct(self, type_name: str, resource: bool = False) -> Any:
        struct = self._structs.get(type_name)
        if struct is not None:
            return struct
        # A type that contains itself (Extension, Identifier -> Reference) is declined inside itself.
        self._structs[type_name] = _DECLINE
        plan = self._plan_for(type_name)
        fields: list[tuple[str, Any, Any]] = []
        choices: dict[str, list[str]] = {}
        for key, definition in plan.items():
            moved_dose = type_name == "Dosage" and key in versions.DOSAGE_DOSE_ELEMENTS  # STU3: doseAndRate in R4
            if key != definition.name or definition.type == "Resource" or moved_dose:
                fields.append((key, _DECLINE, msgspec.UNSET))
                continue
            element_type = self._element_type(definition)
            if type_name == "Reference" and key == "reference":
                element_type = Annotated[str, msgspec.Meta(pattern=f"^(?:{REFERENCE})\\Z")]
            if definition.is_list:
                element_type = Annotated[list[element_type], msgspec.Meta(max_length=MAX_VALUES)]  # type: ignore[valid-type]
            fields.append((key, element_type, msgspec.UNSET))
            if definition.choice is not None:
                choices.setdefault(definition.choice, []).append(key)
        if resource:
            fields.append(("resourceType", Literal[type_name], msgspec.NODEFAULT))
            fields.append(("id", Annotated[str, msgspec.Meta(pattern=PATTERNS["id"])], msgspec.UNSET))
        struct = msgspec.defstruct(f"Fast{type_name}", fields, omit_defaults=True, kw_only=True)
        self._structs[type_name] = struct
        self._choices[type_name] = tuple(frozenset(names) for names in choices.values() if len(names) > 1)
        self._children[type_name] = tuple(
            (key, definition.type) for key, definition in plan.items()
            if key == definition.name and not definition.is_primitive and definition.type != "Resource"
        )
        return struct

    def _has_choices(self, type_name: str, seen: frozenset[str] = frozenset()) -> bool:
        """Whether a choice element can occur in this type or below it."""
        known = self._reaches_choice.get(type_name)
        if known is not None:
            return known
        if type_name in seen:
            return False
        found = bool(self._choices.get(type_name)) or any(
            self._has_choices(child, seen | {type_name}) for _key, child in self._children.get(type_name, ())
        )
        if not seen:
            self._reaches_choice[type_name] = found
        return found

    def _element_type(self, definition: ElementDefinition) -> Any:
        kind = definition.type
        if kind == "boolean":
            return bool
        if kind in _NUMBERS:
            return _NUMBERS[kind]
        if definition.codes is not None:
            return Literal[tuple(sorted(definition.codes))]
        if definition.is_primitive:
            pattern = PATTERNS.get(kind)
            return Annotated[str, msgspec.Meta(pattern=pattern)] if pattern else _NOT_EMPTY
        return self._struct(kind)

    def _choice_conflict(self, value: Any, type_name: str) -> bool:
        """True when one choice element (value[x]) has two types anywhere in ``value``."""
        if isinstance(value, list):
            return any(self._choice_conflict(item, type_name) for item in value)
        if not isinstance(value, Mapping):
            return False
        keys = value.keys()
        for names in self._choices.get(type_name, ()):
            if len(keys & names) > 1:
                return True
        for key, child_type in self._choice_children.get(type_name, ()):
            child = value.get(key)
            if child is not None and self._choice_conflict(child, child_type):
                return True
        return False
