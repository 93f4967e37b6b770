"""The tenant's unification rule set, sealed like a record (its exceptions name record IDs)."""
from profilevault.audit import trail
from profilevault.audit.trail import Actor
from profilevault.keys import vault
from profilevault.unification.rules import DEFAULT_RULESET, RuleSet
from profilevault.wiring import Deps


def get_ruleset(deps: Deps) -> RuleSet:
    sealed = deps.rulesets.get()
    if sealed is None:
        return DEFAULT_RULESET
    return RuleSet.model_validate(vault.open_document(deps.keyring, sealed)["ruleset"])


def put_ruleset(deps: Deps, ruleset: RuleSet, actor: Actor) -> RuleSet:
    document = {"ruleset": ruleset.model_dump(mode="json"), "updated_at": deps.now()}
    deps.rulesets.put(vault.seal(deps.keyring, deps.rulesets.address(), document))
    trail.record(deps, "ruleset.changed", actor, counts={"rules": len(ruleset.rules),
                                                          "exceptions": len(ruleset.exceptions)})
    return ruleset
