"""Semantics of cds_service.knowledge.terminology.ValueSetIndex."""
from __future__ import annotations

from typing import Any

import pytest

from cds_service.knowledge.terminology import ValueSetError, ValueSetIndex

ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SCT = "http://snomed.info/sct"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
URL = "http://example.org/ValueSet/test"


def vs(url: str | None = URL, **body: Any) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "ValueSet", "id": "test", "status": "active", **body}
    if url is not None:
        res["url"] = url
    return res


def regex_include(system: str, pattern: str) -> dict[str, Any]:
    return {"system": system, "filter": [{"property": "code", "op": "regex", "value": pattern}]}


@pytest.fixture()
def index() -> ValueSetIndex:
    return ValueSetIndex.from_resources([
        vs(
            version="1",
            compose={
                "include": [
                    {"system": SCT, "concept": [{"code": "84027009", "display": "Pernicious anemia"},
                                                {"code": "42345000"}]},
                    {"system": ICD, "concept": [{"code": "E53.8", "display": "Deficiency of other B vitamins"}]},
                    regex_include(ICD, r"D51(\.[0-9A-Z]{1,4})?"),
                ],
                "exclude": [{"system": ICD, "concept": [{"code": "D51.2"}]},
                            {"system": SCT, "concept": [{"code": "42345000"}]}],
            },
        ),
        vs(url="http://example.org/ValueSet/expanded", expansion={
            "contains": [
                {"system": RX, "code": "317106", "display": "hydroxocobalamin 1 MG/ML Injectable Solution"},
                {"abstract": True, "display": "group", "contains": [{"system": RX, "code": "309594"}]},
            ]
        }),
    ])


def test_exact_match_and_system_mismatch(index: ValueSetIndex) -> None:
    assert index.contains(URL, SCT, "84027009")
    assert index.contains(URL, ICD, "E53.8")
    assert not index.contains(URL, ICD, "84027009")  # right code, wrong system
    assert not index.contains(URL, "http://snomed.info/sct/", "84027009")
    assert not index.contains(URL, SCT, "8402700")
    assert not index.contains(URL, None, "84027009")
    assert not index.contains(URL, SCT, None)


def test_regex_family_is_whole_code_match(index: ValueSetIndex) -> None:
    assert index.contains(URL, ICD, "D51")
    assert index.contains(URL, ICD, "D51.0")
    assert index.contains(URL, ICD, "D51.9")
    assert not index.contains(URL, ICD, "D52.0")
    assert not index.contains(URL, ICD, "D510")  # fullmatch: no dot, not the family
    assert not index.contains(URL, ICD, "XD51.0")
    assert not index.contains(URL, SCT, "D51.0")  # filter applies to its own system only


def test_exclusions_win(index: ValueSetIndex) -> None:
    assert not index.contains(URL, ICD, "D51.2")  # excluded from a regex family
    assert not index.contains(URL, SCT, "42345000")  # excluded explicit concept
    assert "42345000" not in index.codes(URL)


def test_contains_any(index: ValueSetIndex) -> None:
    assert index.contains_any(URL, [{"system": ICD, "code": "X"}, {"system": ICD, "code": "D51.0"}])
    assert not index.contains_any(URL, [{"system": ICD, "code": "X"}, {"code": "D51.0"}, {}])
    assert not index.contains_any(URL, [])


def test_unknown_url_raises_key_error(index: ValueSetIndex) -> None:
    missing = "http://example.org/ValueSet/missing"
    assert missing not in index
    for call in (
        lambda: index.contains(missing, SCT, "1"),
        lambda: index.contains_any(missing, []),
        lambda: index.codes(missing),
        lambda: index.has_filters(missing),
        lambda: index.display(missing, SCT, "1"),
    ):
        with pytest.raises(KeyError):
            call()


