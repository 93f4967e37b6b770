"""The unification engine: records -> clusters -> profiles with stable IDs. Pure and in memory (no AWS).

A run:

1. Records are ordered by (source, record_id), so a run depends only on its input set, not on its order. A record
   given twice keeps the copy with the latest `updated_at` (counted in `counts["duplicates"]`).
2. Each rule yields candidate pairs from blocking, never from all pairs (`_candidate_pairs`):
   - A rule with exact conditions files records under the tuple of their normalised exact values; every record in a
     block satisfies the exact conditions. Without fuzzy conditions all members of a block match each other, so the
     block is linked as a star (n - 1 edges, any size). With fuzzy conditions, a block of more than two records is
     sub-blocked with the blocking keys of its fuzzy conditions of the most selective type (for names: the sound of
     either name, so a typo in one name or swapped names still meet). Comparing whole blocks instead would grow
     quadratically with the data (10x the records puts 10x the strangers on every birthday).
   - A rule with only fuzzy conditions files records under the combined blocking keys of its two most selective
     conditions (see `matching.blocking_keys`); two name conditions combine order-free, so swapped names meet.
   Blocks still above `block_limit` are skipped and counted in `counts["blocks_skipped"]` (they are what makes a
   naive engine quadratic: "Müller" born on 1 January).
   A pair already linked by an earlier rule is not compared again (rules are OR-ed).
3. A candidate pair matches a rule when every condition holds (exact: equal normalised values; fuzzy: type-aware
   similarity >= precision; a missing value never holds). A rule with conditions on both first_name and last_name
   also tries the second record's names crossed over (swapped first/last) and holds if either reading does. A rule
   with a condition on only one of the names (phone + first_name, say) tries the crossed reading too, but then the
   swap must show in full: the other name must also agree crossed over, at the same precision (a record whose first
   name equals the other's last name is not enough: "Thomas" is both). Its score is reported with the others.
4. Clustering is union-find. `always_match` groups are joined first. Then edges are applied best-first (mean
   condition score descending, then rule order). `never_match` is enforced on whole clusters: an edge whose union
   would put a never-match pair into one cluster is refused (`counts["refused"]`), wherever the pair sits in the
   chain. Because edges come best-first, the weakest link of such a chain is the one cut, and each record stays with
   the records it resembles most.
5. Profile IDs: `previous` maps each member to the profile ID it had last run. Every (cluster, previous id) pair is a
   claim weighted by how many of the cluster's members held that id; claims are granted greedily, largest first
   (ties: smaller id, then the cluster with the smaller first member), each cluster and id at most once. So a
   cluster takes the id most of its members held unless a larger claimant took it, in which case it may take its
   next-best previous id; clusters left without an id get `new_id()`. `previous_ids` of a profile are the other
   previous ids its members held: the ids of profiles merged into it and, for a split-off part, the id it was split
   from. Counts: `merged` profiles formed from more than one previous profile, `split` previous profiles whose
   members now sit in more than one profile, `new` profiles with a fresh id, `unchanged` profiles whose id and
   membership are exactly as before (same input twice -> unchanged == profiles).
"""
import gc
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from operator import methodcaller
from typing import Any

from profilevault.unification.disjoint_sets import DisjointSets
from profilevault.unification.matching import NAME_ATTRIBUTES, SELECTIVITY, SIMILARITY, attribute_type, blocking_keys
from profilevault.unification.merge import merge_attributes
from profilevault.unification.normalizers import DEFAULT_STEPS, make_normalizer
from profilevault.unification.rules import Rule, RuleSet

BLOCK_LIMIT = 200
_SMALL_BLOCK = 6  # exact blocks up to this size are sub-blocked by testing each pair
ALWAYS_MATCH_RULE = "always_match"


@dataclass(frozen=True, slots=True, order=True)
class MemberRef:
    source: str
    record_id: str


@dataclass(slots=True)
class UnifyRecord:
    """A record as ingestion stored it: email lowercased, phone E.164, birth_date ISO, names NFC-trimmed.
    `importance`: lower number = more important source. `updated_at`: ISO 8601."""

    source: str
    record_id: str
    importance: int
    updated_at: str
    attributes: dict[str, str]


