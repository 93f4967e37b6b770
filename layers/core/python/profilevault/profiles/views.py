"""Reading profiles the way each role may: in full, masked, or not at all; search through the blind indexes;
the suggestions of the last run."""


from profilevault.api.access import PROFILE_FULL_VIEW, PROFILE_MASKED_VIEW, Role
from profilevault.domain.normalize import normalize_attributes
from profilevault.errors import Forbidden, InvalidInput, NotFound
from profilevault.keys import vault
from profilevault.observability import capture_method
from profilevault.storage import profile_store, store
from profilevault.storage.profile_store import PROFILES
from profilevault.wiring import Deps, profile_tables

SEARCHABLE = ("email", "phone", "customer_id")


def list_suggestions(deps: Deps, limit: int, cursor: str | None) -> dict:
    """Possible matches the rules do not make (see unification.suggestions), from the last run."""
    items, next_cursor = profile_store.page_suggestions(deps.dynamodb, profile_tables(deps), deps.tenant, limit, cursor)
    return {"items": items, "next_cursor": next_cursor}


def _view(role: Role) -> None:
    if role not in PROFILE_FULL_VIEW | PROFILE_MASKED_VIEW:
        raise Forbidden(f"role {role.value!r} may not read profiles")


def shown(profile: dict, role: Role) -> dict:
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
def list_profiles(deps: Deps, role: Role, limit: int, cursor: str | None) -> dict:
    _view(role)
    pairs, next_cursor = profile_store.page_profile_items(deps.dynamodb, profile_tables(deps), deps.tenant, limit,
                                                          cursor)
    return {"items": [shown(vault.open_document(deps.keyring, PROFILES, *p), role) for p in pairs],
            "next_cursor": next_cursor}


def _open_profile(deps: Deps, profile_id: str) -> dict:
    items = profile_store.get_profile_items(deps.dynamodb, profile_tables(deps), deps.tenant, profile_id)
    if items is None:
        raise NotFound(f"no profile {profile_id}")
    return vault.open_document(deps.keyring, PROFILES, *items)


@capture_method
def get_profile(deps: Deps, role: Role, profile_id: str) -> dict:
    _view(role)
    return shown(_open_profile(deps, profile_id), role)


@capture_method
def explain_profile(deps: Deps, role: Role, profile_id: str) -> dict:
    _view(role)
    profile = _open_profile(deps, profile_id)
    if role in PROFILE_MASKED_VIEW:
        hidden = {m["record_id"]: mask("record_id", m["record_id"]) for m in profile["members"]}
        for link in profile["links"]:
            for end in ("a", "b"):
                link[end] = {**link[end], "record_id": hidden.get(link[end]["record_id"], "***")}
    return {"profile_id": profile["id"], "members": shown(profile, role)["members"], "links": profile["links"]}


@capture_method
def search_profiles(deps: Deps, role: Role, query: dict[str, str]) -> dict:
    """Finds profiles by identifier through the blind indexes: no plaintext index exists to search."""
    _view(role)
    (attribute, value), = query.items()
    normalised, warnings = normalize_attributes({attribute: value})  # exactly as ingestion stored it
    if attribute not in normalised:
        raise InvalidInput(f"{attribute}: {warnings[0].reason if warnings else 'empty'}")
    ref = f"{attribute}#{deps.keyring.blind_index(attribute, normalised[attribute])}"
    members = store.find_index_entries(deps.dynamodb, deps.tables, deps.tenant, ref)
    profile_ids = profile_store.profile_ids_of_members(deps.dynamodb, profile_tables(deps), deps.tenant, members)
    return {"items": [get_profile(deps, role, pid) for pid in profile_ids]}
