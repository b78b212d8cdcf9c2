"""ValueSet membership for the CDS rules.

ValueSets are compiled once at load time into per-url frozensets of (system, code) plus
pre-compiled regex filters, so a membership test is a set lookup per coding (plus one
``fullmatch`` per regex include of that system). Only the compose features our knowledge
uses are supported; anything else is rejected at load time rather than silently
evaluated wrong (a rule that never fires is the worst failure mode for CDS).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

Key = tuple[str, str]  # (system, code)


class ValueSetError(ValueError):
    """A ValueSet cannot be loaded; the message names the ValueSet and the problem."""


@dataclass(frozen=True)
class _FilterRule:
    """One compose include/exclude with filters: every pattern must fullmatch (FHIR ANDs filters)."""

    system: str
    patterns: tuple[re.Pattern[str], ...]

    def matches(self, code: str) -> bool:
        return all(p.fullmatch(code) for p in self.patterns)


@dataclass(frozen=True)
class _CompiledValueSet:
    url: str
    version: str | None
    included: frozenset[Key]
    excluded: frozenset[Key]
    include_filters: tuple[_FilterRule, ...]
    exclude_filters: tuple[_FilterRule, ...]
    displays: Mapping[Key, str] = field(default_factory=dict)

    def contains(self, system: str, code: str) -> bool:
        key = (system, code)
        if key in self.excluded or any(
            r.system == system and r.matches(code) for r in self.exclude_filters
        ):
            return False
        return key in self.included or any(
            r.system == system and r.matches(code) for r in self.include_filters
        )


def _label(resource: Mapping[str, Any]) -> str:
    return str(resource.get("url") or f"ValueSet/{resource.get('id', '?')}")


def _compile_filters(label: str, system: str, filters: Iterable[Mapping[str, Any]]) -> _FilterRule:
    patterns = []
    for flt in filters:
        prop, op, value = flt.get("property"), flt.get("op"), flt.get("value")
        if prop != "code" or op != "regex":
            raise ValueSetError(
                f"{label}: unsupported filter property={prop!r} op={op!r} (only property 'code' op 'regex')"
            )
        if not isinstance(value, str) or not value:
            raise ValueSetError(f"{label}: regex filter without a value")
        try:
            patterns.append(re.compile(value))
        except re.error as exc:
            raise ValueSetError(f"{label}: invalid regex {value!r}: {exc}") from exc
    return _FilterRule(system, tuple(patterns))


def _compile_section(
    label: str, entries: Iterable[Mapping[str, Any]], displays: dict[Key, str] | None
) -> tuple[set[Key], list[_FilterRule]]:
    codes: set[Key] = set()
    rules: list[_FilterRule] = []
    for entry in entries:
        if entry.get("valueSet"):
            raise ValueSetError(f"{label}: valueSet imports are not supported")
        system = entry.get("system")
        if not system:
            raise ValueSetError(f"{label}: include/exclude without system")
        concepts, filters = entry.get("concept") or [], entry.get("filter") or []
        if concepts and filters:
            raise ValueSetError(f"{label}: concept and filter in the same include/exclude (FHIR vs-3)")
        if not concepts and not filters:
            # Would mean "the whole code system": not evaluable without a terminology server.
            raise ValueSetError(f"{label}: include/exclude of the whole code system {system}")
        for concept in concepts:
            code = concept.get("code")
            if not code:
                raise ValueSetError(f"{label}: concept without code in {system}")
            codes.add((system, code))
            if displays is not None and concept.get("display"):
                displays[(system, code)] = concept["display"]
        if filters:
            rules.append(_compile_filters(label, system, filters))
    return codes, rules


def _walk_expansion(label: str, contains: Iterable[Mapping[str, Any]], displays: dict[Key, str]) -> set[Key]:
    codes: set[Key] = set()
    for item in contains:
        system, code = item.get("system"), item.get("code")
        # Abstract entries are grouping headers, not selectable codes.
        if system and code and not item.get("abstract"):
            codes.add((system, code))
            if item.get("display"):
                displays[(system, code)] = item["display"]
        codes |= _walk_expansion(label, item.get("contains") or [], displays)
    return codes


def _compile(resource: Mapping[str, Any]) -> _CompiledValueSet:
    label = _label(resource)
    if resource.get("resourceType", "ValueSet") != "ValueSet":
        raise ValueSetError(f"{label}: resourceType is {resource.get('resourceType')!r}, not ValueSet")
    url = resource.get("url")
    if not url:
        raise ValueSetError(f"{label}: missing url")
    displays: dict[Key, str] = {}
    compose, expansion = resource.get("compose"), resource.get("expansion")
    if compose:
        included, include_rules = _compile_section(label, compose.get("include") or [], displays)
        excluded, exclude_rules = _compile_section(label, compose.get("exclude") or [], None)
        if not included and not include_rules:
            raise ValueSetError(f"{label}: compose has no include")
    elif expansion:
        contains = expansion.get("contains") or []
        total = expansion.get("total")
        if expansion.get("offset") or (total is not None and total > len(contains)):
            # A paged expansion is only part of the set; using it would miss members.
            raise ValueSetError(f"{label}: expansion is paged/partial (total={total})")
        included, include_rules = _walk_expansion(label, contains, displays), []
        excluded, exclude_rules = set(), []
    else:
        raise ValueSetError(f"{label}: has neither compose nor expansion")
    return _CompiledValueSet(
        url=url,
        version=resource.get("version"),
        included=frozenset(included),
        excluded=frozenset(excluded),
        include_filters=tuple(include_rules),
        exclude_filters=tuple(exclude_rules),
        displays=MappingProxyType(displays),
    )


_PAIRS_MEMO_SIZE = 100_000


class ValueSetIndex:
    """Immutable membership index over a set of ValueSets, keyed by canonical url."""

    def __init__(self, compiled: Mapping[str, _CompiledValueSet]) -> None:
        self._sets = dict(compiled)
        # (url, code pairs) -> member?; the index is immutable, so answers never change
        self._pairs_memo: dict[tuple[str, tuple[tuple[str, str], ...]], bool] = {}

    @classmethod
    def from_resources(cls, valuesets: Iterable[Mapping[str, Any]]) -> ValueSetIndex:
        compiled: dict[str, _CompiledValueSet] = {}
        for resource in valuesets:
            vs = _compile(resource)
            if vs.url in compiled:
                raise ValueSetError(f"{vs.url}: duplicate url")
            compiled[vs.url] = vs
        return cls(compiled)

    def _get(self, url: str) -> _CompiledValueSet:
        vs = self._sets.get(url)
        if vs is None and "|" in url:
            # Canonical references may carry |version; honour it only if it matches.
            base, _, version = url.partition("|")
            candidate = self._sets.get(base)
            if candidate is not None and candidate.version == version:
                vs = candidate
        if vs is None:
            raise KeyError(f"unknown ValueSet {url}")
        return vs

    def __contains__(self, url: object) -> bool:
        if not isinstance(url, str):
            return False
        try:
            self._get(url)
        except KeyError:
            return False
        return True

    def urls(self) -> frozenset[str]:
        return frozenset(self._sets)

    def contains(self, url: str, system: str | None, code: str | None) -> bool:
        vs = self._get(url)
        if not system or not code:
            return False
        return vs.contains(system, code)

    def contains_any(self, url: str, codings: Iterable[Mapping[str, Any]]) -> bool:
        vs = self._get(url)  # unknown url fails even for an empty coding list
        for coding in codings:
            system, code = coding.get("system"), coding.get("code")
            if system and code and vs.contains(system, code):
                return True
        return False

    def contains_pairs(self, url: str, pairs: tuple[tuple[str, str], ...]) -> bool:
        """``contains_any`` for (system, code) pairs already taken out of their codings; remembered."""
        key = (url, pairs)
        known = self._pairs_memo.get(key)
        if known is None:
            vs = self._get(url)
            known = any(system and code and vs.contains(system, code) for system, code in pairs)
            if len(self._pairs_memo) >= _PAIRS_MEMO_SIZE:
                self._pairs_memo.clear()  # bounded: a worker sees a few thousand distinct codes
            self._pairs_memo[key] = known
        return known

    def codes(self, url: str, system: str | None = None) -> frozenset[str]:
        vs = self._get(url)
        return frozenset(
            code
            for sys_, code in vs.included
            if (system is None or sys_ == system) and vs.contains(sys_, code)
        )

    def has_filters(self, url: str) -> bool:
        return bool(self._get(url).include_filters)

    def display(self, url: str, system: str, code: str) -> str | None:
        vs = self._get(url)
        return vs.displays.get((system, code)) if vs.contains(system, code) else None
