"""Type-aware similarity measures and blocking keys.

Every attribute has a type (`attribute_type`), and the type decides how two normalised values are compared:

- names (first_name, last_name): the maximum of the optimal-string-alignment similarity (1 - Damerau-Levenshtein
  distance / longer length: a transposition is one error) and rapidfuzz's token_sort_ratio (Indel similarity of the
  sorted words, so "Anna Maria" ~ "Maria Anna" and an inserted letter costs little), computed on the values and again
  after mapping every word through a small nickname table (Sepp -> Josef), where a nickname scores 1.0 against its full
  name. Jaro-Winkler was tried and rejected: its bonus for a shared prefix scores different given names of one
  household as near-equal (Maria/Marco 0.81, Birgit/Brigitte 0.88, with OSA/Indel 0.6 and 0.71), and households
  share last name, address and landline, so that bonus merges different people.
  Swapped first/last names are handled by the engine: a rule with conditions on both first_name and last_name also
  tries the other record's names crossed over, and the rule holds if either reading satisfies all its conditions.
- addresses (street, address_line2): rapidfuzz token_set_ratio on the normalised street ("Hauptstr" and "Hauptstraße"
  normalise alike; extra words such as "Hinterhaus" do not hurt).
- house numbers: 1.0 if equal, 0.9 if the number agrees and only the letter suffix differs ("12" vs "12a"), else 0.
- emails: 0 unless both addresses have the same domain and the same digits and separators in the local part, in
  the same order (thomas.mueller73@, thomas_mueller@ and thomas.mueller@web.de are other mailboxes, typically a
  namesake's: providers hand out the free variant of a taken name); otherwise the optimal-string-alignment similarity
  of the local parts, so a mistyped, missing, extra or transposed letter is one error.
- identifiers (phone, national_id, customer_id, postal_code) and other text: normalised Indel similarity
  (rapidfuzz `Indel.normalized_similarity`, i.e. 1 - edit distance with insertions/deletions / total length).
- dates (birth_date): 1.0 if equal, 0.95 for day and month swapped, 0.9 for one wrong digit, 0.85 for two adjacent
  digits transposed, otherwise at most 0.7 (0.7 x Indel similarity), so any precision above 0.7 accepts only those
  well-known typing errors.

An exact condition holds when the normalised values are equal (score 1.0). A missing or empty value never matches.

Blocking keys (`blocking_keys`) give the candidates for fuzzy conditions; they are computed from the value normalised
with the type's default steps, so they do not depend on a user's choice of normalisations:
names -> Cologne phonetic code of every word and of its nickname's full form (typos that keep the sound keep the key),
dates -> the value and its day/month-swapped form, phone -> last 6 digits, email -> first and last 4 characters of the
local part, other identifiers -> first and last 4 characters, addresses -> first 4 letters of each word, house
numbers -> the digits, other text -> first 3 characters.
"""
from collections.abc import Callable

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, Indel

NAME_ATTRIBUTES = frozenset({"first_name", "last_name"})
_TYPES = {
    "first_name": "name", "last_name": "name", "birth_date": "date", "phone": "phone", "email": "email",
    "national_id": "identifier", "customer_id": "identifier", "postal_code": "identifier",
    "street": "address", "address_line2": "address", "house_number": "house_number",
}
# How selective a blocking key of each type is (lower is better); used to choose which fuzzy conditions block.
SELECTIVITY = {"phone": 0, "email": 0, "identifier": 0, "date": 1, "name": 2, "house_number": 3, "address": 3,
               "text": 4}


def attribute_type(attribute: str) -> str:
    return _TYPES.get(attribute, "text")


