"""Unification: match rules, type-aware matching with blocking, clustering, merge into profiles with stable IDs.

Pure and in memory; the caller loads records and stores profiles. Entry points: `parse_ruleset` (rule document ->
`RuleSet` or `InvalidInput`), `unify` (records -> `UnificationResult`) and `explain` (why a profile's members joined).
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

__all__ = [
    "DEFAULT_RULESET", "Condition", "MatchEdge", "MatchException", "MemberRef", "MergePolicy", "Profile", "Rule",
    "RuleSet", "UnificationResult", "UnifyRecord", "explain", "new_profile_id", "parse_ruleset", "unify",
]
