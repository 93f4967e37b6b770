"""The tenant's unification rule set, sealed like a record (its exceptions name record IDs)."""


from profilevault.audit import trail
from profilevault.audit.trail import Actor
from profilevault.keys import vault
from profilevault.storage import profile_store
from profilevault.storage.profile_store import RULES
from profilevault.unification.rules import DEFAULT_RULESET, RuleSet
from profilevault.wiring import Deps, profile_tables


def get_ruleset(deps: Deps) -> RuleSet:
    items = profile_store.get_rules_items(deps.dynamodb, profile_tables(deps), deps.tenant)
    if items is None:
        return DEFAULT_RULESET
    return RuleSet.model_validate(vault.open_document(deps.keyring, RULES, *items)["ruleset"])


def put_ruleset(deps: Deps, ruleset: RuleSet, actor: Actor) -> dict:
    key = profile_store.rules_key(deps.tenant)
    document = {"ruleset": ruleset.model_dump(mode="json"), "updated_at": deps.now()}
    item, key_item = vault.seal_document(deps.keyring, RULES, key["pk"]["S"], key["sk"]["S"], document)
    profile_store.replace_sealed(deps.dynamodb, profile_tables(deps), item, key_item)
    trail.record(deps, "ruleset.changed", actor, counts={"rules": len(ruleset.rules),
                                                          "exceptions": len(ruleset.exceptions)})
    return ruleset.model_dump(mode="json")
