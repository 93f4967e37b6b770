"""Why the benchmark's clusters differ from the truth: missed pairs and false merges by category.

    .venv/bin/python -m benchmarks.unification.analyse --records 10000 [--seed 1] [--examples 3] [--scenario issue]

Missed pair: two records of one person in different profiles. Each is described by how the two records relate on
each piece of evidence, after the engine's default normalisation:

- email / phone / birth_date: `same`, `-` (missing on at least one side), `typo` (a small edit: email local part or
  phone digits differ by one or two edits, a date within the engine's date tolerance), `diff` (another value: a
  work email, the landline instead of the mobile), `fmt` (phone digits equal once a national prefix is read as +49);
- address: `same` (street, number, postal code equal), `street~` (same number and postal code, street differs),
  `-`, `diff` (another address, e.g. the old one after a move);
- names: `ok` (both names present and similar enough for the rule set's name conditions, possibly swapped),
  `-` (a name missing on at least one side), `weak` (present but below the thresholds).

A person whose records end in several profiles has a main part (the largest) and split-off parts. Each split-off
part is described by the strongest relation any of its records has to any record of the main part, counted in the
record pairs it costs (what the pairwise recall counts; a part is counted against all other records of its person),
and by its shape: the sources of its records and the fields they carry (E email, P phone, B birth date, A street,
F first name, L last name). False merges: pairs of different people in one profile; the edges that joined records
of two people are listed by rule and by the statuses above ("same" is what made the engine link them).
Personal data are printed only with --examples (generated, fictitious people).
"""
import argparse
import json
from collections import Counter, defaultdict

from rapidfuzz.distance import Levenshtein

from benchmarks.unification.generator import SCENARIOS, generate
from benchmarks.unification.run import USER_RULES
from profilevault.unification import parse_ruleset, unify
from profilevault.unification.matching import date_similarity, name_similarity
from profilevault.unification.normalizers import address, email, name, phone

ADDRESS = ("street", "house_number", "postal_code")


def _email_status(a: str | None, b: str | None) -> str:
    if not a or not b:
        return "-"
    a, b = email(a), email(b)
    if a == b:
        return "same"
    (la, _, da), (lb, _, db) = a.partition("@"), b.partition("@")
    return "typo" if da == db and Levenshtein.distance(la, lb) <= 2 else "diff"


def _phone_status(a: str | None, b: str | None) -> str:
    if not a or not b:
        return "-"
    pa, pb = phone(a), phone(b)
    if pa == pb:
        return "same"
    national = {p if not p.startswith("0") else "49" + p[1:] for p in (pa, pb)}
    if len(national) == 1:
        return "fmt"
    return "typo" if len(pa) == len(pb) and Levenshtein.distance(pa, pb) <= 2 else "diff"


def _date_status(a: str | None, b: str | None) -> str:
    if not a or not b:
        return "-"
    if a == b:
        return "same"
    return "typo" if date_similarity(a, b) >= 0.85 else "diff"


def _address_status(ra: dict, rb: dict) -> str:
    if not all(ra.get(f) for f in ADDRESS) or not all(rb.get(f) for f in ADDRESS):
        return "-"
    same_place = ra["house_number"].lower().replace(" ", "") == rb["house_number"].lower().replace(" ", "") \
        and ra["postal_code"] == rb["postal_code"]
    if not same_place:
        return "diff"
    return "same" if address(ra["street"]) == address(rb["street"]) else "street~"


def _name_status(ra: dict, rb: dict) -> str:
    fa, la, fb, lb = (name(r.get(f, "")) for r in (ra, rb) for f in ("first_name", "last_name"))
    if not (fa and la and fb and lb):
        present = "first" if fa and fb else "last" if la and lb else "none"
        if present == "first":
            return "-first" if name_similarity(fa, fb) >= 0.8 else "-weak"
        return "-" + present
    straight = name_similarity(fa, fb) >= 0.8 and name_similarity(la, lb) >= 0.85
    crossed = name_similarity(fa, lb) >= 0.8 and name_similarity(la, fb) >= 0.85
    return "ok" if straight or crossed else "weak"


def describe(ra: dict, rb: dict) -> tuple[str, ...]:
    return (f"email:{_email_status(ra.get('email'), rb.get('email'))}",
            f"phone:{_phone_status(ra.get('phone'), rb.get('phone'))}",
            f"birth:{_date_status(ra.get('birth_date'), rb.get('birth_date'))}",
            f"addr:{_address_status(ra, rb)}",
            f"name:{_name_status(ra, rb)}")


_RANK = {"same": 5, "fmt": 4, "typo": 3, "street~": 3, "ok": 2, "diff": 1, "weak": 1}
_SHORT = {"email": "E", "phone": "P", "birth_date": "B", "street": "A", "first_name": "F", "last_name": "L"}


