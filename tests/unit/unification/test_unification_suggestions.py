"""Possible matches for a steward: profiles that only a rare full name connects."""
from profilevault.unification import MemberRef, UnifyRecord, parse_ruleset, suggest, unify

EMAIL = {"rules": [{"name": "same-email", "conditions": [{"attribute": "email", "precision": "exact"}]}]}


def rec(source: str, record_id: str, **attributes: str) -> UnifyRecord:
    return UnifyRecord(source, record_id, 10, "2024-01-01T00:00:00Z", attributes)


def suggested(records: list[UnifyRecord], document: dict = EMAIL) -> set[frozenset[MemberRef]]:
    """The suggested pairs, each as the members of its two profiles."""
    ruleset = parse_ruleset(document)
    result = unify(records, ruleset)
    members = {p.id: {*p.members} for p in result.profiles}
    attributes = {MemberRef(r.source, r.record_id): r.attributes for r in records}
    return {frozenset(members[s.profiles[0]] | members[s.profiles[1]]) for s in
            suggest(result.profiles, attributes, ruleset)}


def ref(source: str, record_id: str) -> MemberRef:
    return MemberRef(source, record_id)


def test_two_profiles_sharing_a_full_name_and_nothing_else_are_suggested():
    found = suggested([rec("crm", "1", first_name="Lea", last_name="Vogt", phone="+4930111"),
                       rec("newsletter", "n1", first_name="Lea", last_name="Vogt", email="lv@example.org"),
                       rec("crm", "2", first_name="Jan", last_name="Berg")])
    assert found == {frozenset({ref("crm", "1"), ref("newsletter", "n1")})}


def test_names_compare_after_type_normalisation():
    found = suggested([rec("crm", "1", first_name="Jörg", last_name="Müller"),
                       rec("shop", "a", first_name="Dr. Joerg", last_name="MUELLER")])
    assert len(found) == 1


def test_a_name_held_by_three_profiles_is_too_common_to_suggest():
    assert suggested([rec("crm", str(i), first_name="Thomas", last_name="Müller") for i in range(3)]) == set()


def test_contradicting_birth_dates_rule_a_suggestion_out():
    assert suggested([rec("crm", "1", first_name="Lea", last_name="Vogt", birth_date="1990-07-14"),
                      rec("shop", "a", first_name="Lea", last_name="Vogt", birth_date="1961-02-03")]) == set()
    assert len(suggested([rec("crm", "1", first_name="Lea", last_name="Vogt", birth_date="1990-07-14"),
                          rec("shop", "a", first_name="Lea", last_name="Vogt")])) == 1


def test_a_never_match_exception_rules_a_suggestion_out():
    records = [rec("crm", "1", first_name="Lea", last_name="Vogt"),
               rec("shop", "a", first_name="Lea", last_name="Vogt")]
    never = {**EMAIL, "exceptions": [{"never_match": [{"source": "crm", "record_id": "1"},
                                                      {"source": "shop", "record_id": "a"}]}]}
    assert suggested(records, never) == set()


def test_profiles_the_rules_joined_or_a_first_name_alone_give_no_suggestion():
    assert suggested([rec("crm", "1", first_name="Lea", last_name="Vogt", email="lv@example.org"),
                      rec("shop", "a", first_name="Lea", last_name="Vogt", email="lv@example.org")]) == set()
    assert suggested([rec("crm", "1", first_name="Lea"), rec("newsletter", "n1", first_name="Lea")]) == set()
