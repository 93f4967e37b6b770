"""Labelled test data for unification: people spread over four sources, with the noise real exports have.

Deterministic by seed. Every record carries the id of the person it belongs to (`truth`), so the clusters an engine
finds can be scored pairwise. Values are what ingestion would store: emails lowercased, phones in E.164 when they
parse, dates as ISO yyyy-mm-dd, names NFC and trimmed with their original case and accents. The noise is the kind
that survives that normalisation:

- people: German, Austrian/Swiss and international names; 20% share a household (address, landline, mostly the
  last name) with another person; namesakes are common (a few hundred names for tens of thousands of people).
- sources: crm (importance 10), shop (20), support (30), newsletter (50); each person is in each source with a
  source-specific probability, at least one; 6% of records are duplicates inside a source.
- names: nicknames (Sepp for Josef), typos (insert/delete/substitute/transpose), umlauts spelt out or dropped
  (Müller/Mueller/Muller), upper-case last names, titles (Dr.), swapped first and last names, missing names.
- emails: a second (work) address for 30% of people, given to some of the sources; typos (not in the newsletter);
  missing; Gmail addresses written with and without dots and as googlemail.com; "+shop"/"+newsletter" sub-addresses
  at providers that support them.
- phones: mobile or household landline, valid German numbers; exported in national format by some sources (stored
  as E.164 after ingestion), typos (a mistyped number ingestion rejects is missing), missing.
- dates: missing, day and month swapped, one wrong digit.
- addresses: Straße/Str./Strasse, "5a"/"5 a"/"5A", an old address after a move, missing.

Changes after the first version, each for realism (measured effect on 10k, seed 1, in brackets):

- Phones go through ingestion's own `profilevault.normalize.normalize_phone` (default region DE). Before, 3% of
  phones were stored as "0151 2345678", which ingestion cannot store: it parses national numbers to E.164 or drops
  the value. And about 25% of the generated numbers were invalid under libphonenumber's metadata (e.g. +49152 with
  seven digits), which ingestion would have dropped; numbers are now drawn until valid, and a typo that makes a
  number invalid leaves the phone missing, as ingestion would. (Fewer split-off records; also fewer phones.)
- No typos in newsletter addresses: in Germany (and the EU in practice) a newsletter needs double opt-in, so a
  mistyped address never confirms and is not exported as a subscriber. Typos stay in crm, shop and support.
- Harder, not easier: Gmail dot/googlemail variants and "+tag" sub-addresses (the engine brief asked for "emails
  with case/dots variations"; the first version had none). They survive ingestion, which only lower-cases.

Known simplifications, left as they are (documented so the score is read right):
- Harder than reality: the name pool is small (about 150 given names, 190 surnames, uniform), so namesakes are far
  more common than in a real customer base (~47k namesake pairs among 52k people, against a few thousand for real
  German name frequencies). Name-only evidence is therefore worth less here than in real data.
- Easier than reality: no shared family mailboxes ("familie.mueller@..."), no typos in postal codes or house numbers,
  and the first character of a value is never mistyped.
- Unknowable by design, and realistic: records that share no email, phone, birth date or address with the rest of
  their person (a newsletter sign-up with a work address, a phone ticket from a number no other system holds, a
  crm record without email and phone against shop/support records without address). A data steward could link
  them only by name, which namesakes make unsafe; `run.linkable_truth` measures how much of the truth they are.
"""
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from unidecode import unidecode

from profilevault.normalize import normalize_phone
from profilevault.unification import UnifyRecord

SOURCES = {"crm": 10, "shop": 20, "support": 30, "newsletter": 50}
PRESENCE = {"crm": 0.55, "shop": 0.55, "support": 0.25, "newsletter": 0.35}

