"""FHIR R4 element definitions: for a type, each element's JSON name, type and cardinality.

The reader needs to know, for the elements it reads, whether R4 has a list or one value,
which type each holds and which codes a required binding allows. That knowledge is FHIR's,
not ours: it is taken from the ``fhir.resources`` R4B models (R4B has the same elements as R4
for every resource the knowledge reads) by reading their field metadata once per type. No
resource is ever validated with those models: they are only a machine-readable copy of the
specification here.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from fhir.resources.R4B import get_fhir_model_class

# The fhir.resources constraint class of each FHIR primitive type.
_PRIMITIVES = {
    "Base64Binary": "base64Binary", "Boolean": "boolean", "Canonical": "canonical", "Code": "code",
    "Date": "date", "DateTime": "dateTime", "Decimal": "decimal", "Id": "id", "Instant": "instant",
    "Integer": "integer", "Integer64": "integer64", "Markdown": "markdown", "Oid": "oid",
    "PositiveInt": "positiveInt", "String": "string", "Time": "time", "UnsignedInt": "unsignedInt",
    "Uri": "uri", "Url": "url", "Uuid": "uuid", "Xhtml": "xhtml",
}
PRIMITIVE_TYPES = frozenset(_PRIMITIVES.values())

# Required code lists the models give only in part ("amended +" for amended and its children):
# the full R4 value sets (hl7.org/fhir/R4/valueset-observation-status.html).
_FULL_CODES: Mapping[tuple[str, str], frozenset[str]] = {
    ("Observation", "status"): frozenset(
        {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"}
    ),
}


@dataclass(frozen=True, slots=True)
class ElementDefinition:
    name: str  # the JSON name, e.g. "valueQuantity"
    type: str  # a FHIR type: "dateTime", "CodeableConcept", "TimingRepeat", "Resource", ...
    is_list: bool
    choice: str | None = None  # "value" for valueQuantity, valueString, ...
    codes: frozenset[str] | None = None  # the codes a required binding allows

    @property
    def is_primitive(self) -> bool:
        return self.type in PRIMITIVE_TYPES


class UnknownType(LookupError):
    """Not a FHIR R4 resource or data type."""


@cache
def elements_of(type_name: str) -> Mapping[str, ElementDefinition]:
    """The elements of an R4 resource, data type or backbone element, by JSON name."""
    try:
        model = get_fhir_model_class(type_name)
    except (KeyError, ValueError):  # fhir.resources raises either, depending on the name
        raise UnknownType(type_name) from None
    elements: dict[str, ElementDefinition] = {}
    for field_name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if not extra.get("element_property"):
            continue
        name = field.alias or field_name
        element_type, is_list = _type_of(field.annotation)
        enum = extra.get("enum_values")
        # "amended +" in the models means "amended and its child codes" (corrected): not a closed list.
        closed = element_type == "code" and isinstance(enum, list) and "+" not in enum
        enum = enum if isinstance(enum, list) else []
        codes = _FULL_CODES.get((type_name, name)) or (frozenset(str(code) for code in enum) if closed else None)
        choice = extra.get("one_of_many")
        elements[name] = ElementDefinition(name, element_type, is_list, choice if isinstance(choice, str) else None, codes)
    return elements


def is_resource_type(type_name: str) -> bool:
    try:
        elements_of(type_name)  # raises UnknownType for a name FHIR R4 does not have
    except UnknownType:
        return False
    return _is_resource(type_name)


@cache
def _is_resource(type_name: str) -> bool:
    model = get_fhir_model_class(type_name)
    return any(base.__name__ in ("Resource", "DomainResource") for base in model.__mro__[1:])


def _type_of(annotation: object) -> tuple[str, bool]:
    """(FHIR type, is a list) from a fhir.resources field annotation."""
    is_list = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
        elif origin in (list, typing.List):  # noqa: UP006 (the models use typing.List)
            is_list = True
            annotation = typing.get_args(annotation)[0]
        elif origin is typing.Annotated:
            metadata = typing.get_args(annotation)[1:]
            for item in metadata:
                primitive = _PRIMITIVES.get(type(item).__name__)
                if primitive:
                    return primitive, is_list
            annotation = typing.get_args(annotation)[0]
        else:
            break
    if annotation is bool:
        return "boolean", is_list
    name = getattr(annotation, "__name__", str(annotation))
    return name.removesuffix("Type"), is_list
