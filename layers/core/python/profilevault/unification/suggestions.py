"""Possible matches for a data steward: profiles the rules keep apart that only a name connects.

In realistic data about 2 % of the true pairs of records share no identifier at all: a phone ticket against a CRM
record without that phone, a newsletter sign-up against a CRM record without e-mail (README, "Match quality").
Merging them automatically by name would also merge namesakes, and in a privacy product a wrong merge hands one
person's data to another in an access request. So the rules never merge on a name alone; this lists the candidates
instead. A suggestion is two profiles whose members carry the same first and last name (type-normalised), where
no other profile carries that name, no birth dates contradict each other and no `never_match` exception separates
them. A steward who confirms one adds an `always_match` exception naming a member of each profile.
"""
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from profilevault.unification.engine import MemberRef, Profile
from profilevault.unification.normalizers import date, name
from profilevault.unification.rules import RuleSet

REASON = "same-full-name"


@dataclass(frozen=True, order=True)
class Suggestion:
    profiles: tuple[str, str]  # profile IDs, sorted
    reason: str = REASON


_name = lru_cache(maxsize=100_000)(name)  # names repeat: Thomas, Müller


def _full_names(attributes: Mapping[str, str]) -> set[tuple[str, str]]:
    first, last = _name(attributes.get("first_name", "")), _name(attributes.get("last_name", ""))
    return {(first, last)} if first and last else set()


def suggest(profiles: Iterable[Profile], attributes: Mapping[MemberRef, Mapping[str, str]],
            ruleset: RuleSet) -> list[Suggestion]:
    """`attributes`: each member's record attributes, as unified."""
    profiles = list(profiles)
    holders: dict[tuple[str, str], set[int]] = defaultdict(set)
    for index, profile in enumerate(profiles):
        for member in profile.members:
            for full_name in _full_names(attributes[member]):
                holders[full_name].add(index)

    def births(index: int) -> set[str]:
        return {born for m in profiles[index].members if (born := date(attributes[m].get("birth_date", "")))}

    kept_apart = _never_matched(profiles, ruleset)
    found = set()
    for indices in holders.values():
        if len(indices) != 2:
            continue  # one profile: nothing to join; three or more: a common name, a guess
        a, b = sorted(indices)
        if (a, b) in kept_apart:
            continue
        born_a, born_b = births(a), births(b)
        if born_a and born_b and born_a.isdisjoint(born_b):
            continue
        first, second = sorted((profiles[a].id, profiles[b].id))
        found.add(Suggestion((first, second)))
    return sorted(found)


def _never_matched(profiles: list[Profile], ruleset: RuleSet) -> set[tuple[int, int]]:
    where = {member: index for index, profile in enumerate(profiles) for member in profile.members}
    pairs: set[tuple[int, int]] = set()
    for exception in ruleset.exceptions:
        if exception.never_match is not None:
            indices = sorted({where[ref] for m in exception.never_match
                              if (ref := MemberRef(m.source, m.record_id)) in where})
            pairs.update((a, b) for i, a in enumerate(indices) for b in indices[i + 1:])
    return pairs