@dataclass
class Profile:
    id: str
    attributes: dict[str, str]
    members: list[MemberRef]
    previous_ids: list[str]


@dataclass
class MatchEdge:
    """A link that joined two clusters. `scores`: condition attribute -> similarity; `precisions`: the thresholds
    the rule asked for; `swapped`: the names matched crossed over (first_name against last_name)."""

    a: MemberRef
    b: MemberRef
    rule: str
    scores: dict[str, float]
    precisions: dict[str, str | float] = field(default_factory=dict)
    swapped: bool = False


@dataclass
class UnificationResult:
    profiles: list[Profile]
    edges: list[MatchEdge]
    counts: dict[str, int]


def new_profile_id() -> str:
    """"p_" + 26 hex characters (104 random bits): no personal data can leak into an id."""
    return "p_" + secrets.token_hex(13)


@dataclass(slots=True)
class _Condition:
    attribute: str
    kind: str
    exact: bool
    threshold: float
    precision: str | float
    column: list[str | None]
    crossed: list[str | None] | None  # the other name attribute under this condition's normalisation
    similarity: Callable[[str, str], float]


@dataclass(slots=True)
class _CompiledRule:
    index: int
    name: str
    conditions: list[_Condition]  # exact conditions first, so a failing pair is rejected cheaply
    swap: bool
    # A rule with one name condition reads a record's names crossed over only when the whole swap shows: the
    # other name must agree crossed over too (checked at the same precision, reported as a score).
    swap_check: _Condition | None = None


class _Columns:
    """Normalised attribute values per record, computed once per (attribute, steps) and run.

    Each distinct raw value is normalised once and the column is filled by one C-level dict lookup per record:
    a Python call per record and column was the largest single cost of a run (names and codes repeat a lot)."""

    def __init__(self, records: list[UnifyRecord]):
        self._attributes = [rec.attributes for rec in records]
        self._raw: dict[str, list[str | None]] = {}
        self._normalizers: dict[tuple[str, ...], Callable[[str], str]] = {}
        self._columns: dict[tuple[str, tuple[str, ...]], list[str | None]] = {}
        self._keys: dict[tuple[str, str], list[tuple[str, ...] | None]] = {}

    def _raw_column(self, attribute: str) -> list[str | None]:
        raw = self._raw.get(attribute)
        if raw is None:
            raw = self._raw[attribute] = list(map(methodcaller("get", attribute), self._attributes))
        return raw

    def column(self, attribute: str, steps: tuple[str, ...]) -> list[str | None]:
        key = (attribute, steps)
        if key not in self._columns:
            normalize = self._normalizers.get(steps)
            if normalize is None:
                normalize = self._normalizers[steps] = make_normalizer(steps)
            raw = self._raw_column(attribute)
            # A missing or empty value (before or after normalising) is None: it is absent from the table.
            table: dict[str | None, str | None] = {value: normalize(value) or None
                                                   for value in dict.fromkeys(raw) if value}
            self._columns[key] = list(map(table.get, raw))
        return self._columns[key]

    def keys(self, attribute: str) -> list[tuple[str, ...] | None]:
        """Blocking keys per record; tuples, shared between records with the same value (sets would triple memory)."""
        kind = attribute_type(attribute)
        key = (attribute, kind)
        if key not in self._keys:
            column = self.column(attribute, DEFAULT_STEPS[kind])
            table: dict[str | None, tuple[str, ...] | None] = {
                value: tuple(sorted(blocking_keys(kind, value))) or None for value in dict.fromkeys(column)
                if value is not None}
            self._keys[key] = list(map(table.get, column))
        return self._keys[key]