# Common German, English and Italian nicknames -> a canonical full form. Deliberately modest: every entry is a
# potential false positive, so only forms that are unambiguous in practice are listed.
_NICKNAMES_BY_NAME = {
    "robert": ("bob", "bobby", "rob", "robbie", "robby"),
    "william": ("bill", "billy", "will", "willy"),
    "wilhelm": ("willi", "willy"),
    "katharina": ("kathi", "kati", "kathy", "kate", "katie", "trine"),
    "katherine": ("kate", "katie", "kathy", "kitty"),
    "johannes": ("hans", "hannes", "johann"),
    "josef": ("sepp", "seppi", "jupp", "joseph"),
    "giuseppe": ("beppe", "peppe", "pino"),
    "alexander": ("alex", "sascha"),
    "andreas": ("andi", "anderl"),
    "christian": ("chris", "krischan"),
    "christopher": ("chris", "topher"),
    "thomas": ("tom", "tommy"),
    "michael": ("micha", "michi", "mike", "mikey"),
    "stefanie": ("steffi", "stephanie"),
    "stefan": ("stephan",),
    "elisabeth": ("lisa", "liesel", "lisl", "sissi", "sisi", "betty", "elizabeth", "liz", "lizzy"),
    "friedrich": ("fritz", "fritzi"),
    "nikolaus": ("klaus", "niko"),
    "anton": ("toni", "tony", "antonia"),
    "ulrich": ("uli", "ulli"),
    "wolfgang": ("wolfi",),
    "gabriele": ("gabi", "gaby"),
    "susanne": ("susi", "sanne"),
    "barbara": ("babsi", "babs"),
    "monika": ("moni",),
    "cornelia": ("conny", "connie"),
    "benjamin": ("ben", "benny", "benji"),
    "maximilian": ("max", "maxi"),
    "matthias": ("matze", "hias"),
    "sebastian": ("basti",),
    "florian": ("flo",),
    "tobias": ("tobi",),
    "daniel": ("dani", "danny"),
    "jennifer": ("jenny", "jen"),
    "james": ("jim", "jimmy", "jamie"),
    "richard": ("rick", "ricky", "richie", "dick"),
    "margarete": ("grete", "gretel", "maggie", "margaret"),
    "franziska": ("franzi",),
    "patricia": ("patty", "trish"),
    "magdalena": ("magda", "leni"),
    "heinrich": ("heinz", "heini"),
    "theodor": ("theo",),
    "dorothea": ("dora", "doro"),
    "edward": ("eddie", "ed"),
    "victoria": ("vicky", "vicki", "viktoria"),
}
# Only short forms are listed, not names in their own right (Lena, Hanna, Sandra, Klaus is a borderline case) nor
# equivalents in other languages (Giuseppe/José/Josef): in a household those are different people.
NICKNAMES: dict[str, frozenset[str]] = {}
for _full, _nicks in _NICKNAMES_BY_NAME.items():
    for _nick in _nicks:
        NICKNAMES[_nick] = NICKNAMES.get(_nick, frozenset()) | {_full}


def _forms(token: str) -> frozenset[str]:
    return NICKNAMES.get(token, frozenset()) | {token}


def same_by_nickname(a: str, b: str) -> bool:
    """Word by word, each pair of words is equal or one is a nickname of the other (or both of one full name)."""
    ta, tb = a.split(), b.split()
    return len(ta) == len(tb) and all(not _forms(x).isdisjoint(_forms(y)) for x, y in zip(ta, tb, strict=True))


def _has_nickname(value: str) -> bool:
    return any(token in NICKNAMES for token in value.split())


def name_similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    best = max(OSA.normalized_similarity(a, b), fuzz.token_sort_ratio(a, b) / 100.0)
    if best < 1.0 and (_has_nickname(a) or _has_nickname(b)) and same_by_nickname(a, b):
        return 1.0
    return best


def address_similarity(a: str, b: str) -> float:
    return 1.0 if a == b else fuzz.token_set_ratio(a, b) / 100.0


def _split_house_number(value: str) -> tuple[str, str]:
    digits = "".join(ch for ch in value if ch.isdigit())
    return digits, "".join(ch for ch in value if not ch.isdigit())


def house_number_similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    (da, ra), (db, rb) = _split_house_number(a), _split_house_number(b)
    return 0.9 if da and da == db and ra != rb else 0.0


def identifier_similarity(a: str, b: str) -> float:
    return 1.0 if a == b else Indel.normalized_similarity(a, b)


def _non_letters(local: str) -> list[str]:
    return [c for c in local if not c.isalpha()]


def email_similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    (la, at_a, da), (lb, at_b, db) = a.rpartition("@"), b.rpartition("@")
    if not (at_a and at_b):
        return identifier_similarity(a, b)  # not addresses: compare them as identifiers
    if da != db or _non_letters(la) != _non_letters(lb):
        return 0.0  # another provider, number or separator (thomas.mueller73@, thomas_mueller@): another mailbox
    return OSA.normalized_similarity(la, lb)