def _strength(statuses: tuple[str, ...]) -> tuple[int, ...]:
    ranks = [_RANK.get(s.partition(":")[2], 0) for s in statuses]
    return (sum(r >= 3 for r in ranks[:4]), sum(ranks), *ranks)


def _fields(attributes: dict) -> list[str]:
    return [short for field, short in _SHORT.items() if attributes.get(field)]


def noise_kind(statuses: tuple[str, ...]) -> str:
    """The generator's noise kind that explains a missed relation (the output of `describe`), most specific first:
    a shared identifier written differently, an address from before a move, an identifier both carry but a name the
    rule also needs missing or too different, or no identifier present on both sides at all (missing values)."""
    status = dict(s.partition(":")[::2] for s in statuses)
    evidence = [status[f] for f in ("email", "phone", "birth")] + [status["addr"]]
    if "typo" in evidence or "street~" in evidence:
        return "typo in a shared identifier"
    if "same" in evidence or "fmt" in evidence:
        if status["name"].startswith("-"):
            return "shared identifier, name missing (rule needs it)"
        return "shared identifier, name differs (nickname/typo/swap)"
    if "diff" in evidence:
        return "different value (old address after a move, or an alternate email/phone)"
    return "missing values: no identifier present on both sides"


def analyse(records: int, seed: int, examples: int, scenario: str = "issue") -> dict:
    recs, truth = generate(records, seed, scenario)
    result = unify(recs, parse_ruleset(USER_RULES))
    position = {(r.source, r.record_id): i for i, r in enumerate(recs)}
    profile_of = [0] * len(recs)
    for p_index, profile in enumerate(result.profiles):
        for m in profile.members:
            profile_of[position[(m.source, m.record_id)]] = p_index

    by_person: dict[int, list[int]] = defaultdict(list)
    for i, pid in enumerate(truth):
        by_person[pid].append(i)
    missed: Counter = Counter()
    kinds: Counter = Counter()
    orphans: Counter = Counter()
    shown: dict[tuple, list] = defaultdict(list)
    for members in by_person.values():
        parts: dict[int, list[int]] = defaultdict(list)
        for i in members:
            parts[profile_of[i]].append(i)
        if len(parts) < 2:
            continue
        ordered = sorted(parts.values(), key=lambda part: (-len(part), part))
        main_part = ordered[0]
        for part in ordered[1:]:
            # The best relation of any record of the split-off part to any record of the person's main part.
            best = max((describe(recs[i].attributes, recs[j].attributes) for i in part for j in main_part),
                       key=_strength)
            lost = len(part) * (len(members) - len(part))  # pairs (approximately: once per part) it costs
            missed[best] += lost
            kinds[noise_kind(best)] += lost
            shape = tuple(sorted(f"{recs[i].source}[{','.join(_fields(recs[i].attributes))}]" for i in part))
            orphans[shape] += 1
            if len(shown[best]) < examples:
                shown[best].append(([(recs[i].source, recs[i].attributes) for i in part],
                                    [(recs[j].source, recs[j].attributes) for j in main_part]))

    false: Counter = Counter()
    for edge in result.edges:
        i, j = position[(edge.a.source, edge.a.record_id)], position[(edge.b.source, edge.b.record_id)]
        if truth[i] != truth[j]:
            false[(edge.rule, *describe(recs[i].attributes, recs[j].attributes))] += 1
    false_pairs = 0
    for profile in result.profiles:
        people = Counter(truth[position[(m.source, m.record_id)]] for m in profile.members)
        total = sum(people.values())
        false_pairs += (total * (total - 1) - sum(c * (c - 1) for c in people.values())) // 2

    out = {
        "records": records, "seed": seed, "scenario": scenario,
        "missed_pairs": sum(missed.values()), "false_pairs": false_pairs,
        "missed_by_noise_kind": [{"pairs": n, "kind": k} for k, n in kinds.most_common()],
        "missed_by_category": [{"pairs": n, "category": " ".join(k)} for k, n in missed.most_common(25)],
        "split_off_parts_by_shape": [{"parts": n, "records": " + ".join(k)} for k, n in orphans.most_common(20)],
        "false_edges_by_category": [{"edges": n, "category": " ".join(k)} for k, n in false.most_common(15)],
    }
    if examples:
        out["examples"] = {" ".join(k): v for k, v in list(shown.items())[:15]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--examples", type=int, default=0)
    parser.add_argument("--scenario", choices=SCENARIOS, default="issue")
    args = parser.parse_args()
    print(json.dumps(analyse(args.records, args.seed, args.examples, args.scenario), indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