FEMALE = (
    "Anna Maria Sophie Marie Laura Julia Lena Lea Hannah Emma Mia Lisa Sarah Katharina Johanna Elisabeth Susanne "
    "Sabine Petra Monika Gabriele Ursula Renate Barbara Claudia Andrea Stefanie Nicole Christina Franziska Theresa "
    "Magdalena Margarete Ingrid Helga Brigitte Birgit Karin Heike Martina Angelika Cornelia Dorothea Victoria "
    "Alexandra Patricia Jennifer Chiara Giulia Francesca Camille Chloé Zoë Inès Agnieszka Małgorzata Zeynep Ayşe "
    "Fatma Elif Olga Natalia Ana Lucía Sofía Ingrid Åsa Sinéad Siobhán Priya Mei Yuki Amira"
).split()
MALE = (
    "Thomas Michael Andreas Stefan Christian Alexander Johannes Josef Peter Wolfgang Klaus Jürgen Frank Markus "
    "Matthias Martin Florian Tobias Sebastian Maximilian Daniel Benjamin Jan Lukas Felix Jonas Paul Leon Moritz "
    "Friedrich Heinrich Rudolf Bernhard Ulrich Dieter Uwe Rainer Günter Horst Robert William Richard James Anton "
    "Theodor Franz Jakob Nikolaus Patrick Edward Marco Luca Giuseppe Francesco Pierre Étienne François José Pedro "
    "Mehmet Mustafa Ahmet Piotr Krzysztof Tomasz Ivan Dmitri Søren Björn Lars Seán Rajesh Wei Hiroshi Omar"
).split()
LAST = (
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch Bauer Richter Klein Wolf "
    "Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange Schmitt Werner Schmitz Krause Meier "
    "Lehmann Schmid Schulze Maier Köhler Herrmann König Walter Mayer Huber Kaiser Fuchs Peters Lang Scholz Möller "
    "Weiß Jung Hahn Schubert Vogel Friedrich Keller Günther Frank Berger Winkler Roth Beck Lorenz Baumann Franke "
    "Albrecht Schuster Simon Ludwig Böhm Winter Kraus Martin Schumacher Krämer Vogt Stein Jäger Otto Sommer Groß "
    "Seidel Heinrich Brandt Haas Schreiber Graf Schulte Dietrich Ziegler Kuhn Kühn Pohl Engel Horn Busch Bergmann "
    "Thomas Voigt Sauer Arnold Wolff Pfeiffer Gruber Pichler Steiner Moser Hofer Leitner Egger Brunner Gasser "
    "Rossi Russo Bianchi Romano Colombo Ricci Dubois Laurent Lefèvre Moreau García Fernández López Martínez "
    "González Rodríguez Silva Santos Nowak Kowalski Wiśniewski Wójcik Yılmaz Kaya Demir Şahin Çelik Smith Jones "
    "Williams Brown Taylor Wilson O'Brien Murphy Kelly Andersson Johansson Nielsen Hansen Jensen Petrov Ivanov "
    "Nguyen Tran Kim Lee Wang Chen Singh Patel Khan Ali van der Berg de Vries Janssen"
).split()
# Multi-word surnames are rejoined below; the list above is split on spaces for brevity.
LAST = [w for w in LAST if w not in ("van", "der", "de")] + ["van der Berg", "de Vries", "von Stein", "Schmidt-Rau"]
NICKNAMES = {
    "Robert": ["Bob", "Rob"], "William": ["Bill", "Will"], "Katharina": ["Kathi", "Kati"], "Johannes": ["Hans"],
    "Josef": ["Sepp", "Jupp"], "Alexander": ["Alex", "Sascha"], "Andreas": ["Andi"], "Christian": ["Chris"],
    "Thomas": ["Tom"], "Michael": ["Micha", "Mike"], "Stefanie": ["Steffi"], "Elisabeth": ["Lisa", "Sissi"],
    "Friedrich": ["Fritz"], "Nikolaus": ["Klaus"], "Anton": ["Toni"], "Ulrich": ["Uli"], "Gabriele": ["Gabi"],
    "Susanne": ["Susi"], "Barbara": ["Babsi"], "Monika": ["Moni"], "Cornelia": ["Conny"], "Benjamin": ["Ben"],
    "Maximilian": ["Max"], "Matthias": ["Matze"], "Sebastian": ["Basti"], "Florian": ["Flo"], "Tobias": ["Tobi"],
    "Daniel": ["Dani"], "Jennifer": ["Jenny"], "James": ["Jim"], "Richard": ["Rick"], "Margarete": ["Grete"],
    "Franziska": ["Franzi"], "Heinrich": ["Heinz"], "Theodor": ["Theo"], "Dorothea": ["Doris"],
    "Victoria": ["Vicky"], "Patricia": ["Patty"], "Magdalena": ["Magda"], "Giuseppe": ["Beppe"],
}
STREETS = (
    "Haupt Bahnhof Garten Schiller Goethe Schul Kirch Berg Wald Ring Linden Dorf Mühlen Feld Wiesen Friedhof "
    "Mozart Beethoven Rosen Birken Eichen Tannen Buchen Sonnen Blumen Post Markt Burg Kaiser Bismarck Parkstein "
    "Industrie Lessing Uhland Herder Kant Wilhelm Friedrich Luisen Königs Brunnen Am Anger Tal See Bach"
).split()
STREET_KINDS = ("straße", "weg", "gasse", "allee", "platz", "ring")
CITIES = (
    ("Berlin", "10"), ("Hamburg", "20"), ("München", "80"), ("Köln", "50"), ("Frankfurt am Main", "60"),
    ("Stuttgart", "70"), ("Düsseldorf", "40"), ("Leipzig", "04"), ("Dortmund", "44"), ("Essen", "45"),
    ("Bremen", "28"), ("Dresden", "01"), ("Hannover", "30"), ("Nürnberg", "90"), ("Augsburg", "86"),
    ("Freiburg im Breisgau", "79"), ("Regensburg", "93"), ("Würzburg", "97"), ("Münster", "48"), ("Kiel", "24"),
)
DOMAINS = ("gmail.com", "web.de", "gmx.de", "gmx.net", "t-online.de", "outlook.com", "yahoo.de", "icloud.com",
           "posteo.de", "mail.de", "freenet.de", "hotmail.com")