def _compile(rule: Rule, index: int, columns: _Columns) -> _CompiledRule:
    steps_of = {}
    for cond in rule.conditions:
        kind = attribute_type(cond.attribute)
        steps_of[cond.attribute] = tuple(cond.normalize) if cond.normalize is not None else DEFAULT_STEPS[kind]
    names = NAME_ATTRIBUTES & steps_of.keys()
    swap = bool(names)
    if len(names) == 1:
        (only,) = names
        other = "last_name" if only == "first_name" else "first_name"
        steps_of[other] = steps_of[only]
    compiled = []
    for cond in rule.conditions:
        kind = attribute_type(cond.attribute)
        steps = steps_of[cond.attribute]
        crosswise = ("last_name" if cond.attribute == "first_name" else "first_name") \
            if cond.attribute in NAME_ATTRIBUTES else None
        compiled.append(_Condition(
            attribute=cond.attribute, kind=kind, exact=cond.is_exact,
            threshold=1.0 if cond.is_exact else float(cond.precision), precision=cond.precision,
            column=columns.column(cond.attribute, steps),
            crossed=columns.column(crosswise, steps) if swap and crosswise else None,
            similarity=SIMILARITY[kind]))
    compiled.sort(key=lambda c: (not c.exact, SELECTIVITY[c.kind]))
    swap_check = None
    if len(names) == 1:
        name_condition = next(c for c in compiled if c.attribute in NAME_ATTRIBUTES)
        other = "last_name" if name_condition.attribute == "first_name" else "first_name"
        swap_check = _Condition(
            attribute=other, kind="name", exact=name_condition.exact, threshold=name_condition.threshold,
            precision=name_condition.precision, column=columns.column(other, steps_of[other]),
            crossed=columns.column(name_condition.attribute, steps_of[other]), similarity=SIMILARITY["name"])
    return _CompiledRule(index=index, name=rule.name, conditions=compiled, swap=swap, swap_check=swap_check)


def _holds(rule: _CompiledRule, i: int, j: int, crossed: bool) -> dict[str, float] | None:
    scores: dict[str, float] = {}
    conditions = rule.conditions + [rule.swap_check] if crossed and rule.swap_check is not None else rule.conditions
    for cond in conditions:
        a = cond.column[i]
        b = cond.crossed[j] if crossed and cond.crossed is not None else cond.column[j]
        if a is None or b is None:
            return None
        if cond.exact:
            if a != b:
                return None
            scores[cond.attribute] = 1.0
        else:
            score = cond.similarity(a, b)
            if score < cond.threshold:
                return None
            scores[cond.attribute] = round(score, 4)
    return scores


def _match(rule: _CompiledRule, i: int, j: int) -> tuple[dict[str, float], bool] | None:
    scores = _holds(rule, i, j, crossed=False)
    if scores is not None:
        return scores, False
    if rule.swap:
        scores = _holds(rule, i, j, crossed=True)
        if scores is not None:
            return scores, True
    return None


def _exact_keys(rule: _CompiledRule, exact: list[_Condition]) -> list[Any]:
    """Per record, the block key of the rule's exact conditions (None when a value is missing)."""
    cols = [c.column for c in exact]
    # With both names exact, file under the unordered name pair so swapped names share a block.
    unordered = rule.swap and rule.swap_check is None and all(
        c.exact for c in rule.conditions if c.attribute in NAME_ATTRIBUTES)
    if len(cols) == 1 and not unordered:
        return cols[0]  # the values themselves: a string hashes once, a tuple at every lookup
    keys: list[Any] = [None if None in values else values for values in zip(*cols, strict=True)]
    if unordered:
        is_name = [c.attribute in NAME_ATTRIBUTES for c in exact]
        for i, values in enumerate(keys):
            if values is not None:
                names = tuple(sorted(v for name, v in zip(is_name, values, strict=True) if name))
                keys[i] = names + tuple(v for name, v in zip(is_name, values, strict=True) if not name)
    return keys


