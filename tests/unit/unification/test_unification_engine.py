"""The engine: rule features, clustering, exceptions, stable ids, merge policies and explain."""
import random
import re
from itertools import count

import pytest

from profilevault.unification import DEFAULT_RULESET, MemberRef, UnifyRecord, explain, parse_ruleset, unify

EMAIL = {"rules": [{"name": "same-email", "conditions": [{"attribute": "email", "precision": "exact"}]}]}
NAME_BIRTHDAY = {"rules": [{"name": "name-and-birthday", "conditions": [
    {"attribute": "last_name", "precision": 0.85},
    {"attribute": "first_name", "precision": 0.8},
    {"attribute": "birth_date", "precision": "exact"}]}]}


def rec(source: str, record_id: str, importance: int = 10, updated: str = "2024-01-01T00:00:00Z",
        **attributes: str) -> UnifyRecord:
    return UnifyRecord(source, record_id, importance, updated, attributes)


def rules(document: dict, **extra) -> object:
    return parse_ruleset({**document, **extra})


def groups(result) -> list[set[tuple[str, str]]]:
    return sorted(({(m.source, m.record_id) for m in p.members} for p in result.profiles), key=sorted)


def ids(prefix: str = "p_new"):
    numbers = count(1)
    return lambda: f"{prefix}{next(numbers)}"


# --- rule features -----------------------------------------------------------------------------------------------

def test_exact_condition_joins_records_across_sources():
    result = unify([rec("crm", "1", email="anna@example.org"), rec("shop", "a", email="anna@example.org"),
                    rec("shop", "b", email="otto@example.org")], rules(EMAIL))
    assert groups(result) == [{("crm", "1"), ("shop", "a")}, {("shop", "b")}]


def test_duplicates_inside_one_source_are_joined():
    result = unify([rec("shop", "a", email="anna@example.org"), rec("shop", "b", email="anna@example.org")],
                   rules(EMAIL))
    assert len(result.profiles) == 1


def test_missing_value_never_matches():
    result = unify([rec("crm", "1", first_name="Anna"), rec("shop", "a", first_name="Anna")], rules(EMAIL))
    assert len(result.profiles) == 2


def test_fuzzy_condition_accepts_a_typo_above_the_threshold():
    result = unify([rec("crm", "1", first_name="Elisabeth", last_name="Schmidt", birth_date="1980-04-03"),
                    rec("shop", "a", first_name="Eliabeth", last_name="Schmitd", birth_date="1980-04-03")],
                   rules(NAME_BIRTHDAY))
    assert len(result.profiles) == 1


def test_fuzzy_condition_rejects_a_name_below_the_threshold():
    result = unify([rec("crm", "1", first_name="Maria", last_name="König", birth_date="1980-04-03"),
                    rec("shop", "a", first_name="Marco", last_name="König", birth_date="1980-04-03")],
                   rules(NAME_BIRTHDAY))
    assert len(result.profiles) == 2


def test_all_conditions_of_a_rule_must_hold():
    result = unify([rec("crm", "1", first_name="Anna", last_name="Weber", birth_date="1980-04-03"),
                    rec("shop", "a", first_name="Anna", last_name="Weber", birth_date="1981-04-03")],
                   rules(NAME_BIRTHDAY))
    assert len(result.profiles) == 2


def test_rules_are_alternatives():
    document = {"rules": EMAIL["rules"] + NAME_BIRTHDAY["rules"]}
    result = unify([rec("crm", "1", email="x@example.org", first_name="Anna", last_name="Weber",
                        birth_date="1980-04-03"),
                    rec("shop", "a", email="y@example.org", first_name="Anna", last_name="Weber",
                        birth_date="1980-04-03")], rules(document))
    assert len(result.profiles) == 1
    assert result.edges[0].rule == "name-and-birthday"