WORK_DOMAINS = ("siemens.com", "bosch.de", "sap.com", "allianz.de", "uni-muenchen.de", "stadt-koeln.de", "dm.de",
                "example-gmbh.de", "muster-ag.de", "kanzlei-berg.de")
MOBILE_PREFIXES = ("151", "152", "157", "159", "160", "162", "170", "171", "172", "173", "175", "176", "177", "178",
                   "179")
_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss"})
_KEYBOARD = "abcdefghijklmnopqrstuvwxyz"


@dataclass
class Person:
    pid: int
    first: str
    last: str
    birth: str
    email: str
    work_email: str | None
    mobile: str | None
    landline: str | None
    address: tuple[str, str, str, str]  # street, house number, postal code, city
    old_address: tuple[str, str, str, str]
    work_in: frozenset[str]  # the sources this person gave the work email to


def _mailbox(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local.replace('.', '')}@gmail.com" if domain in ("gmail.com", "googlemail.com") else email


def _stored_phone(raw: str) -> str | None:
    """What ingestion stores for a phone as a source exported it: E.164, or nothing when it does not parse."""
    try:
        return normalize_phone(raw)
    except ValueError:
        return None


def _ascii_handle(text: str) -> str:
    return "".join(ch for ch in unidecode(text.translate(_GERMAN)).lower() if ch.isalnum())


def typo(rng: random.Random, value: str) -> str:
    """One keyboard-style error: insert, delete, substitute or transpose one character (not the first one)."""
    if len(value) < 3:
        return value
    i = rng.randrange(1, len(value))
    kind = rng.randrange(4)
    letter = rng.choice(_KEYBOARD)
    if kind == 0:
        return value[:i] + letter + value[i:]
    if kind == 1:
        return value[:i] + value[i + 1:]
    if kind == 2:
        return value[:i] + letter + value[i + 1:]
    if i + 1 < len(value):
        return value[:i] + value[i + 1] + value[i] + value[i + 2:]
    return value[:i - 1] + value[i] + value[i - 1]