def _candidate_pairs(rule: _CompiledRule, columns: _Columns, n: int, limit: int,
                     counts: Counter) -> Iterator[tuple[int, int]]:
    """Candidate pairs (i < j) of one rule from its blocks; see the module docstring. The order of the pairs is
    irrelevant: every pair comes at most once per rule and matches are sorted before clustering."""
    exact = [c for c in rule.conditions if c.exact]
    fuzzy = [c for c in rule.conditions if not c.exact]
    if exact:
        # A block is its first (smallest) member plus the later ones; most blocks are single records, so they get
        # no list of their own.
        first: dict[Any, int] = {}
        setdefault = first.setdefault
        if not fuzzy:  # a star from each block's first member
            for i, key in enumerate(_exact_keys(rule, exact)):
                if key is not None and (j := setdefault(key, i)) != i:
                    yield j, i
            return
        later: dict[int, list[int]] = defaultdict(list)
        for i, key in enumerate(_exact_keys(rule, exact)):
            if key is not None and (j := setdefault(key, i)) != i:
                later[j].append(i)
        # Sub-blocks use the keys of every fuzzy condition of the most selective type (both names, say), so a typo
        # in one name or names swapped between the fields still meet.
        sub_keys = [columns.keys(c.attribute) for c in fuzzy if c.kind == fuzzy[0].kind]
        if rule.swap_check is not None and fuzzy[0].kind == "name":  # a swapped record files elsewhere
            sub_keys.append(columns.keys(rule.swap_check.attribute))
        for j, others in later.items():
            if len(others) == 1:
                yield j, others[0]
            else:
                yield from _sub_blocked([j, *others], sub_keys, limit, counts)
        return
    ordered = sorted(fuzzy, key=lambda c: SELECTIVITY[c.kind])
    keys_one = columns.keys(ordered[0].attribute)
    keys_two = columns.keys(ordered[1].attribute) if len(ordered) > 1 else None
    both_names = keys_two is not None and ordered[0].kind == ordered[1].kind == "name"
    blocks: dict[Any, list[int]] = defaultdict(list)
    for i in range(n):
        k1 = keys_one[i]
        if k1 is None:
            continue
        if keys_two is None:
            for key in k1:
                blocks[key].append(i)
            continue
        k2 = keys_two[i]
        if k2 is None:
            continue
        for a in k1:
            for b in k2:
                blocks[(a, b) if not both_names or a <= b else (b, a)].append(i)
    seen: set[tuple[int, int]] = set()
    for members in blocks.values():
        if len(members) < 2:
            continue
        if len(members) > limit:
            counts["blocks_skipped"] += 1
            continue
        for pair in combinations(members, 2):
            if pair not in seen:
                seen.add(pair)
                yield pair


def _sub_blocked(members: list[int], key_columns: list[list[tuple[str, ...] | None]], limit: int,
                 counts: Counter) -> Iterator[tuple[int, int]]:
    keys_of: list[Collection[str]] = []
    for i in members:
        found = [keys for column in key_columns if (keys := column[i]) is not None]
        keys_of.append(found[0] if len(found) == 1 else set().union(*found))
    if len(members) <= min(limit, _SMALL_BLOCK):
        # A small block: test each pair for a shared key directly (the same pairs as the sub-blocks give, since no
        # sub-block can exceed the limit), instead of building a dict of sub-blocks.
        for (i, ki), (j, kj) in combinations(zip(members, keys_of, strict=True), 2):
            if ki and kj and not set(ki).isdisjoint(kj):
                yield i, j
        return
    sub: dict[str, list[int]] = defaultdict(list)
    for i, its_keys in zip(members, keys_of, strict=True):
        for key in its_keys:
            sub[key].append(i)
    seen: set[tuple[int, int]] = set()
    for group in sub.values():
        if len(group) > limit:
            counts["blocks_skipped"] += 1
            continue
        for pair in combinations(group, 2):
            if pair not in seen:
                seen.add(pair)
                yield pair


class _Clusters(DisjointSets):
    """Union-find with never-match constraints kept per cluster root (only for the few constrained clusters)."""

    def __init__(self, n: int, never: dict[int, set[int]]):
        super().__init__(n)
        self.forbidden: dict[int, set[int]] = {i: set(p) for i, p in never.items()}  # root -> records it refuses
        self.holds: dict[int, set[int]] = {i: {i} for i in never}  # root -> its constrained members

    def union(self, i: int, j: int) -> bool | None:
        """True if joined, None if already together, False if refused by a never-match pair."""
        ra, rb = self.find(i), self.find(j)
        if ra == rb:
            return None
        if self.forbidden:
            fa, fb = self.forbidden.get(ra), self.forbidden.get(rb)
            if fa and not fa.isdisjoint(self.holds.get(rb, ())) or fb and not fb.isdisjoint(self.holds.get(ra, ())):
                return False
        ra, rb = self._link(ra, rb)
        for table in (self.forbidden, self.holds):
            moved = table.pop(rb, None)
            if moved:
                table.setdefault(ra, set()).update(moved)
        return True


