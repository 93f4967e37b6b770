"""Type-aware similarity and blocking keys."""
from profilevault.unification.matching import (
    address_similarity,
    blocking_keys,
    cologne_phonetic,
    date_similarity,
    email_similarity,
    house_number_similarity,
    identifier_similarity,
    name_similarity,
)


def test_name_with_one_typo_is_similar():
    assert name_similarity("elisabeth", "eliabeth") >= 0.85


def test_nickname_scores_as_its_full_name():
    assert name_similarity("sepp", "josef") == 1.0
    assert name_similarity("bob", "robert") == 1.0


def test_word_order_does_not_matter_for_names():
    assert name_similarity("anna maria", "maria anna") == 1.0


def test_different_names_sharing_a_prefix_are_not_similar():
    # Household members: Maria/Marco and Birgit/Brigitte must stay apart at a user's usual 0.8
    assert name_similarity("maria", "marco") < 0.8
    assert name_similarity("birgit", "brigitte") < 0.8


def test_date_with_day_and_month_swapped_scores_095():
    assert date_similarity("1980-04-03", "1980-03-04") == 0.95


def test_date_with_one_wrong_digit_scores_09():
    assert date_similarity("1980-04-03", "1981-04-03") == 0.9


def test_unrelated_dates_score_at_most_07():
    assert date_similarity("1980-04-03", "1955-11-27") <= 0.7


def test_house_number_differing_only_in_letter_scores_09():
    assert house_number_similarity("12", "12a") == 0.9
    assert house_number_similarity("12", "13") == 0.0


def test_street_with_extra_words_is_similar():
    assert address_similarity("hauptstr", "hauptstr hinterhaus") == 1.0


def test_identifier_fuzzy_is_edit_based():
    assert 0.9 < identifier_similarity("max.mustermann@web.de", "max.musterman@web.de") < 1.0


def test_mistyped_letter_in_an_email_is_similar():
    assert email_similarity("max.mustermann@web.de", "max.musterman@web.de") >= 0.9
    assert email_similarity("max.mustermann@web.de", "max.mustremann@web.de") >= 0.9  # a transposition: one edit


def test_another_number_separator_or_provider_is_another_mailbox():
    # Namesakes take the free variant of their name at a provider: these belong to different people
    assert email_similarity("thomas.mueller@gmx.de", "thomas.mueller73@gmx.de") == 0.0
    assert email_similarity("thomas.mueller@gmx.de", "thomas_mueller@gmx.de") == 0.0
    assert email_similarity("thomas.mueller@gmx.de", "thomas.mueller@web.de") == 0.0


def test_email_similarity_of_non_addresses_is_edit_based():
    assert 0.0 < email_similarity("not an address", "not an adress") < 1.0


def test_cologne_phonetic_groups_spelling_variants():
    assert cologne_phonetic("meier") == cologne_phonetic("meyer") == cologne_phonetic("maier")
    assert cologne_phonetic("schmidt") == cologne_phonetic("schmitt")


def test_name_keys_include_the_full_form_of_a_nickname():
    assert blocking_keys("name", "sepp") & blocking_keys("name", "josef")


def test_date_keys_include_the_swapped_date():
    assert blocking_keys("date", "1980-04-03") & blocking_keys("date", "1980-03-04")


def test_email_keys_ignore_the_domain():
    assert not blocking_keys("email", "anna@gmail.com") & blocking_keys("email", "otto@gmail.com")