class _World:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.emails: set[str] = set()
        self.phones: set[str] = set()
        self.households: list[Person] = []

    def unique_email(self, local: str, domain: str) -> str:
        email = f"{local}@{domain}"
        while _mailbox(email) in self.emails:  # Gmail ignores dots: "a.b" and "ab" are one mailbox
            email = f"{local}{self.rng.randrange(1, 9999)}@{domain}"
        self.emails.add(_mailbox(email))
        return email

    def unique_phone(self, prefix: Callable[[], str]) -> str:
        """A number ingestion accepts (valid under libphonenumber's metadata): ingestion drops invalid numbers.
        `prefix` draws a prefix per try, because not every drawn area code exists."""
        while True:
            phone = prefix() + "".join(str(self.rng.randrange(10)) for _ in range(self.rng.choice((7, 8))))
            if phone not in self.phones and _stored_phone(phone) == phone:
                self.phones.add(phone)
                return phone

    def address(self) -> tuple[str, str, str, str]:
        rng = self.rng
        street = rng.choice(STREETS) + rng.choice(STREET_KINDS)
        number = str(rng.randrange(1, 160)) + (rng.choice("abc") if rng.random() < 0.1 else "")
        city, prefix = rng.choice(CITIES)
        return street, number, prefix + f"{rng.randrange(0, 1000):03d}", city

    def person(self, pid: int) -> Person:
        rng = self.rng
        housemate = rng.choice(self.households) if self.households and rng.random() < 0.2 else None
        first = rng.choice(FEMALE if rng.random() < 0.5 else MALE)
        while housemate and first == housemate.first:  # families rarely give one name twice
            first = rng.choice(FEMALE + MALE)
        last = housemate.last if housemate and rng.random() < 0.7 else rng.choice(LAST)
        born = date.fromordinal(date(1940, 1, 1).toordinal() + rng.randrange(66 * 365))
        year = born.year
        f, lname = _ascii_handle(first), _ascii_handle(last)
        local = rng.choice((f"{f}.{lname}", f"{f[0]}{lname}", f"{f}{lname}{year % 100:02d}", f"{lname}.{f}",
                            f"{f}_{lname}", f"{f}{rng.randrange(1, 999)}"))
        email = self.unique_email(local, rng.choice(DOMAINS))
        work = self.unique_email(f"{f}.{lname}", rng.choice(WORK_DOMAINS)) if rng.random() < 0.3 else None
        mobile = self.unique_phone(lambda: "+49" + rng.choice(MOBILE_PREFIXES)) if rng.random() < 0.85 else None
        if housemate:
            address, landline = housemate.address, housemate.landline
        else:
            address = self.address()
            landline = self.unique_phone(lambda: "+49" + str(rng.randrange(30, 990))) if rng.random() < 0.4 else None
        work_in = frozenset(s for s in SOURCES if work and rng.random() < 0.06)
        person = Person(pid, first, last, born.isoformat(), email, work, mobile, landline,
                        address, self.address(), work_in)
        self.households.append(person)
        return person


def _first_name(rng: random.Random, p: Person) -> str:
    first = p.first
    nicks = NICKNAMES.get(first)
    if nicks and rng.random() < 0.25:
        return rng.choice(nicks)
    if rng.random() < 0.04:
        return typo(rng, first)
    return first


def _last_name(rng: random.Random, p: Person) -> str:
    last = p.last
    if any(ch in last for ch in "äöüÄÖÜß") and rng.random() < 0.2:
        last = last.translate(_GERMAN) if rng.random() < 0.6 else unidecode(last)
    if rng.random() < 0.04:
        last = typo(rng, last)
    if rng.random() < 0.05:
        last = last.upper()
    return last


def _birth(rng: random.Random, p: Person) -> str:
    year, month, day = p.birth.split("-")
    roll = rng.random()
    if roll < 0.015 and int(day) <= 12:
        return f"{year}-{day}-{month}"
    if roll < 0.025:
        digits = list(year + month + day)
        i = rng.choice((2, 3, 5, 7))
        digits[i] = str((int(digits[i]) + rng.randrange(1, 9)) % 10)
        d = "".join(digits)
        if 1 <= int(d[4:6]) <= 12 and 1 <= int(d[6:8]) <= 28:
            return f"{d[:4]}-{d[4:6]}-{d[6:8]}"
    return p.birth


PLUS_PROVIDERS = ("gmail.com", "outlook.com", "hotmail.com", "icloud.com", "posteo.de")


def _email(rng: random.Random, p: Person, source: str) -> str:
    email = p.work_email if p.work_email and source in p.work_in else p.email
    local, _, domain = email.partition("@")
    if domain == "gmail.com":  # one mailbox, written several ways
        if "." in local and rng.random() < 0.15:
            local = local.replace(".", "")
        if rng.random() < 0.1:
            domain = "googlemail.com"
    if domain in PLUS_PROVIDERS and source in ("newsletter", "shop") and rng.random() < 0.1:
        local += "+" + source  # a sub-address to tag (and filter) the sign-up
    if source != "newsletter" and rng.random() < 0.01:
        local = typo(rng, local)  # newsletter addresses are confirmed by double opt-in, so never mistyped
    return local + "@" + domain