def _dedupe(records: Iterable[UnifyRecord]) -> tuple[list[UnifyRecord], int]:
    # Per source, then per record_id: the order of (source, record_id) without building and comparing a tuple per
    # record (sorting plain strings is several times faster).
    by_source: dict[str, dict[str, UnifyRecord]] = {}
    duplicates = 0
    for rec in records:
        by_id = by_source.get(rec.source)
        if by_id is None:
            by_id = by_source[rec.source] = {}
        kept = by_id.get(rec.record_id)
        if kept is not None:
            duplicates += 1
            if kept.updated_at > rec.updated_at:
                continue
        by_id[rec.record_id] = rec
    ordered: list[UnifyRecord] = []
    for source in sorted(by_source):
        by_id = by_source[source]
        ordered.extend(map(by_id.__getitem__, sorted(by_id)))
    return ordered, duplicates


def _index_exceptions(ruleset: RuleSet, index: Mapping[MemberRef, int]) -> tuple[dict[int, set[int]], list[list[int]]]:
    never: dict[int, set[int]] = defaultdict(set)
    always: list[list[int]] = []
    for exc in ruleset.exceptions:
        present = [index[ref] for m in exc.members if (ref := MemberRef(m.source, m.record_id)) in index]
        if exc.never_match is not None:
            for a, b in combinations(present, 2):
                never[a].add(b)
                never[b].add(a)
        elif len(present) > 1:
            always.append(present)
    return dict(never), always


def _assign_ids(clusters: list[list[int]], refs: list[MemberRef], previous: Mapping[MemberRef, str],
                new_id: Callable[[], str], counts: Counter) -> tuple[list[str], list[list[str]]]:
    if not previous:  # first run: nothing to claim, every cluster gets a new id
        counts["new"] += len(clusters)
        return [new_id() for _ in clusters], [[] for _ in clusters]
    held = [Counter(pid for i in members if (pid := previous.get(refs[i])) is not None) for members in clusters]
    claims = sorted((-count, pid, ci) for ci, tally in enumerate(held) for pid, count in tally.items())
    ids: list[str | None] = [None] * len(clusters)
    taken: set[str] = set()
    for _, pid, ci in claims:
        if ids[ci] is None and pid not in taken:
            ids[ci] = pid
            taken.add(pid)
    members_before: dict[str, set[MemberRef]] = defaultdict(set)
    for ref, pid in previous.items():
        members_before[pid].add(ref)
    placed: dict[str, set[int]] = defaultdict(set)  # previous id -> clusters holding its members now
    final: list[str] = []
    previous_ids: list[list[str]] = []
    for ci, members in enumerate(clusters):
        pid = ids[ci]
        if pid is None:
            pid = new_id()
            counts["new"] += 1
        elif members_before[pid] == {refs[i] for i in members}:
            counts["unchanged"] += 1
        if len(held[ci]) > 1:
            counts["merged"] += 1
        for old in held[ci]:
            placed[old].add(ci)
        final.append(pid)
        previous_ids.append(sorted(set(held[ci]) - {pid}))
    counts["split"] = sum(1 for where in placed.values() if len(where) > 1)
    return final, previous_ids


def unify(records: Iterable[UnifyRecord], ruleset: RuleSet, previous: Mapping[MemberRef, str] | None = None,
          new_id: Callable[[], str] = new_profile_id, *, block_limit: int = BLOCK_LIMIT) -> UnificationResult:
    """Cluster `records` with `ruleset` and merge every cluster into a profile; see the module docstring."""
    # A run allocates millions of small acyclic objects (tuples, sets, dicts); CPython's cyclic collector would rescan
    # them over and over, which costs ~40% at 100k records and grows faster than linearly. Nothing here forms cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _unify(records, ruleset, previous or {}, new_id, block_limit)
    finally:
        if collecting:
            gc.enable()