def date_similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    if len(a) == len(b) == 10 and a[4] == a[7] == b[4] == b[7] == "-":
        if a[:4] == b[:4] and a[5:7] == b[8:10] and a[8:10] == b[5:7]:
            return 0.95
        da, db = a.replace("-", ""), b.replace("-", "")
        differ = [i for i in range(8) if da[i] != db[i]]
        if len(differ) == 1:
            return 0.9
        if len(differ) == 2 and differ[1] == differ[0] + 1 and da[differ[0]] == db[differ[1]] \
                and da[differ[1]] == db[differ[0]]:
            return 0.85
    return 0.7 * Indel.normalized_similarity(a, b)


SIMILARITY: dict[str, Callable[[str, str], float]] = {
    "name": name_similarity, "address": address_similarity, "house_number": house_number_similarity,
    "date": date_similarity, "phone": identifier_similarity, "email": email_similarity,
    "identifier": identifier_similarity, "text": identifier_similarity,
}


def cologne_phonetic(word: str) -> str:
    """Kölner Phonetik of one lowercase ASCII word: a sound code robust to German spelling variants
    (Meier/Meyer/Maier -> 67, Schmidt/Schmitt -> 862). Non-letters are ignored."""
    letters = [ch for ch in word if "a" <= ch <= "z"]
    codes: list[str] = []
    for i, ch in enumerate(letters):
        prev = letters[i - 1] if i else ""
        nxt = letters[i + 1] if i + 1 < len(letters) else ""
        if ch in "aeijouy":
            code = "0"
        elif ch == "h":
            code = ""
        elif ch == "b":
            code = "1"
        elif ch == "p":
            code = "3" if nxt == "h" else "1"
        elif ch in "dt":
            code = "8" if nxt in ("c", "s", "z") and nxt else "2"
        elif ch in "fvw":
            code = "3"
        elif ch in "gkq":
            code = "4"
        elif ch == "c":
            if i == 0:
                code = "4" if nxt and nxt in "ahkloqrux" else "8"
            else:
                code = "4" if nxt and nxt in "ahkoqux" and prev not in ("s", "z") else "8"
        elif ch == "x":
            code = "8" if prev and prev in "ckq" else "48"
        elif ch == "l":
            code = "5"
        elif ch in "mn":
            code = "6"
        elif ch == "r":
            code = "7"
        else:  # s, z
            code = "8"
        codes.append(code)
    raw = "".join(codes)
    collapsed = [c for i, c in enumerate(raw) if i == 0 or c != raw[i - 1]]
    if not collapsed:
        return ""
    return collapsed[0] + "".join(c for c in collapsed[1:] if c != "0")


def _name_keys(value: str) -> set[str]:
    keys = set()
    for token in value.split():
        if len(token) < 2:
            continue  # initials ("A.") are too common to block on
        keys.add(cologne_phonetic(token) or token)
        for full in NICKNAMES.get(token, ()):
            keys.add(cologne_phonetic(full))
    return keys


def _date_keys(value: str) -> set[str]:
    keys = {value}
    if len(value) == 10 and value[4] == value[7] == "-":
        keys.add(f"{value[:4]}-{value[8:10]}-{value[5:7]}")
    return keys


def _address_keys(value: str) -> set[str]:
    return {token[:4] for token in value.split() if len(token) >= 3 and not token[0].isdigit()}


def blocking_keys(kind: str, value: str) -> set[str]:
    """Keys under which a (type-normalised, non-empty) value is filed for fuzzy candidates; see the module doc."""
    if kind == "name":
        return _name_keys(value)
    if kind == "date":
        return _date_keys(value)
    if kind == "phone":
        return {value[-6:]}
    if kind == "email":
        local = value.partition("@")[0]  # the domain is shared by millions; only the local part is selective
        return {"^" + local[:4], "$" + local[-4:]}
    if kind == "identifier":
        return {"^" + value[:4], "$" + value[-4:]}
    if kind == "address":
        return _address_keys(value)
    if kind == "house_number":
        return {_split_house_number(value)[0] or value}
    return {value[:3]}