def test_urls_versioned_reference_codes_filters_display(index: ValueSetIndex) -> None:
    assert index.urls() == frozenset({URL, "http://example.org/ValueSet/expanded"})
    assert URL in index and f"{URL}|1" in index and f"{URL}|2" not in index
    assert index.codes(URL) == frozenset({"84027009", "E53.8"})  # regex members are not enumerated
    assert index.codes(URL, ICD) == frozenset({"E53.8"})
    assert index.has_filters(URL)
    assert not index.has_filters("http://example.org/ValueSet/expanded")
    assert index.display(URL, SCT, "84027009") == "Pernicious anemia"
    assert index.display(URL, SCT, "42345000") is None
    assert index.display(URL, ICD, "D51.0") is None


def test_expansion_contains(index: ValueSetIndex) -> None:
    url = "http://example.org/ValueSet/expanded"
    assert index.contains(url, RX, "317106")
    assert index.contains(url, RX, "309594")  # nested under an abstract grouper
    assert index.codes(url) == frozenset({"317106", "309594"})
    assert index.display(url, RX, "317106") == "hydroxocobalamin 1 MG/ML Injectable Solution"


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ([vs(url=None, compose={"include": [{"system": SCT, "concept": [{"code": "1"}]}]})], "missing url"),
        ([vs(compose={"include": [{"system": SCT, "concept": [{"code": "1"}]}]})] * 2, "duplicate url"),
        ([vs(compose={"include": [{"valueSet": ["http://example.org/ValueSet/other"]}]})], "valueSet imports"),
        ([vs(compose={"include": [{"concept": [{"code": "1"}]}]})], "without system"),
        ([vs(compose={"include": [{"system": SCT}]})], "whole code system"),
        ([vs(compose={"include": [{"system": SCT, "filter": [
            {"property": "concept", "op": "is-a", "value": "42345000"}]}]})], "unsupported filter"),
        ([vs(compose={"include": [{"system": ICD, "filter": [
            {"property": "display", "op": "regex", "value": "D51.*"}]}]})], "unsupported filter"),
        ([vs(compose={"include": [regex_include(ICD, "D51(")]})], "invalid regex"),
        ([vs(compose={"include": [{"system": ICD, "concept": [{"code": "D51.0"}],
                                   "filter": [{"property": "code", "op": "regex", "value": "D5.*"}]}]})], "vs-3"),
        ([vs(compose={"include": [{"system": SCT, "concept": [{"code": "1"}]}],
                      "exclude": [regex_include(ICD, "[")]})], "invalid regex"),
        ([vs()], "neither compose nor expansion"),
        ([vs(expansion={"total": 5, "contains": [{"system": RX, "code": "1"}]})], "paged"),
        ([{"resourceType": "CodeSystem", "url": URL}], "not ValueSet"),
    ],
)
def test_value_set_errors(resources: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueSetError, match=message) as info:
        ValueSetIndex.from_resources(resources)
    # The message must say which ValueSet is broken.
    assert URL in str(info.value) or "ValueSet/test" in str(info.value)


def test_value_set_error_is_a_value_error() -> None:
    assert issubclass(ValueSetError, ValueError)


def test_filters_within_one_include_are_anded() -> None:
    index = ValueSetIndex.from_resources([vs(compose={"include": [{"system": ICD, "filter": [
        {"property": "code", "op": "regex", "value": r"N18\..*"},
        {"property": "code", "op": "regex", "value": r".*[3-6].*"},
    ]}]})])
    assert index.contains(URL, ICD, "N18.4")
    assert not index.contains(URL, ICD, "N18.1")


def test_contains_pairs_remembers_answers_and_still_fails_on_unknown_urls(index: ValueSetIndex) -> None:
    pairs = tuple((coding["system"], coding["code"]) for coding in [{"system": "http://loinc.org", "code": "2132-9"}])
    for url in sorted(index.urls()):
        expected = index.contains_any(url, [{"system": s, "code": c} for s, c in pairs])
        assert index.contains_pairs(url, pairs) is expected
        assert index.contains_pairs(url, pairs) is expected
    with pytest.raises(KeyError):
        index.contains_pairs("http://example.org/ValueSet/unknown", pairs)
