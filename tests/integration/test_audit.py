"""The audit trail: a per-tenant hash chain, appended by every state change and staff read, verifiable through the
API and anchored in write-once objects."""
from profilevault.audit import trail
from profilevault.audit.trail import Actor
from profilevault.wiring import build_deps


def test_appended_entries_chain_on_from_each_other(stack):
    deps = build_deps()
    first = trail.record(deps, "source.registered", Actor(sub="u-1", role="admin"), {"source": "crm"})
    second = trail.record(deps, "refresh.completed", Actor.system("refresh"), {"run_id": "ref_1"}, {"records": 3})
    assert (first["seq"], second["seq"]) == (1, 2)
    assert second["prev_hash"] == first["hash"] == trail.entry_hash(first)
    assert second["actor"] == "system:refresh" and first["actor"].startswith("stf_")