def test_matches_chain_transitively_into_one_cluster():
    result = unify([rec("crm", "1", email="a@example.org"),
                    rec("shop", "a", email="a@example.org", phone="+4915112345678"),
                    rec("support", "T1", phone="+4915112345678")],
                   rules({"rules": EMAIL["rules"] + [
                       {"name": "phone", "conditions": [{"attribute": "phone", "precision": "exact"}]}]}))
    assert groups(result) == [{("crm", "1"), ("shop", "a"), ("support", "T1")}]


def test_swapped_first_and_last_names_still_match():
    result = unify([rec("crm", "1", first_name="Petra", last_name="Ricci", birth_date="1975-06-21"),
                    rec("shop", "a", first_name="Ricci", last_name="Petra", birth_date="1975-06-21")],
                   rules(NAME_BIRTHDAY))
    assert len(result.profiles) == 1
    assert result.edges[0].swapped is True


def test_swapped_names_match_when_both_name_conditions_are_exact():
    document = {"rules": [{"name": "names", "conditions": [
        {"attribute": "first_name", "precision": "exact"}, {"attribute": "last_name", "precision": "exact"}]}]}
    result = unify([rec("crm", "1", first_name="Petra", last_name="Ricci"),
                    rec("shop", "a", first_name="RICCI", last_name="Petra")], rules(document))
    assert len(result.profiles) == 1


PHONE_FIRST_NAME = {"rules": [{"name": "phone-and-first-name", "conditions": [
    {"attribute": "phone", "precision": "exact"}, {"attribute": "first_name", "precision": 0.8}]}]}


def test_rule_with_one_name_condition_matches_fully_swapped_names():
    # Given a support ticket whose agent typed the names into the wrong fields
    result = unify([rec("crm", "1", phone="+4915112345678", first_name="Karin", last_name="Sauer"),
                    rec("support", "T1", phone="+4915112345678", first_name="Sauer", last_name="Karin")],
                   rules(PHONE_FIRST_NAME))
    # Then the crossed reading holds, and the other name is reported as evidence of the swap
    assert len(result.profiles) == 1
    assert result.edges[0].swapped is True
    assert result.edges[0].scores == {"phone": 1.0, "first_name": 1.0, "last_name": 1.0}


def test_rule_with_one_name_condition_needs_the_whole_swap():
    # Given a household landline; one person's first name happens to be the other's last name
    result = unify([rec("crm", "1", phone="+49301234567", first_name="Thomas", last_name="Weber"),
                    rec("crm", "2", phone="+49301234567", first_name="Anna", last_name="Thomas")],
                   rules(PHONE_FIRST_NAME))
    # Then they stay apart: Weber is not Anna
    assert len(result.profiles) == 2


def test_gmail_address_written_two_ways_matches_by_default():
    result = unify([rec("crm", "1", email="anna.weber@googlemail.com"),
                    rec("newsletter", "n1", email="annaweber+news@gmail.com")], rules(EMAIL))
    assert len(result.profiles) == 1


def test_default_rules_join_a_mistyped_email_of_the_same_name_but_not_a_namesakes_address():
    result = unify([rec("crm", "1", first_name="Thomas", last_name="Müller", email="thomas.mueller@gmx.de"),
                    rec("shop", "a", first_name="Thomas", last_name="Mueller", email="thomas.meuller@gmx.de"),
                    rec("shop", "b", first_name="Thomas", last_name="Müller", email="thomas.mueller73@gmx.de"),
                    rec("shop", "c", first_name="Thomas", last_name="Müller", email="thomas_mueller@gmx.de")],
                   DEFAULT_RULESET)
    assert groups(result) == [{("crm", "1"), ("shop", "a")}, {("shop", "b")}, {("shop", "c")}]
    assert {e.rule for e in result.edges} == {"similar-email-same-name"}


def test_nickname_matches_full_name():
    result = unify([rec("crm", "1", first_name="Josef", last_name="Huber", birth_date="1950-01-02"),
                    rec("shop", "a", first_name="Sepp", last_name="Huber", birth_date="1950-01-02")],
                   rules(NAME_BIRTHDAY))
    assert len(result.profiles) == 1


