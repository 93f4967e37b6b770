"""Merge the records of one cluster into the attributes of its profile.

Per attribute, the policy named in `merge.fields` (else `merge.default`) picks one winning record among the members
that have a non-empty value, and the profile takes the winner's value as stored (original spelling, not the matching
normalisation):

- `importance`: the source with the lowest importance number wins; ties -> the most recent record.
- `most_recent`: the record with the latest `updated_at` wins; ties -> the more important source.
  `updated_at` values are ISO 8601 timestamps in one format (as ingestion writes them), so they compare as strings.
- `most_filled`: the most complete value wins, measured as the number of characters once whitespace is collapsed
  ("+49 89 1234567" beats "+49 89"); ties -> importance, then recency.

Remaining ties go to the smallest (source, record_id), so a merge is deterministic.

Field groups (e.g. street, house number, postal code, city) win as a unit: one record is chosen among the members that
have any field of the group, using the policy of the group's first field (from `merge.fields`, else the default), and
all the group's fields are taken from it, even the ones it lacks: a profile never mixes the street of one address with
the city of another. For `most_filled` a group's completeness is (number of non-empty fields, total characters).
"""
from collections.abc import Callable, Sequence
from typing import Protocol

from profilevault.unification.rules import MergePolicy


class MergeRecord(Protocol):
    source: str
    record_id: str
    importance: int
    updated_at: str
    attributes: dict[str, str]


def _filled(value: str) -> int:
    return len(" ".join(value.split()))


def _pick(candidates: Sequence[MergeRecord], policy: str, fill: Callable[[MergeRecord], tuple[int, int]]):
    """The winning record; `candidates` arrive sorted by (source, record_id) and a later record replaces the best
    only when strictly better, which makes the smallest reference win any remaining tie."""
    best = candidates[0]
    for rec in candidates[1:]:
        if policy == "importance":
            better = rec.importance < best.importance or (
                rec.importance == best.importance and rec.updated_at > best.updated_at)
        elif policy == "most_recent":
            better = rec.updated_at > best.updated_at or (
                rec.updated_at == best.updated_at and rec.importance < best.importance)
        else:
            fr, fb = fill(rec), fill(best)
            better = fr > fb or (fr == fb and (
                rec.importance < best.importance
                or (rec.importance == best.importance and rec.updated_at > best.updated_at)))
        if better:
            best = rec
    return best


def merge_attributes(members: Sequence[MergeRecord], policy: MergePolicy) -> dict[str, str]:
    """Profile attributes of a cluster, by attribute name; `members` sorted by (source, record_id)."""
    if len(members) == 1:
        return {k: v for k, v in sorted(members[0].attributes.items()) if v}
    merged: dict[str, str] = {}
    grouped: set[str] = set()
    for group in policy.groups:
        grouped.update(group)
        candidates = [r for r in members if any(r.attributes.get(a) for a in group)]
        if not candidates:
            continue

        def group_fill(rec: MergeRecord, group: list[str] = group) -> tuple[int, int]:
            values = [rec.attributes.get(a) for a in group]
            return sum(1 for v in values if v), sum(_filled(v) for v in values if v)

        winner = _pick(candidates, policy.policy_for(group[0]), group_fill)
        for attribute in group:
            value = winner.attributes.get(attribute)
            if value:
                merged[attribute] = value
    attributes = sorted({a for r in members for a, v in r.attributes.items() if v} - grouped)
    for attribute in attributes:
        candidates = [r for r in members if r.attributes.get(attribute)]

        def fill(rec: MergeRecord, attribute: str = attribute) -> tuple[int, int]:
            return 1, _filled(rec.attributes[attribute])

        merged[attribute] = _pick(candidates, policy.policy_for(attribute), fill).attributes[attribute]
    return dict(sorted(merged.items()))
