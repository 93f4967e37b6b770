"""Rule documents: the issue's example is accepted, malformed documents become one readable InvalidInput."""
import pytest

from profilevault.errors import InvalidInput
from profilevault.unification import DEFAULT_RULESET, RuleSet, parse_ruleset

ISSUE_EXAMPLE = {
    "rules": [
        {"name": "same-email", "conditions": [{"attribute": "email", "precision": "exact"}]},
        {"name": "name-and-birthday", "conditions": [
            {"attribute": "last_name", "precision": 0.85, "normalize": ["whitespace", "lowercase", "unicode_to_ascii"]},
            {"attribute": "first_name", "precision": 0.8},
            {"attribute": "birth_date", "precision": "exact"}]}],
    "exceptions": [{"never_match": [{"source": "crm", "record_id": "17"}, {"source": "shop", "record_id": "a9"}]}],
    "merge": {"default": "importance", "fields": {"email": "most_recent", "phone": "most_filled"},
              "groups": [["street", "house_number", "postal_code", "city"]]},
}


def doc(**changes) -> dict:
    document = {"rules": [{"name": "r", "conditions": [{"attribute": "email", "precision": "exact"}]}]}
    document.update(changes)
    return document


def test_issue_example_is_accepted():
    # Given the rule document from the issue / When it is parsed
    ruleset = parse_ruleset(ISSUE_EXAMPLE)
    # Then rules, exception and merge policy are all there
    assert [r.name for r in ruleset.rules] == ["same-email", "name-and-birthday"]
    assert ruleset.rules[1].conditions[0].precision == 0.85
    assert ruleset.exceptions[0].never_match[1].record_id == "a9"
    assert ruleset.merge.policy_for("phone") == "most_filled"
    assert ruleset.merge.policy_for("first_name") == "importance"


def test_default_ruleset_is_valid_and_starts_with_email():
    assert isinstance(DEFAULT_RULESET, RuleSet)
    assert DEFAULT_RULESET.rules[0].conditions[0].attribute == "email"


def test_numeric_record_ids_in_exceptions_are_read_as_strings():
    ruleset = parse_ruleset(doc(exceptions=[{"never_match": [{"source": "crm", "record_id": 17},
                                                              {"source": "shop", "record_id": "a9"}]}]))
    assert ruleset.exceptions[0].never_match[0].record_id == "17"


@pytest.mark.parametrize(("document", "expected"), [
    (doc(rules=[{"name": "r", "conditions": [{"attribute": "shoe_size"}]}]), "unknown attribute 'shoe_size'"),
    (doc(rules=[{"name": "r", "conditions": [{"attribute": "email", "precision": 0}]}]), "outside (0, 1]"),
    (doc(rules=[{"name": "r", "conditions": [{"attribute": "email", "precision": 1.5}]}]), "outside (0, 1]"),
    (doc(rules=[{"name": "r", "conditions": [{"attribute": "email", "precision": True}]}]),
     'precision must be "exact"'),
    (doc(rules=[{"name": "r", "conditions": [{"attribute": "email", "precision": "fuzzy"}]}]),
     'precision must be "exact"'),
    (doc(rules=[{"name": "r", "conditions": [{"attribute": "email", "normalize": ["soundex"]}]}]),
     "unknown normalization(s) ['soundex']"),
    (doc(rules=[{"name": "r", "conditions": []}]), "rules.0.conditions"),
    (doc(rules=[]), "rules:"),
    (doc(rules=[{"name": "r", "conditions": [{"attribute": "email"}]},
                {"name": "r", "conditions": [{"attribute": "phone"}]}]), "rule name(s) ['r'] used more than once"),
    (doc(rules=[{"name": "r", "conditions": [{"attribute": "email"}, {"attribute": "email"}]}]),
     "more than one condition"),
    (doc(rules=[{"name": "r", "conditions": [{"attribute": "email", "weight": 2}]}]), "Extra inputs"),
    (doc(merge={"default": "newest"}), "merge.default"),
    (doc(merge={"fields": {"email": "longest"}}), "merge.fields.email"),
    (doc(merge={"groups": [["street", "city"], ["city", "postal_code"]]}), "more than one merge group"),
    (doc(merge={"groups": [["street", "planet"]]}), "unknown attribute 'planet'"),
    (doc(exceptions=[{"never_match": [{"source": "crm", "record_id": "1"}]}]), "at least 2"),
    (doc(exceptions=[{"never_match": [{"source": "crm", "record_id": "1"}, {"source": "shop", "record_id": "2"}],
                      "always_match": [{"source": "crm", "record_id": "1"}, {"source": "shop", "record_id": "3"}]}]),
     "exactly one of never_match or always_match"),
    (doc(exceptions=[{"always_match": [{"source": "a", "record_id": "1"}, {"source": "b", "record_id": "2"}]},
                     {"always_match": [{"source": "b", "record_id": "2"}, {"source": "c", "record_id": "3"}]},
                     {"never_match": [{"source": "a", "record_id": "1"}, {"source": "c", "record_id": "3"}]}]),
     "always_match exceptions join"),
    ({"conditions": []}, "rules: Field required"),
])
def test_malformed_document_is_rejected_with_a_readable_reason(document, expected):
    # Given a malformed rule document / When it is parsed / Then one InvalidInput (HTTP 422) names the problem
    with pytest.raises(InvalidInput) as raised:
        parse_ruleset(document)
    assert raised.value.status == 422
    assert expected in raised.value.detail


def test_every_problem_of_a_document_is_reported_at_once():
    document = doc(rules=[{"name": "r", "conditions": [{"attribute": "nope"}, {"attribute": "email", "precision": 3}]}])
    with pytest.raises(InvalidInput) as raised:
        parse_ruleset(document)
    assert "rules.0.conditions.0.attribute" in raised.value.detail
    assert "rules.0.conditions.1.precision" in raised.value.detail