def _unify(records: Iterable[UnifyRecord], ruleset: RuleSet, previous: Mapping[MemberRef, str],
           new_id: Callable[[], str], block_limit: int) -> UnificationResult:
    recs, duplicates = _dedupe(records)
    n = len(recs)
    refs = [MemberRef(r.source, r.record_id) for r in recs]
    counts: Counter = Counter(records=n, duplicates=duplicates, blocks_skipped=0, candidate_pairs=0, refused=0,
                              merged=0, split=0, new=0, unchanged=0)

    columns = _Columns(recs)
    rules = [_compile(rule, k, columns) for k, rule in enumerate(ruleset.rules)]
    linked: set[int] = set()  # i * n + j: an int hashes for free, a tuple at every lookup
    found: list[tuple[float, int, int, int, dict[str, float], bool]] = []
    candidates = 0
    for rule in rules:
        # A rule of exact conditions only holds for every pair of its blocks (all values equal by construction),
        # unless it must also try swapped names.
        trivial = None if rule.swap or not all(c.exact for c in rule.conditions) else \
            {c.attribute: 1.0 for c in rule.conditions}
        for i, j in _candidate_pairs(rule, columns, n, block_limit, counts):
            pair = i * n + j
            if pair in linked:
                continue
            candidates += 1
            if trivial is not None:
                matched: tuple[dict[str, float], bool] | None = (dict(trivial), False)
            else:
                matched = _match(rule, i, j)
            if matched is not None:
                scores, swapped = matched
                linked.add(pair)
                found.append((-sum(scores.values()) / len(scores), rule.index, i, j, scores, swapped))
    counts["candidate_pairs"] = candidates
    counts["matches"] = len(found)
    # (rule, i, j) is unique, so the comparison never reaches the scores dict; no key tuple per edge needed.
    found.sort()

    never, always = _index_exceptions(ruleset, {ref: i for i, ref in enumerate(refs)}) if ruleset.exceptions \
        else ({}, [])
    clusters = _Clusters(n, never)
    edges: list[MatchEdge] = []
    for group in always:
        for other in group[1:]:
            if clusters.union(group[0], other):
                edges.append(MatchEdge(refs[group[0]], refs[other], ALWAYS_MATCH_RULE, {}))
    precisions = [{c.attribute: c.precision for c in rule.conditions} for rule in rules]
    for _, rule_index, i, j, scores, swapped in found:
        joined = clusters.union(i, j)
        if joined:
            edges.append(MatchEdge(refs[i], refs[j], rules[rule_index].name, scores, precisions[rule_index], swapped))
        elif joined is False:
            counts["refused"] += 1

    by_root: dict[int, list[int]] = defaultdict(list)
    find = clusters.find
    for i in range(n):
        by_root[find(i)].append(i)
    # Members ascend and a cluster is first seen at its first member, so clusters come ordered by their first member.
    groups = list(by_root.values())
    ids, previous_ids = _assign_ids(groups, refs, previous, new_id, counts)
    profiles = [
        Profile(id=pid, attributes=merge_attributes([recs[i] for i in members], ruleset.merge),
                members=[refs[i] for i in members], previous_ids=prev)
        for pid, prev, members in zip(ids, previous_ids, groups, strict=True)
    ]
    counts["profiles"] = len(profiles)
    return UnificationResult(profiles=profiles, edges=edges, counts=dict(counts))


def explain(profile: Profile, result_edges: Iterable[MatchEdge]) -> dict:
    """Which rule and which conditions joined which members of `profile`, with the similarity scores."""
    members = set(profile.members)
    links = []
    for edge in result_edges:
        if edge.a not in members:
            continue
        link: dict[str, Any] = {
            "a": {"source": edge.a.source, "record_id": edge.a.record_id},
            "b": {"source": edge.b.source, "record_id": edge.b.record_id},
            "rule": edge.rule,
            "conditions": [{"attribute": attribute, "precision": edge.precisions.get(attribute), "score": score}
                           for attribute, score in edge.scores.items()],
        }
        if edge.swapped:
            link["swapped_names"] = True
        links.append(link)
    return {"profile_id": profile.id,
            "members": [{"source": m.source, "record_id": m.record_id} for m in profile.members],
            "links": links}
