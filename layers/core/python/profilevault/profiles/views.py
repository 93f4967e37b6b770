"""Reading profiles the way each role may: in full, masked, or not at all; search through the blind indexes;
the suggestions of the last run. Every read of profiles by staff is audited (profile IDs and counts only) before
the data is handed out."""
from typing import Any

from pydantic import BaseModel

from profilevault.api import cursors
from profilevault.api.access import PROFILE_FULL_VIEW, PROFILE_MASKED_VIEW, Role
from profilevault.audit import trail
from profilevault.audit.trail import Actor
from profilevault.domain.normalize import normalize_attributes
from profilevault.domain.shown import Shown
from profilevault.errors import Forbidden, InvalidInput, NotFound
from profilevault.keys import vault
from profilevault.observability import capture_method
from profilevault.storage.sealed import IndexRef
from profilevault.wiring import Deps

SEARCHABLE = ("email", "phone", "customer_id")


class MemberView(BaseModel):
    source: str
    record_id: str  # masked for analysts


class ProfileView(Shown):
    id: str
    attributes: dict[str, str]
    previous_ids: list[str]  # profile IDs merged into this one
    members: list[MemberView]
    masked: bool | None = None  # true for analysts


class ProfilePage(BaseModel):
    items: list[ProfileView]
    next_cursor: str | None


class ProfileSearchResult(BaseModel):
    items: list[ProfileView]


class ConditionScore(BaseModel):
    attribute: str
    precision: str | int | float | None
    score: float


class Link(Shown):
    """Which rule joined two members, and how similar each condition's values were."""

    a: MemberView
    b: MemberView
    rule: str
    conditions: list[ConditionScore]
    swapped_names: bool | None = None  # first and last name matched crosswise


class Explanation(BaseModel):
    profile_id: str
    members: list[MemberView]
    links: list[Link]


class SuggestionView(BaseModel):
    profiles: list[str]  # two profile IDs
    reason: str


class SuggestionPage(BaseModel):
    items: list[SuggestionView]
    next_cursor: str | None


def list_suggestions(deps: Deps, limit: int, cursor: str | None) -> SuggestionPage:
    """Possible matches the rules do not make (see unification.suggestions), from the last run."""
    after = None
    if cursor:
        a, _, b = cursors.decode(cursor, cursors.PROFILE_PAIR).partition(":")
        after = (a, b)
    items, last = deps.profiles.page_suggestions(limit, after)
    return SuggestionPage(items=[SuggestionView(profiles=list(s.profiles), reason=s.reason) for s in items],
                          next_cursor=cursors.encode(":".join(last)) if last else None)


def _view(actor: Actor) -> Role:
    role = Role(actor.role)
    if role not in PROFILE_FULL_VIEW | PROFILE_MASKED_VIEW:
        raise Forbidden(f"role {role.value!r} may not read profiles")
    return role


def shown(profile: dict[str, Any], role: Role) -> dict[str, Any]:
    out = {k: profile[k] for k in ("id", "attributes", "previous_ids", "members")}
    if role in PROFILE_MASKED_VIEW:
        out["attributes"] = {k: mask(k, v) for k, v in profile["attributes"].items()}
        out["members"] = [{"source": m["source"], "record_id": mask("record_id", m["record_id"])}
                          for m in profile["members"]]
        out["masked"] = True
    return out


def mask(attribute: str, value: str) -> str:
    """What an analyst sees: enough shape to work with, never the value."""
    if attribute == "email" and "@" in value:
        local, domain = value.split("@", 1)
        return f"{local[:1]}***@{domain}"
    if attribute == "phone":
        return value[:3] + "*" * max(len(value) - 5, 3) + value[-2:]
    if attribute == "birth_date":
        return value[:4] + "-**-**"
    if attribute in ("country", "region"):
        return value
    if attribute == "postal_code":
        return value[:2] + "***"
    return (value[:1] + "***") if value else value


@capture_method
def list_profiles(deps: Deps, actor: Actor, limit: int, cursor: str | None) -> ProfilePage:
    role = _view(actor)
    after = cursors.decode(cursor, cursors.PROFILE) if cursor else None
    sealed, last = deps.profiles.page(limit, after)
    items = [shown(vault.open_document(deps.keyring, s), role) for s in sealed]
    trail.record(deps, "profile.listed", actor, counts={"results": len(items)})
    return ProfilePage.model_validate({"items": items, "next_cursor": cursors.encode(last) if last else None})


def _open_profile(deps: Deps, profile_id: str) -> dict[str, Any]:
    sealed = deps.profiles.get(profile_id)
    if sealed is None:
        raise NotFound(f"no profile {profile_id}")
    return vault.open_document(deps.keyring, sealed)


@capture_method
def get_profile(deps: Deps, actor: Actor, profile_id: str) -> ProfileView:
    role = _view(actor)
    profile = ProfileView.model_validate(shown(_open_profile(deps, profile_id), role))
    trail.record(deps, "profile.read", actor, {"profile_id": profile.id})
    return profile


@capture_method
def explain_profile(deps: Deps, actor: Actor, profile_id: str) -> Explanation:
    role = _view(actor)
    profile = _open_profile(deps, profile_id)
    trail.record(deps, "profile.explained", actor, {"profile_id": profile["id"]})
    if role in PROFILE_MASKED_VIEW:
        hidden = {m["record_id"]: mask("record_id", m["record_id"]) for m in profile["members"]}
        for link in profile["links"]:
            for end in ("a", "b"):
                link[end] = {**link[end], "record_id": hidden.get(link[end]["record_id"], "***")}
    return Explanation.model_validate({"profile_id": profile["id"], "members": shown(profile, role)["members"],
                                       "links": profile["links"]})


@capture_method
def search_profiles(deps: Deps, actor: Actor, query: dict[str, str]) -> ProfileSearchResult:
    """Finds profiles by identifier through the blind indexes: no plaintext index exists to search. The audit
    entry names the attribute searched by and the number of results, never the value."""
    role = _view(actor)
    (attribute, value), = query.items()
    normalised, warnings = normalize_attributes({attribute: value})  # exactly as ingestion stored it
    if attribute not in normalised:
        raise InvalidInput(f"{attribute}: {warnings[0].reason if warnings else 'empty'}")
    members = deps.records.find(IndexRef(attribute, deps.keyring.blind_index(attribute, normalised[attribute])))
    profile_ids = deps.profiles.profile_ids_of(members)
    items = [ProfileView.model_validate(shown(_open_profile(deps, pid), role)) for pid in profile_ids]
    trail.record(deps, "profile.searched", actor, {"attribute": attribute}, {"results": len(items)})
    return ProfileSearchResult(items=items)