def test_condition_normalize_list_replaces_the_type_defaults():
    # Given exact last names that differ only in case and accents
    records = [rec("crm", "1", last_name="Müller"), rec("shop", "a", last_name="MULLER")]
    plain = {"rules": [{"name": "r", "conditions": [{"attribute": "last_name", "normalize": ["whitespace"]}]}]}
    folded = {"rules": [{"name": "r", "conditions": [
        {"attribute": "last_name", "normalize": ["lowercase", "unicode_to_ascii"]}]}]}
    # Then only the rule that folds case and accents joins them
    assert len(unify(records, rules(plain)).profiles) == 2
    assert len(unify(records, rules(folded)).profiles) == 1


def test_type_default_normalisation_applies_without_normalize():
    records = [rec("crm", "1", street="Hauptstraße", house_number="5 a"),
               rec("shop", "a", street="Hauptstr.", house_number="5A")]
    document = {"rules": [{"name": "address", "conditions": [
        {"attribute": "street", "precision": "exact"}, {"attribute": "house_number", "precision": "exact"}]}]}
    assert len(unify(records, rules(document)).profiles) == 1


def test_fuzzy_only_rule_finds_candidates_through_blocking():
    # Given a rule without any exact condition
    document = {"rules": [{"name": "names", "conditions": [
        {"attribute": "first_name", "precision": 0.8}, {"attribute": "last_name", "precision": 0.8}]}]}
    records = [rec("crm", "1", first_name="Thomas", last_name="Meier"),
               rec("shop", "a", first_name="Tomas", last_name="Meyer"),
               rec("shop", "b", first_name="Ulrike", last_name="Schulz")]
    result = unify(records, rules(document))
    assert groups(result) == [{("crm", "1"), ("shop", "a")}, {("shop", "b")}]
    assert result.counts["candidate_pairs"] == 1


def test_oversized_block_is_sub_blocked_instead_of_compared_pairwise():
    # Given 300 people born on one day (one exact block above the limit of 200), two of them the same person
    rng = random.Random(7)
    word = lambda: "".join(rng.choice("bcdfgklmnprstvwz") + rng.choice("aeiou") for _ in range(3)).title()  # noqa: E731
    records = [rec("crm", str(i), first_name=word(), last_name=word(), birth_date="1980-01-01") for i in range(300)]
    records.append(rec("shop", "a", first_name=records[7].attributes["first_name"],
                       last_name=records[7].attributes["last_name"], birth_date="1980-01-01"))
    result = unify(records, rules(NAME_BIRTHDAY))
    # Then the pair is found and far fewer than all 45,150 pairs were compared
    assert {("crm", "7"), ("shop", "a")} in groups(result)
    assert result.counts["candidate_pairs"] < 5_000


def test_block_above_the_limit_after_sub_blocking_is_skipped_and_counted():
    document = {"rules": [{"name": "names", "conditions": [{"attribute": "last_name", "precision": 0.9}]}]}
    records = [rec("crm", str(i), last_name="Müller") for i in range(30)]
    result = unify(records, rules(document), block_limit=10)
    assert result.counts["blocks_skipped"] == 1
    assert len(result.profiles) == 30


def test_exact_only_block_of_any_size_is_linked_without_pairwise_comparison():
    records = [rec("shop", str(i), email="same@example.org") for i in range(500)]
    result = unify(records, rules(EMAIL), block_limit=10)
    assert len(result.profiles) == 1
    assert result.counts["candidate_pairs"] == 499


def test_result_does_not_depend_on_input_order():
    records = [rec("crm", "1", email="a@example.org"), rec("shop", "a", email="a@example.org"),
               rec("shop", "b", email="b@example.org")]
    forward = unify(records, rules(EMAIL), new_id=ids())
    backward = unify(list(reversed(records)), rules(EMAIL), new_id=ids())
    assert [(p.id, p.members) for p in forward.profiles] == [(p.id, p.members) for p in backward.profiles]


