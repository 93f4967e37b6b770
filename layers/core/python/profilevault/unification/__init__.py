"""Unification: match rules, type-aware matching with blocking, clustering, merge into profiles with stable IDs.

Pure and in memory; the caller loads records and stores profiles. Entry points: `parse_ruleset` (rule document ->
`RuleSet` or `InvalidInput`), `unify` (records -> `UnificationResult`), `explain` (why a profile's members joined)
and `suggest` (profiles only a rare full name connects, for a steward to confirm or not).
"""
from profilevault.unification.engine import (
    MatchEdge,
    MemberRef,
    Profile,
    UnificationResult,
    UnifyRecord,
    explain,
    new_profile_id,
    unify,
)
from profilevault.unification.rules import (
    DEFAULT_RULESET,
    Condition,
    MatchException,
    MergePolicy,
    Rule,
    RuleSet,
    parse_ruleset,
)
from profilevault.unification.suggestions import Suggestion, suggest

__all__ = [
    "DEFAULT_RULESET", "Condition", "MatchEdge", "MatchException", "MemberRef", "MergePolicy", "Profile", "Rule",
    "RuleSet", "Suggestion", "UnificationResult", "UnifyRecord", "explain", "new_profile_id", "parse_ruleset",
    "suggest", "unify",
]