def _phone(rng: random.Random, p: Person) -> str | None:
    phone = p.mobile if p.mobile and (not p.landline or rng.random() < 0.75) else p.landline
    if phone is None:
        return None
    roll = rng.random()
    if roll < 0.03:
        return "0" + phone[3:6] + " " + phone[6:]  # a national format that ingestion could not parse
    if roll < 0.04:
        return phone[:-3] + typo(rng, phone[-3:] + "0")[:3]
    return phone


def _address(rng: random.Random, p: Person) -> dict[str, str]:
    street, number, postal, city = p.old_address if rng.random() < 0.05 else p.address
    if street.endswith("straße"):
        street = street[:-6] + rng.choice(("straße", "straße", "str.", "strasse", " Straße"))
    if rng.random() < 0.03:
        street = typo(rng, street)
    if number[-1].isalpha() and rng.random() < 0.5:
        number = number[:-1] + rng.choice((" ", "")) + number[-1].upper()
    return {"street": street, "house_number": number, "postal_code": postal, "city": city}


def _record(rng: random.Random, p: Person, source: str) -> dict[str, str]:
    attrs: dict[str, str | None] = {}
    # (probability of a field being present) per source: what each system typically asks for
    if source == "crm":
        attrs["birth_date"] = _birth(rng, p) if rng.random() < 0.9 else None
        attrs["email"] = _email(rng, p, "crm") if rng.random() < 0.9 else None
        attrs["phone"] = _phone(rng, p) if rng.random() < 0.85 else None
        attrs.update(_address(rng, p) if rng.random() < 0.95 else {})
    elif source == "shop":
        attrs["email"] = _email(rng, p, "shop")
        attrs["phone"] = _phone(rng, p) if rng.random() < 0.5 else None
        attrs["birth_date"] = _birth(rng, p) if rng.random() < 0.3 else None
        attrs.update(_address(rng, p) if rng.random() < 0.95 else {})
    elif source == "support":
        attrs["email"] = _email(rng, p, "support") if rng.random() < 0.75 else None
        attrs["phone"] = _phone(rng, p) if rng.random() < 0.7 else None
        attrs["birth_date"] = _birth(rng, p) if rng.random() < 0.2 else None
        if not attrs["email"] and not attrs["phone"]:  # a ticket always has a way to answer
            attrs["email"] = _email(rng, p, "support")
    else:  # newsletter: an email and maybe a name for the salutation
        attrs["email"] = _email(rng, p, "newsletter")
    name_present = {"crm": 1.0, "shop": 0.98, "support": 0.95, "newsletter": 0.7}[source]
    if rng.random() < name_present:
        first, last = _first_name(rng, p), _last_name(rng, p)
        if source != "newsletter" and rng.random() < 0.02:
            first, last = last, first
        if rng.random() < 0.02:
            first = "Dr. " + first
        attrs["first_name"] = first
        attrs["last_name"] = last if source != "newsletter" or rng.random() < 0.6 else None
    return {k: v for k, v in attrs.items() if v}


def generate(records: int, seed: int = 1) -> tuple[list[UnifyRecord], list[int]]:
    """`records` records and, aligned with them, the id of the person each belongs to."""
    rng = random.Random(seed)
    world = _World(rng)
    out: list[UnifyRecord] = []
    truth: list[int] = []
    serial = dict.fromkeys(SOURCES, 0)
    pid = 0
    while len(out) < records:
        person = world.person(pid)
        sources = [s for s, share in PRESENCE.items() if rng.random() < share] or [rng.choice(list(SOURCES))]
        sources += [s for s in sources if rng.random() < 0.06]  # duplicates inside a source
        for source in sources:
            serial[source] += 1
            record_id = {"crm": str(serial[source]), "shop": f"a{serial[source]:x}",
                         "support": f"T-{serial[source]:06d}", "newsletter": f"nl-{serial[source]}"}[source]
            updated = f"20{rng.randrange(19, 26)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T" \
                      f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"
            out.append(UnifyRecord(source, record_id, SOURCES[source], updated, _record(rng, person, source)))
            truth.append(pid)
        pid += 1
    return out[:records], truth[:records]