def test_a_record_given_twice_keeps_its_latest_copy():
    result = unify([rec("crm", "1", updated="2024-01-01", email="old@example.org"),
                    rec("crm", "1", updated="2024-06-01", email="new@example.org")], rules(EMAIL))
    assert result.counts["duplicates"] == 1
    assert result.profiles[0].attributes["email"] == "new@example.org"


# --- exceptions --------------------------------------------------------------------------------------------------

def never(*members: tuple[str, str]) -> dict:
    return {"never_match": [{"source": s, "record_id": r} for s, r in members]}


def always(*members: tuple[str, str]) -> dict:
    return {"always_match": [{"source": s, "record_id": r} for s, r in members]}


def test_never_match_pair_is_not_joined_directly():
    records = [rec("crm", "17", email="a@example.org"), rec("shop", "a9", email="a@example.org")]
    result = unify(records, rules(EMAIL, exceptions=[never(("crm", "17"), ("shop", "a9"))]))
    assert len(result.profiles) == 2
    assert result.counts["refused"] == 1


def test_never_match_cuts_a_transitive_chain_at_its_weakest_link():
    # Given A ~ B exactly (email) and B ~ C only fuzzily (names + birthday), and A never with C
    document = {"rules": EMAIL["rules"] + NAME_BIRTHDAY["rules"],
                "exceptions": [never(("crm", "A"), ("support", "C"))]}
    records = [rec("crm", "A", email="a@example.org"),
               rec("shop", "B", email="a@example.org", first_name="Anna", last_name="Weber", birth_date="1980-04-03"),
               rec("support", "C", first_name="Ana", last_name="Weber", birth_date="1980-04-03")]
    result = unify(records, rules(document))
    # Then the stronger link survives and C stands alone
    assert groups(result) == [{("crm", "A"), ("shop", "B")}, {("support", "C")}]


def test_always_match_joins_records_no_rule_joins():
    records = [rec("crm", "1", email="a@example.org"), rec("shop", "a", email="b@example.org")]
    result = unify(records, rules(EMAIL, exceptions=[always(("crm", "1"), ("shop", "a"))]))
    assert len(result.profiles) == 1
    assert result.edges[0].rule == "always_match"


def test_exceptions_naming_absent_records_are_ignored():
    records = [rec("crm", "1", email="a@example.org"), rec("shop", "a", email="a@example.org")]
    result = unify(records, rules(EMAIL, exceptions=[never(("crm", "1"), ("gone", "x")),
                                                     always(("crm", "1"), ("gone", "y"))]))
    assert len(result.profiles) == 1


# --- stable ids --------------------------------------------------------------------------------------------------

def previous_of(result) -> dict[MemberRef, str]:
    return {m: p.id for p in result.profiles for m in p.members}


def test_default_ids_are_random_and_carry_no_personal_data():
    result = unify([rec("crm", "1", email="anna@example.org")], rules(EMAIL))
    assert re.fullmatch(r"p_[0-9a-f]{26}", result.profiles[0].id)


def test_same_input_twice_keeps_ids_and_counts_everything_unchanged():
    records = [rec("crm", "1", email="a@example.org"), rec("shop", "a", email="a@example.org"),
               rec("shop", "b", email="b@example.org")]
    first = unify(records, rules(EMAIL))
    second = unify(records, rules(EMAIL), previous=previous_of(first))
    assert [p.id for p in second.profiles] == [p.id for p in first.profiles]
    assert second.counts["unchanged"] == second.counts["profiles"] == 2
    assert second.counts["new"] == second.counts["merged"] == second.counts["split"] == 0


def test_new_record_joining_a_profile_keeps_its_id():
    first = unify([rec("crm", "1", email="a@example.org")], rules(EMAIL), new_id=ids("p_old"))
    second = unify([rec("crm", "1", email="a@example.org"), rec("shop", "a", email="a@example.org")],
                   rules(EMAIL), previous=previous_of(first), new_id=ids())
    assert second.profiles[0].id == "p_old1"
    assert second.counts["unchanged"] == 0 and second.counts["new"] == 0


