"""The audit chain's pure parts: the canonical hash, and the guard that keeps personal data out of entries."""
import pytest

from profilevault.audit import trail
from profilevault.audit.trail import Actor

ENTRY = {"seq": 7, "at": "2026-03-01T10:00:00.000+00:00", "actor": "stf_0123456789abcdef0123", "role": "admin",
         "action": "profile.read", "target": {"profile_id": "p_1"}, "counts": {}, "prev_hash": "ab" * 32}


def test_the_hash_covers_every_field_but_itself_and_ignores_key_order():
    reordered = dict(reversed(list(ENTRY.items())))
    assert trail.entry_hash(reordered) == trail.entry_hash(ENTRY) == trail.entry_hash({**ENTRY, "hash": "x"})
    for field, other in (("seq", 8), ("at", "2026-03-01T10:00:00.001+00:00"), ("actor", "stf_other"),
                         ("role", "auditor"), ("action", "profile.explained"), ("target", {"profile_id": "p_2"}),
                         ("counts", {"results": 1}), ("prev_hash", "cd" * 32)):
        assert trail.entry_hash({**ENTRY, field: other}) != trail.entry_hash(ENTRY), field


@pytest.mark.parametrize(("target", "counts"), [
    ({"email": "anna@example.org"}, None),        # an e-mail address is not a surrogate ID
    ({"name": "Anna Schmidt"}, None),             # nor is a name
    ({"profile_id": "x" * 201}, None),
    ({"Profile ID": "p_1"}, None),
    ({"profile_id": 12}, None),
    (None, {"results": "3"}),
    (None, {"results": True}),
])
def test_a_target_that_is_not_surrogate_ids_is_refused_before_anything_is_stored(target, counts):
    with pytest.raises(ValueError):
        trail.record(None, "profile.read", Actor(sub="s", role="admin"), target, counts)  # no storage touched


@pytest.mark.parametrize(("action", "actor"), [
    ("read", Actor(sub="s", role="admin")),                  # actions are <area>.<verb>
    ("profile.read", Actor(sub=None, role="admin")),         # staff have a sub
    ("profile.read", Actor(sub="s", role="system")),         # the system has none
    ("profile.read", Actor(sub="s", role="superuser")),
])
def test_malformed_actions_and_actors_are_refused(action, actor):
    with pytest.raises(ValueError):
        trail.record(None, action, actor)


def test_system_actors_have_fixed_names():
    assert Actor.system("erasure-workflow") == Actor(sub=None, role="system", name="erasure-workflow")
    with pytest.raises(ValueError):
        Actor.system("Erasure Workflow")
