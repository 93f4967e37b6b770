"""The match-rule document of `PUT /v1/unification/rules`, in the style of Dynamics 365 Customer Insights.

Rules are tried in order and OR-ed; the conditions of one rule are AND-ed. A condition compares one attribute of two
records, either exactly (after normalisation) or fuzzily with a similarity threshold in (0, 1] (the measure depends on
the attribute type, see `profilevault.unification.matching`). `normalize` lists the normalisations applied before the
comparison (see `profilevault.unification.normalizers`); without it the attribute type's defaults apply.

Exceptions: `never_match` lists records that must never end in one profile; `always_match` lists records that always
join. Merge: a policy per field (`importance`, `most_recent`, `most_filled`), a default for all other fields, and field
groups (e.g. the address) whose fields are taken together from one winning record.

`parse_ruleset` turns a JSON document into a `RuleSet` or raises `InvalidInput` (HTTP 422) with readable messages.
"""
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from profilevault.domain.sources import is_known_attribute, repeated
from profilevault.errors import InvalidInput
from profilevault.unification.disjoint_sets import DisjointSets

NORMALIZATIONS = frozenset({
    "whitespace", "lowercase", "unicode_to_ascii", "symbols", "numerals", "phone", "email", "name", "date", "address",
})
MergePolicyName = Literal["importance", "most_recent", "most_filled"]
RuleName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")]


def _check_attribute(name: str) -> str:
    if not is_known_attribute(name):
        raise ValueError(f"unknown attribute {name!r}; use a standard attribute or custom.<name>")
    return name


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attribute: str
    precision: Literal["exact"] | float = "exact"
    normalize: list[str] | None = None

    @field_validator("attribute")
    @classmethod
    def _attribute_known(cls, value: str) -> str:
        return _check_attribute(value)

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_in_range(cls, value: Any) -> Any:
        # bool is an int in Python; `true` is not a precision.
        if isinstance(value, bool) or not (value == "exact" or isinstance(value, int | float)):
            raise ValueError('precision must be "exact" or a number in (0, 1]')
        if value != "exact" and not 0 < value <= 1:
            raise ValueError(f"precision {value} is outside (0, 1]")
        return value if value == "exact" else float(value)

    @field_validator("normalize")
    @classmethod
    def _normalizations_known(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - NORMALIZATIONS)
        if unknown:
            raise ValueError(f"unknown normalization(s) {unknown}; use any of {sorted(NORMALIZATIONS)}")
        return list(dict.fromkeys(value))

    @property
    def is_exact(self) -> bool:
        return self.precision == "exact"


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: RuleName
    conditions: list[Condition] = Field(min_length=1, max_length=10)

    @field_validator("conditions")
    @classmethod
    def _attributes_once(cls, conditions: list[Condition]) -> list[Condition]:
        doubled = repeated([c.attribute for c in conditions])
        if doubled:
            raise ValueError(f"attribute(s) {doubled} used in more than one condition of the same rule")
        return conditions


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, max_length=63)
    record_id: str = Field(min_length=1, max_length=1024)

    @field_validator("record_id", mode="before")
    @classmethod
    def _numbers_are_ids_too(cls, value: Any) -> Any:
        # Users write {"record_id": 17} as readily as "17"; primary keys are strings after ingestion.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class MatchException(BaseModel):
    """Exactly one of `never_match` / `always_match`, each naming at least two records."""

    model_config = ConfigDict(extra="forbid")

    never_match: list[Member] | None = Field(default=None, min_length=2, max_length=1000)
    always_match: list[Member] | None = Field(default=None, min_length=2, max_length=1000)

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> "MatchException":
        if (self.never_match is None) == (self.always_match is None):
            raise ValueError("an exception has exactly one of never_match or always_match")
        members = self.members
        if len(set(members)) != len(members):
            raise ValueError("an exception lists the same record twice")
        return self

    @property
    def members(self) -> list[Member]:
        return self.never_match if self.never_match is not None else self.always_match  # type: ignore[return-value]


Exception_ = MatchException  # the name used in the engine brief


class MergePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: MergePolicyName = "importance"
    fields: dict[str, MergePolicyName] = Field(default_factory=dict)
    groups: list[list[str]] = Field(default_factory=list)

    @field_validator("fields")
    @classmethod
    def _field_names_known(cls, fields: dict[str, str]) -> dict[str, str]:
        for name in fields:
            _check_attribute(name)
        return fields

    @field_validator("groups")
    @classmethod
    def _groups_disjoint(cls, groups: list[list[str]]) -> list[list[str]]:
        seen: set[str] = set()
        for group in groups:
            if len(group) < 2:
                raise ValueError("a merge group has at least two attributes")
            for name in group:
                _check_attribute(name)
                if name in seen:
                    raise ValueError(f"attribute {name!r} appears in more than one merge group (or twice)")
                seen.add(name)
        return groups

    def policy_for(self, attribute: str) -> str:
        return self.fields.get(attribute, self.default)


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(min_length=1, max_length=50)
    exceptions: list[MatchException] = Field(default_factory=list, max_length=10_000)
    merge: MergePolicy = Field(default_factory=MergePolicy)

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[Rule]) -> list[Rule]:
        doubled = repeated([r.name for r in rules])
        if doubled:
            raise ValueError(f"rule name(s) {doubled} used more than once")
        return rules

    @model_validator(mode="after")
    def _exceptions_consistent(self) -> "RuleSet":
        # always_match groups chain (A~B, B~C join A and C); a never_match pair inside one such chain
        # can not be honoured, so the document is contradictory and rejected.
        named: dict[Member, int] = {}
        for exc in self.exceptions:
            for m in (exc.always_match or []) + (exc.never_match or []):
                named.setdefault(m, len(named))
        chains = DisjointSets(len(named))
        for exc in self.exceptions:
            if exc.always_match is not None:
                for other in exc.always_match[1:]:
                    chains.union(named[exc.always_match[0]], named[other])
        for exc in self.exceptions:
            if exc.never_match is not None:
                roots = [chains.find(named[m]) for m in exc.never_match]
                if len(set(roots)) != len(roots):
                    raise ValueError("a never_match exception names records that always_match exceptions join")
        return self


def parse_ruleset(document: Mapping[str, Any]) -> RuleSet:
    """Validate a rule document; errors become one `InvalidInput` listing every problem with its location."""
    try:
        return RuleSet.model_validate(document)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in error["loc"]) or "document"
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
        raise InvalidInput("invalid unification rules: " + "; ".join(problems)) from None


# What a user would write without tuning: identifiers match on their own, except the phone, which households
# share (a landline), so it also needs a similar first name; names need a second, independent piece of evidence.
DEFAULT_RULESET = RuleSet.model_validate({
    "rules": [
        {"name": "same-email", "conditions": [{"attribute": "email", "precision": "exact"}]},
        {"name": "same-national-id", "conditions": [{"attribute": "national_id", "precision": "exact"}]},
        {"name": "phone-and-first-name", "conditions": [
            {"attribute": "phone", "precision": "exact"},
            {"attribute": "first_name", "precision": 0.8}]},
        {"name": "phone-and-birthday", "conditions": [
            {"attribute": "phone", "precision": "exact"},
            {"attribute": "birth_date", "precision": "exact"}]},
        {"name": "similar-email-same-name", "conditions": [
            {"attribute": "email", "precision": 0.9},
            {"attribute": "first_name", "precision": "exact"},
            {"attribute": "last_name", "precision": "exact"}]},
        {"name": "name-and-birthday", "conditions": [
            {"attribute": "last_name", "precision": 0.85},
            {"attribute": "first_name", "precision": 0.8},
            {"attribute": "birth_date", "precision": "exact"}]},
        {"name": "name-and-address", "conditions": [
            {"attribute": "last_name", "precision": 0.85},
            {"attribute": "first_name", "precision": 0.8},
            {"attribute": "street", "precision": 0.85},
            {"attribute": "house_number", "precision": "exact"},
            {"attribute": "postal_code", "precision": "exact"}]},
    ],
    "merge": {
        "default": "importance",
        "fields": {"email": "most_recent", "phone": "most_recent"},
        "groups": [["street", "house_number", "address_line2", "postal_code", "city", "region", "country"]],
    },
})