def test_merged_profiles_keep_the_largest_claimants_id_and_list_the_other():
    previous = {MemberRef("crm", "1"): "p_b", MemberRef("crm", "2"): "p_b", MemberRef("shop", "a"): "p_a"}
    records = [rec("crm", "1", email="x@example.org"), rec("crm", "2", email="x@example.org"),
               rec("shop", "a", email="x@example.org")]
    result = unify(records, rules(EMAIL), previous=previous)
    assert result.profiles[0].id == "p_b"
    assert result.profiles[0].previous_ids == ["p_a"]
    assert result.counts["merged"] == 1


def test_tie_between_previous_ids_goes_to_the_smaller_id():
    previous = {MemberRef("crm", "1"): "p_z", MemberRef("shop", "a"): "p_m"}
    result = unify([rec("crm", "1", email="x@example.org"), rec("shop", "a", email="x@example.org")],
                   rules(EMAIL), previous=previous)
    assert result.profiles[0].id == "p_m"
    assert result.profiles[0].previous_ids == ["p_z"]


def test_removing_a_source_splits_the_profile_it_bridged():
    # Given a crm record that joined two shop records (email with one, phone with the other)
    document = {"rules": EMAIL["rules"] + [
        {"name": "phone", "conditions": [{"attribute": "phone", "precision": "exact"}]}]}
    shop = [rec("shop", "a", email="a@example.org"), rec("shop", "b", phone="+4915112345678", first_name="Z"),
            rec("shop", "c", phone="+4915112345678")]
    bridge = rec("crm", "1", email="a@example.org", phone="+4915112345678")
    first = unify([bridge, *shop], rules(document), new_id=ids("p_old"))
    assert len(first.profiles) == 1
    # When the crm source is removed and the tenant unified again
    second = unify(shop, rules(document), previous=previous_of(first), new_id=ids())
    # Then the larger part keeps the id, the other part is new and says where it came from
    by_members = {tuple(m.record_id for m in p.members): p for p in second.profiles}
    assert by_members[("b", "c")].id == "p_old1"
    assert by_members[("a",)].id == "p_new1"
    assert by_members[("a",)].previous_ids == ["p_old1"]
    assert second.counts["split"] == 1 and second.counts["new"] == 1


def test_two_clusters_claiming_one_id_leave_the_smaller_a_new_id():
    previous = {MemberRef("shop", "a"): "p_1", MemberRef("shop", "b"): "p_1", MemberRef("shop", "c"): "p_1"}
    records = [rec("shop", "a", email="a@example.org"), rec("shop", "b", email="a@example.org"),
               rec("shop", "c", email="c@example.org")]
    result = unify(records, rules(EMAIL), previous=previous, new_id=ids())
    assert [p.id for p in result.profiles] == ["p_1", "p_new1"]


# --- merge policies ----------------------------------------------------------------------------------------------

def merged(records, merge: dict) -> dict[str, str]:
    result = unify(records, rules(EMAIL, merge=merge))
    assert len(result.profiles) == 1
    return result.profiles[0].attributes


def test_importance_policy_takes_the_value_of_the_most_important_source():
    attributes = merged([rec("crm", "1", importance=10, updated="2020", email="a@x.org", first_name="Anna"),
                         rec("shop", "a", importance=50, updated="2024", email="a@x.org", first_name="Anni")],
                        {"default": "importance"})
    assert attributes["first_name"] == "Anna"


def test_profile_attributes_are_listed_by_name():
    group = {"default": "importance", "groups": [["street", "city"]]}
    assert list(merged([rec("crm", "1", email="a@x.org", street="Hauptstr. 1", city="Köln", birth_date="1980-01-02"),
                        rec("shop", "a", email="a@x.org", phone="+4930111")], group)) == [
        "birth_date", "city", "email", "phone", "street"]
    single = unify([rec("crm", "1", street="Hauptstr. 1", email="a@x.org")], rules(EMAIL)).profiles[0]
    assert list(single.attributes) == ["email", "street"]


