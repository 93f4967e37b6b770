"""The benchmark generator's scenarios: `issue` has one email and one phone per person, `alternate-identifiers` more."""
from collections import defaultdict

import pytest
from rapidfuzz.distance import Levenshtein

from benchmarks.unification.generator import SCENARIOS, WORK_DOMAINS, generate
from benchmarks.unification.run import ceiling
from profilevault.unification import UnifyRecord

RECORDS = 3000


def values_by_person(scenario: str, field: str) -> dict[int, set[str]]:
    records, truth = generate(RECORDS, seed=5, scenario=scenario)
    out: dict[int, set[str]] = defaultdict(set)
    for record, pid in zip(records, truth, strict=True):
        if record.attributes.get(field):
            out[pid].add(record.attributes[field])
    return out


def work_emails(scenario: str) -> int:
    records, _ = generate(RECORDS, seed=5, scenario=scenario)
    return sum(r.attributes.get("email", "").partition("@")[2] in WORK_DOMAINS for r in records)


def people_with_two_numbers(scenario: str) -> int:
    # A mistyped phone is one or two edits from the number; mobile and landline are far apart.
    return sum(any(Levenshtein.distance(a, b) > 2 for a in phones for b in phones)
               for phones in values_by_person(scenario, "phone").values())


def test_issue_is_the_default_scenario():
    # Given one seed / When records are generated without and with scenario="issue"
    default, issue = generate(500, seed=3), generate(500, seed=3, scenario="issue")
    # Then they are the same records with the same truth
    assert [r.attributes for r in default[0]] == [r.attributes for r in issue[0]]
    assert default[1] == issue[1]


def test_issue_scenario_gives_no_work_email():
    # Given the issue scenario / When records are generated / Then no record carries a work address
    assert work_emails("issue") == 0


def test_alternate_identifiers_scenario_gives_work_emails():
    # Given the alternate-identifiers scenario / When records are generated / Then some carry a work address
    assert work_emails("alternate-identifiers") > 0


def test_issue_scenario_gives_one_phone_per_person():
    # Given the issue scenario / When records are generated / Then a person's records carry one number (or a typo)
    assert people_with_two_numbers("issue") == 0


def test_alternate_identifiers_scenario_mixes_mobile_and_landline():
    # Given the alternate-identifiers scenario / When records are generated
    # Then some person's records carry two different numbers
    assert people_with_two_numbers("alternate-identifiers") > 0


def test_unknown_scenario_is_refused():
    # Given a scenario name that does not exist / When records are generated / Then it fails with the known names
    with pytest.raises(ValueError, match=SCENARIOS[0]):
        generate(10, scenario="no-such-scenario")


def test_ceiling_joins_records_of_a_person_that_carry_the_same_kind_of_evidence():
    def rec(record_id: str, **attributes: str) -> UnifyRecord:
        return UnifyRecord("crm", record_id, 10, "2024-01-01T00:00:00Z", attributes)

    # person 0: an email on both (different values still count), a phone-only record that shares nothing;
    # person 1: two records with a phone each. True pairs: 3 + 1; reachable: 1 + 1.
    records = [rec("1", email="a@x.de", first_name="Anna"), rec("2", email="b@x.de"), rec("3", phone="+4930123"),
               rec("4", phone="+4930999"), rec("5", phone="+4930888")]
    assert ceiling(records, [0, 0, 0, 1, 1]) == {"recall": 0.5, "f1": round(2 * 0.5 / 1.5, 5)}