def test_importance_tie_goes_to_the_most_recent_record():
    attributes = merged([rec("crm", "1", importance=10, updated="2020", email="a@x.org", first_name="Anna"),
                         rec("shop", "a", importance=10, updated="2024", email="a@x.org", first_name="Anni")],
                        {"default": "importance"})
    assert attributes["first_name"] == "Anni"


def test_most_recent_policy_takes_the_latest_non_empty_value():
    attributes = merged([rec("crm", "1", updated="2020", email="a@x.org", phone="+491"),
                         rec("shop", "a", updated="2023", email="a@x.org", phone="+492"),
                         rec("shop", "b", updated="2024", email="a@x.org")],
                        {"fields": {"phone": "most_recent"}})
    assert attributes["phone"] == "+492"


def test_most_filled_policy_takes_the_most_complete_value():
    attributes = merged([rec("crm", "1", email="a@x.org", city="Frankfurt"),
                         rec("shop", "a", importance=99, email="a@x.org", city="Frankfurt am Main")],
                        {"fields": {"city": "most_filled"}})
    assert attributes["city"] == "Frankfurt am Main"


def test_field_group_wins_as_a_unit():
    # Given the important source has a street but no city, the other a full address
    attributes = merged([rec("crm", "1", importance=10, email="a@x.org", street="Hauptstraße", house_number="5"),
                         rec("shop", "a", importance=50, email="a@x.org", street="Bahnhofweg", house_number="9",
                             postal_code="80331", city="München")],
                        {"default": "importance", "groups": [["street", "house_number", "postal_code", "city"]]})
    # Then the whole address comes from the winner, without the other record's city mixed in
    assert attributes["street"] == "Hauptstraße" and attributes["house_number"] == "5"
    assert "city" not in attributes and "postal_code" not in attributes


def test_field_group_uses_the_policy_of_its_first_field():
    attributes = merged([rec("crm", "1", importance=10, email="a@x.org", street="Hauptstraße", house_number="5"),
                         rec("shop", "a", importance=50, email="a@x.org", street="Bahnhofweg", house_number="9",
                             postal_code="80331", city="München")],
                        {"default": "importance", "fields": {"street": "most_filled"},
                         "groups": [["street", "house_number", "postal_code", "city"]]})
    assert attributes["city"] == "München" and attributes["street"] == "Bahnhofweg"


# --- explain -----------------------------------------------------------------------------------------------------

def test_explain_names_rule_conditions_and_scores_of_each_link():
    document = {"rules": EMAIL["rules"] + NAME_BIRTHDAY["rules"]}
    records = [rec("crm", "1", email="a@example.org"),
               rec("shop", "a", email="a@example.org", first_name="Anna", last_name="Weber", birth_date="1980-04-03"),
               rec("support", "T1", first_name="Ana", last_name="Weber", birth_date="1980-04-03"),
               rec("shop", "z", email="other@example.org")]
    result = unify(records, rules(document))
    profile = next(p for p in result.profiles if len(p.members) == 3)
    explained = explain(profile, result.edges)
    assert explained["profile_id"] == profile.id
    assert {"source": "support", "record_id": "T1"} in explained["members"]
    by_rule = {link["rule"]: link for link in explained["links"]}
    assert set(by_rule) == {"same-email", "name-and-birthday"}
    conditions = {c["attribute"]: c for c in by_rule["name-and-birthday"]["conditions"]}
    assert conditions["birth_date"] == {"attribute": "birth_date", "precision": "exact", "score": 1.0}
    assert conditions["first_name"]["precision"] == 0.8
    assert 0.8 <= conditions["first_name"]["score"] < 1.0


def test_explain_of_a_single_record_profile_has_no_links():
    result = unify([rec("crm", "1", email="a@example.org")], rules(EMAIL))
    assert explain(result.profiles[0], result.edges)["links"] == []


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_inputs_work(n):
    result = unify([rec("crm", str(i), email="a@example.org") for i in range(n)], rules(EMAIL))
    assert result.counts["profiles"] == n
