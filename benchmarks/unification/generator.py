"""Labelled test data for unification: people spread over four sources, with the noise real exports have.

Two scenarios (`generate(..., scenario=...)`, `run.py --scenario`), the same in everything but one point:

- `issue` (the default): exactly the noise kinds the issue lists: typos, missing values, nicknames, swapped first
  and last names, formatting differences in phones, emails, dates and addresses (as they survive ingestion's
  normalisation). Each person has ONE email and ONE phone (the mobile, or the household landline for the 15%
  without a mobile; ~9% have neither); a source may lack them at its documented rate (missing values), but when it
  has one it is that one, possibly mistyped or formatted differently.
- `alternate-identifiers`: the same plus second identifiers, as the generator did before the scenarios existed
  (same output for the same seed): a work email for 30% of people, given to each source with probability 0.06
  instead of the private one, and mobile vs landline (people with both: a source records the mobile with 0.75,
  the landline otherwise). Realistic, but not a noise kind the issue lists, and no rule can recover it: a record
  that carries only the other identifier (a newsletter sign-up with the work address, a phone ticket from the
  landline) shares nothing with the rest of its person but the name. That puts a ceiling on F1: the recall of a
  perfect evidence-based engine is `linkable.true_pairs / true_pairs` from run.py (see `run.linkable_truth`; it
  counts a pair as linkable when the records are connected by an exactly shared email, phone, birth date or
  address, so a typo in the only shared value also makes a pair unlinkable). Measured with run.py, seeds 1/7/42:
  ceiling recall 0.950/0.953/0.954 at 10k records and 0.952/0.952/0.952 at 100k, i.e. F1 <= 0.975-0.977 even at
  precision 1; the engine finds 0.995-0.997 of the linkable pairs.
- The `issue` scenario has a ceiling too, mostly from missing values (a crm record without email against a
  newsletter sign-up or an email-only ticket; a phone-only ticket against records without phone): ceiling recall
  0.974/0.974/0.974 at 10k and 0.972/0.973/0.971 at 100k, F1 <= 0.986-0.987 for exact evidence. Even an oracle
  that joins every two records of a person that both carry any email, phone, birth date or street, whatever the
  values (`run.ceiling`), reaches only recall 0.981-0.982 / F1 0.990-0.991 at 10k and 0.980-0.981 / 0.990 at
  100k. `analyse.py` attributes the engine's misses (10k, seeds 1/7/42, missed pairs 168/180/170 of ~6,800): no
  identifier present on both sides 121/121/124, a typo in the only shared identifier 23/28/19, identifier shared
  but a name the rule needs missing 14/21/18, names too different 3/4/5, an old address after a move 7/6/4.

The random stream differs between the scenarios after the first alternate identifier (drawing the noise of an
email depends on its domain), so one seed gives statistically equal, not identical, people in the two.

Deterministic by seed. Every record carries the id of the person it belongs to (`truth`), so the clusters an engine
finds can be scored pairwise. Values are what ingestion would store: emails lowercased, phones in E.164 when they
parse, dates as ISO yyyy-mm-dd, names NFC and trimmed with their original case and accents. The noise is the kind
that survives that normalisation:

- people: German, Austrian/Swiss and international names with realistic frequencies (see "Names" below); 20%
  share a household (address, landline, mostly the last name) with another person; addresses in 20 German cities
  with their real number of postal codes (777 codes; ~67 people per code at 100k records).
- sources: crm (importance 10), shop (20), support (30), newsletter (50); each person is in each source with a
  source-specific probability, at least one; 6% of records are duplicates inside a source.
- names: nicknames (Sepp for Josef), typos (insert/delete/substitute/transpose), umlauts spelt out or dropped
  (Müller/Mueller/Muller), upper-case last names, titles (Dr.), swapped first and last names, missing names.
- emails: a second (work) address for 30% of people, given to some of the sources (scenario
  `alternate-identifiers` only); typos (not in the newsletter);
  missing; Gmail addresses written with and without dots and as googlemail.com; "+shop"/"+newsletter" sub-addresses
  at providers that support them.
- phones: mobile or household landline (scenario `issue`: the mobile when there is one), valid German numbers;
  exported in national format by some sources (stored as E.164 after ingestion), typos (a mistyped number ingestion
  rejects is missing), missing.
- dates: missing, day and month swapped, one wrong digit.
- addresses: Straße/Str./Strasse, "5a"/"5 a"/"5A", an old address after a move, missing.

Changes after the first version, each for realism (measured effect on 10k, seed 1, in brackets):

- Phones go through ingestion's own `profilevault.domain.normalize.normalize_phone` (default region DE). Before, 3% of
  phones were stored as "0151 2345678", which ingestion cannot store: it parses national numbers to E.164 or drops
  the value. And about 25% of the generated numbers were invalid under libphonenumber's metadata (e.g. +49152 with
  seven digits), which ingestion would have dropped; numbers are now drawn until valid, and a typo that makes a
  number invalid leaves the phone missing, as ingestion would. (Fewer split-off records; also fewer phones.)
- No typos in newsletter addresses: in Germany (and the EU in practice) a newsletter needs double opt-in, so a
  mistyped address never confirms and is not exported as a subscriber. Typos stay in crm, shop and support.
- Harder, not easier: Gmail dot/googlemail variants and "+tag" sub-addresses (the engine brief asked for "emails
  with case/dots variations"; the first version had none). They survive ingestion, which only lower-cases.

Names (third revision). The first versions drew uniformly from ~150 given names and ~190 surnames: 55,006
namesake pairs (same normalised first and last name, different person) among 52k people, 202,753 among 100k.
Real rates, estimated from published German frequencies: the chance that two random people share a surname is
sum(p_surname^2) ~ 5e-4 (Müller ~0.95%, Schmidt ~0.74%, the tenth ~0.2%, the top 1000 cover only about a third of
people), a given name sum(p^2) ~ 4e-3 (top names ~2-3% of their sex over all adult cohorts, half of pairs differ in
sex); so a full-name collision ~2e-6 per pair of people: ~2.7k namesake pairs among 52k people, ~10k among 100k.
Now: 174 female and 162 male given names and ~500 surnames in rough frequency order, drawn with Zipf-like weights
1/rank^s (s = 0.4 for given names: Maria 2.8% of women; s = 0.6 for surnames), listed surnames for 30% of people
(Müller ~1.1%) and a compound from common name parts (Stein+berger, Lind+ner, ~3,800 forms) for the long tail.
Measured with `namesake_pairs` (seeds 1/7/42): 3,354 / 3,211 / 3,258 pairs among 52k people (the people of a 100k
record run), 12,064 / 11,752 / 12,036 among 100k people, a little above the estimate because households share
surnames. A full name is therefore worth about as much as in real data, and namesakes still exist (Thomas Müller,
Maria Schmidt), so a name alone remains unsafe (a names-only rule: precision 0.97-0.98 already at 10k records).

Postal codes (same revision): before, a city's code was its two-digit prefix plus three random digits (20,000
codes, ~2.6 people each at 100k records); now each city has about its real number of codes (see `CITIES`).

What each source carries (checked against what such a system holds; no field was missing that it would hold):
- crm: name, birth date (90%), email (90%), phone (85%), postal address (95%): the master record.
- shop: the account email (always), names, the shipping/billing address with street, number, postal code and city
  (95%; the rest buy downloads or vouchers), phone (50%, optional for the parcel service), birth date (30%).
- support: email (75%) and/or phone (70%), at least one (a ticket needs a way to answer), names (95%), birth date
  (20%, asked to verify identity); no address: a helpdesk keeps contact details, not the shipping address.
- newsletter: the email and, for the salutation, maybe a first name (70%) and a last name (60% of those).
Consequence: a phone ticket or a newsletter sign-up that shares no email or phone with the rest of its person can
only be linked by name; `run.linkable_truth` leaves those out.

Phones (fix in this revision): `_phone` returned the exported text itself ("0151 2345678", mistyped numbers), not
what ingestion stores, although the docstring said otherwise; it now returns `normalize_phone`'s E.164 or nothing.

Known simplifications, left as they are (documented so the score is read right):
- Harder than reality: postal codes are denser in customers than for a nationwide business (~67 people per code
  at 100k records, against ~6 for 50k customers over Germany's ~8,200 codes), so name + postal code is less safe
  here than it would be for most real customer bases (more like a regional business).
- Easier than reality: no shared family mailboxes ("familie.mueller@..."), no typos in postal codes or house numbers,
  and the first character of a value is never mistyped.
- Unknowable by design, and realistic: records that share no email, phone, birth date or address with the rest of
  their person (a newsletter sign-up with a work address, a phone ticket from a number no other system holds, a
  crm record without email and phone against shop/support records without address). A data steward could link
  them only by name, which namesakes make unsafe; `run.linkable_truth` measures how much of the truth they are.
"""
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from unidecode import unidecode

from profilevault.domain.normalize import normalize_phone
from profilevault.unification import UnifyRecord
from profilevault.unification.normalizers import name as normal_name

SCENARIOS = ("issue", "alternate-identifiers")
SOURCES = {"crm": 10, "shop": 20, "support": 30, "newsletter": 50}
PRESENCE = {"crm": 0.55, "shop": 0.55, "support": 0.25, "newsletter": 0.35}

# Given names in rough order of frequency among adults in Germany, Austria and Switzerland (all birth cohorts
# 1940-2005 mixed), then names common among immigrant families and international ones. Rank -> Zipf weight.
FEMALE = (
    "Maria Ursula Monika Petra Elisabeth Sabine Renate Helga Karin Brigitte Ingrid Erika Andrea Gisela Claudia "
    "Susanne Gabriele Christa Christine Anna Birgit Barbara Martina Nicole Stefanie Julia Katharina Sandra Angelika "
    "Heike Anja Christina Marion Margarete Doris Jutta Laura Sarah Lisa Melanie Silke Tanja Kerstin Daniela Nadine "
    "Katrin Simone Jessica Jennifer Lena Hannah Sophie Marie Anke Michaela Manuela Bettina Beate Irene Waltraud "
    "Gertrud Edith Rosemarie Elfriede Hannelore Annette Regina Elke Sonja Eva Nina Katja Franziska Theresa Johanna "
    "Alexandra Cornelia Dorothea Magdalena Carina Vera Tamara Jana Svenja Lara Leonie Emma Mia Lea Amelie Clara "
    "Charlotte Emilia Luisa Victoria Patricia Carola Ilse Inge Hildegard Margot Lieselotte Marianne Ute Dagmar "
    "Iris Antje Britta Ramona Verena Miriam Rebecca Janina Isabel Lucia Rita Bianca Vanessa Michelle Jacqueline "
    "Celine Alina Pia Paula Greta Ida Helena Ronja Mathilda Frieda Ella Anneliese Gudrun Heidi Astrid Yvonne "
    "Sylvia Ulrike Marlene Agnes Rosa Theres Chiara Giulia Francesca Elena Camille Chloé Zoë Inès Agnieszka "
    "Małgorzata Katarzyna Zeynep Ayşe Fatma Elif Emine Merve Olga Natalia Tatjana Svetlana Ana Lucía Sofía Åsa "
    "Sinéad Siobhán Priya Mei Yuki Amira Leyla"
).split()
MALE = (
    "Thomas Michael Andreas Peter Stefan Klaus Wolfgang Jürgen Christian Frank Hans Uwe Markus Bernd Manfred "
    "Dieter Werner Günter Gerhard Horst Matthias Martin Alexander Sebastian Daniel Tobias Florian Helmut Heinz "
    "Karl Walter Rolf Jan Dirk Torsten Sven Ralf Jörg Holger Joachim Rainer Harald Hermann Josef Johannes Georg "
    "Robert Paul Lukas Maximilian Felix Jonas Leon Tim Niklas Philipp David Simon Benjamin Kevin Dennis Marcel "
    "Patrick Marco René Oliver Björn Lars Kai Mario Norbert Reinhard Friedrich Heinrich Rudolf Bernhard Ulrich "
    "Erich Kurt Otto Siegfried Wilhelm Franz Anton Ernst Herbert Gerd Detlef Volker Axel Carsten Jens Timo Moritz "
    "Christoph Julian Fabian Dominik Marvin Nico Pascal Elias Noah Finn Luca Luis Henry Emil Theo Jakob Valentin "
    "Konstantin Vincent Leonard Adrian Till Hannes Nikolaus Theodor Richard Gottfried Alois Leopold Ludwig "
    "Hubert Reto Beat Urs Lorenz Samuel William James Edward Giuseppe Francesco Antonio Pierre Étienne François "
    "José Pedro Mehmet Mustafa Ahmet Hasan Hüseyin Murat Emre Piotr Krzysztof Tomasz Ivan Dmitri Sergej Søren "
    "Seán Rajesh Wei Hiroshi Omar Mohammed Ahmad"
).split()
# Surnames: roughly the most frequent ones in Germany in order, then Austrian and Swiss ones, then names common
# among immigrant families and international ones ("_" stands for a space).
LAST = (
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch Bauer Richter Klein "
    "Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange Schmitt Werner Schmitz Krause "
    "Meier Lehmann Schmid Schulze Maier Köhler Herrmann König Walter Mayer Huber Kaiser Fuchs Peters Lang Scholz "
    "Möller Weiß Jung Hahn Schubert Vogel Friedrich Keller Günther Frank Berger Winkler Roth Beck Lorenz Baumann "
    "Franke Albrecht Schuster Simon Ludwig Böhm Winter Kraus Martin Schumacher Krämer Vogt Stein Jäger Otto Sommer "
    "Groß Seidel Heinrich Brandt Haas Schreiber Graf Schulte Dietrich Ziegler Kuhn Kühn Pohl Engel Horn Busch "
    "Bergmann Thomas Voigt Sauer Arnold Wolff Pfeiffer Ernst Lindner Hübner Kramer Jansen Franz Peter Hammer "
    "Götz Hermann Schenk Schröter Möller Kurz Schott Ludwig Berg Kaufmann Brand Böttcher Haase Schulte Förster "
    "Thiel Kolb Marx Walther Beyer Heinz Ritter Schilling Seifert Lorenz Kuhlmann Brinkmann Witt Ebert Hauser "
    "Raab Mertens Fritz Wendt Dittrich Kunz Sommer Bruns Stark Kirchner Wirth Voß Zimmer Schütz Reuter Nagel "
    "Lenz Bock Wenzel Kessler Menzel Jakob Hesse Paul Wiese Hansen Runge Pietsch Gerlach Rieger Bürger Sander "
    "Ott Wolters Michel Hoppe Maurer Henning Wilhelm Thiele Böhme Ulrich Kraft Schade Schwab Weis Moritz Heller "
    "Kruse Pfeifer Körner Naumann Ahrens Jahn Lutz Bader Schlüter Baier Schütte Frey Harms Thomsen Adam Steffen "
    "Fink Vogl Horstmann Wegner Sauter Bach Dörr Kübler Hinz Koller Wendel Busse Schäffer Fiedler Hagen Knapp "
    "Ernst Mack Gebhardt Kellner Ackermann Rösch Hensel Dietz Brenner Petersen Eckert Stahl Rausch Schuler "
    "Heinemann Urban Brückner Sturm Gärtner Riedel Bähr Dreher Knoll Eberhardt Nowak Schwarze Bock "
    "Gruber Pichler Steiner Moser Hofer Leitner Egger Brunner Gasser Eder Reiter Mayr Wimmer Baumgartner Auer "
    "Binder Lechner Wallner Aigner Ebner Lehner Holzer Unger Fuchsberger Rainer Strasser Wieser Haider Stadler "
    "Höller Resch Hauer Kofler Lackner Riegler Gschwandtner Zauner Pfeifhofer Obermair "
    "Widmer Wyss Suter Bachmann Studer Bühler Kälin Amstutz Zürcher Lüthi Ammann Hess Sutter Marti Egli "
    "Christen Zaugg Hug Bucher Stucki Schär Aebischer Flückiger Wenger Schürch Gerber Frei Bühlmann Imhof "
    "Hunziker Bosshard Kuster Meili Tanner Rüegg Brügger Haller Steiner-Frei Schmidt-Rau Müller-Lüdenscheidt "
    "von_Stein von_der_Heide zu_Salm van_der_Berg de_Vries Janssen de_Jong Peeters "
    "Yılmaz Kaya Demir Şahin Çelik Yıldız Yıldırım Öztürk Aydın Özdemir Arslan Doğan Kılıç Aslan Çetin Kara Koç "
    "Kurt Özkan Polat Kowalski Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński Szymański Woźniak "
    "Dąbrowski Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo Conti De_Luca "
    "Ivanov Petrov Smirnov Kuznetsov Popov Sokolov Schewtschenko Nguyen Tran Le Pham Hoang García Fernández "
    "López Martínez González Rodríguez Sánchez Pérez Silva Santos Ferreira Pereira Oliveira Costa Dubois Laurent "
    "Lefèvre Moreau Bernard Durand Smith Jones Williams Brown Taylor Wilson O'Brien Murphy Kelly Papadopoulos "
    "Georgiou Horvat Kovačević Petrović Jovanović Hadžić Novak Dvořák Khan Ali Ahmed Hussain Haddad Singh "
    "Patel Kim Park Wang Li Zhang Chen Andersson Johansson Nielsen Jensen Virtanen Schindler Schramm Brauer "
    "Fleischer Bartsch Engelhardt Decker Kopp Scheffler Lindemann Ruf Stumpf Hering Weidner Schirmer Roos "
    "Wittmann Hecht Rupp Benz Geiger Funk Hoffmeister Kienzle Eichhorn Böhmer Ehlers Jordan Kunze Stephan Hein "
    "Reinhardt Martens Philipp Held Wittig Seiler Weiss Schumann Sievers Behrens Bartels Lemke Kaminski Rohde "
    "Krebs Hartwig Fries Vetter Gottschalk Reimann Dahl Fiebig Beckmann Niemann Wolter Oswald Steinbach Frick "
    "Kern Seitz Berndt"
).split()
# The long tail: most people in Germany carry a surname outside any top list (the 500 most frequent cover
# roughly a quarter of the population). Compounds of common name parts stand for it.
LAST_STEMS = (
    "Acker Adler Alt Amsel Bach Baum Berg Birk Blum Brand Breit Brun Buch Burg Dorn Eber Eck Eich Engel Falk Feld "
    "Fels Fink Forst Frei Fried Gold Grün Hag Hain Hart Hasel Heid Hell Hinter Hoch Hof Holz Horn Hub Kalt Kirch "
    "Kling Kohl Kreuz Kron Laub Lind Loh Mark Mittel Moos Mühl Neu Nuss Ober Ort Rein Ried Rosen Sand Schön "
    "Stein Sturm Tann Unter Wald Warm Weiden Wend Wies Wild Wind Zell Ahl Bern Dürr Ess Gött Hirsch Kamp Kiesel "
    "Lauter Lerch Löw Ross Spitz Stroh Thal Wachs"
).split()
LAST_ENDINGS = (
    "mann er berger bauer meier mayr huber hofer ner inger ecker hausen brecht hardt hammer müller schmid wald "
    "feld stein berg horn bach thal dorf rieder leitner lechner moser gruber egger wieser ler ke el ert ing "
    "maier kamp hoff brock wedel"
).split()
LAST = list(dict.fromkeys(name.replace("_", " ") for name in LAST))
# Zipf-like weights by rank (weight 1/rank^s). The exponents are set so that the shares match published German
# frequencies in order of magnitude: Müller ~1% of people, Schmidt ~0.7%, the tenth surname ~0.25%; the most
# common given name ~3% of its sex (all adult cohorts mixed, so no single name dominates as in one birth year).
LISTED_SURNAME_SHARE = 0.3  # the rest draw a compound from the long tail
SURNAME_ZIPF, GIVEN_NAME_ZIPF = 0.6, 0.4


def _cumulative(count: int, exponent: float) -> list[float]:
    total, out = 0.0, []
    for rank in range(1, count + 1):
        total += rank ** -exponent
        out.append(total)
    return out


_FEMALE_CUM = _cumulative(len(FEMALE), GIVEN_NAME_ZIPF)
_MALE_CUM = _cumulative(len(MALE), GIVEN_NAME_ZIPF)
_LAST_CUM = _cumulative(len(LAST), SURNAME_ZIPF)
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
# (city, first two digits of its postal codes, number of postal codes it has: roughly the real count). A postal code
# covers a few thousand to ten thousand residents; people are spread over the codes evenly, so a city draws people
# in proportion to its codes.
CITIES = (
    ("Berlin", "10", 190), ("Hamburg", "20", 100), ("München", "80", 75), ("Köln", "50", 45),
    ("Frankfurt am Main", "60", 40), ("Stuttgart", "70", 30), ("Düsseldorf", "40", 35), ("Leipzig", "04", 35),
    ("Dortmund", "44", 30), ("Essen", "45", 25), ("Bremen", "28", 30), ("Dresden", "01", 30), ("Hannover", "30", 25),
    ("Nürnberg", "90", 25), ("Augsburg", "86", 10), ("Freiburg im Breisgau", "79", 10), ("Regensburg", "93", 8),
    ("Würzburg", "97", 7), ("Münster", "48", 12), ("Kiel", "24", 15),
)
# Every postal code of every city, spread over the city's range (fixed, independent of the seed).
POSTAL_CODES = [(city, f"{prefix}{(i * 997 // count) % 1000:03d}") for city, prefix, count in CITIES
                for i in range(count)]
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


def given_name(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choices(FEMALE, cum_weights=_FEMALE_CUM)[0]
    return rng.choices(MALE, cum_weights=_MALE_CUM)[0]


def surname(rng: random.Random) -> str:
    if rng.random() < LISTED_SURNAME_SHARE:
        return rng.choices(LAST, cum_weights=_LAST_CUM)[0]
    return rng.choice(LAST_STEMS) + rng.choice(LAST_ENDINGS)


def namesake_pairs(people: int, seed: int = 1) -> int:
    """Pairs of different generated people with the same normalised first and last name (a realism check)."""
    world = _World(random.Random(seed))
    counts = Counter((normal_name(p.first), normal_name(p.last)) for p in (world.person(pid) for pid in range(people)))
    return sum(n * (n - 1) // 2 for n in counts.values())


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
        city, postal = rng.choice(POSTAL_CODES)
        return street, number, postal, city

    def person(self, pid: int) -> Person:
        rng = self.rng
        housemate = rng.choice(self.households) if self.households and rng.random() < 0.2 else None
        first = given_name(rng)
        while housemate and first == housemate.first:  # families rarely give one name twice
            first = given_name(rng)
        last = housemate.last if housemate and rng.random() < 0.7 else surname(rng)
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


def _email(rng: random.Random, p: Person, source: str, alternates: bool) -> str:
    email = p.work_email if alternates and p.work_email and source in p.work_in else p.email
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


def _phone(rng: random.Random, p: Person, alternates: bool) -> str | None:
    if alternates and p.mobile and p.landline:  # mobile or landline, as the source happened to record it
        phone = p.mobile if rng.random() < 0.75 else p.landline
    else:  # one phone per person: the mobile, or the household landline for people without one
        phone = p.mobile or p.landline
    if phone is None:
        return None
    roll = rng.random()
    if roll < 0.03:
        exported = "0" + phone[3:6] + " " + phone[6:]  # national format, which ingestion reads as +49
    elif roll < 0.04:
        exported = phone[:-3] + typo(rng, phone[-3:] + "0")[:3]
    else:
        exported = phone
    return _stored_phone(exported)  # what ingestion stores: E.164, or nothing for a number it rejects


def _address(rng: random.Random, p: Person) -> dict[str, str]:
    street, number, postal, city = p.old_address if rng.random() < 0.05 else p.address
    if street.endswith("straße"):
        street = street[:-6] + rng.choice(("straße", "straße", "str.", "strasse", " Straße"))
    if rng.random() < 0.03:
        street = typo(rng, street)
    if number[-1].isalpha() and rng.random() < 0.5:
        number = number[:-1] + rng.choice((" ", "")) + number[-1].upper()
    return {"street": street, "house_number": number, "postal_code": postal, "city": city}


def _record(rng: random.Random, p: Person, source: str, alternates: bool) -> dict[str, str]:
    attrs: dict[str, str | None] = {}
    # (probability of a field being present) per source: what each system typically asks for
    if source == "crm":
        attrs["birth_date"] = _birth(rng, p) if rng.random() < 0.9 else None
        attrs["email"] = _email(rng, p, "crm", alternates) if rng.random() < 0.9 else None
        attrs["phone"] = _phone(rng, p, alternates) if rng.random() < 0.85 else None
        attrs.update(_address(rng, p) if rng.random() < 0.95 else {})
    elif source == "shop":
        attrs["email"] = _email(rng, p, "shop", alternates)
        attrs["phone"] = _phone(rng, p, alternates) if rng.random() < 0.5 else None
        attrs["birth_date"] = _birth(rng, p) if rng.random() < 0.3 else None
        attrs.update(_address(rng, p) if rng.random() < 0.95 else {})
    elif source == "support":
        attrs["email"] = _email(rng, p, "support", alternates) if rng.random() < 0.75 else None
        attrs["phone"] = _phone(rng, p, alternates) if rng.random() < 0.7 else None
        attrs["birth_date"] = _birth(rng, p) if rng.random() < 0.2 else None
        if not attrs["email"] and not attrs["phone"]:  # a ticket always has a way to answer
            attrs["email"] = _email(rng, p, "support", alternates)
    else:  # newsletter: an email and maybe a name for the salutation
        attrs["email"] = _email(rng, p, "newsletter", alternates)
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


def generate(records: int, seed: int = 1, scenario: str = "issue") -> tuple[list[UnifyRecord], list[int]]:
    """`records` records and, aligned with them, the id of the person each belongs to. `scenario` is one of
    `SCENARIOS` (see the module docstring)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}, expected one of {', '.join(SCENARIOS)}")
    alternates = scenario == "alternate-identifiers"
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
            attributes = _record(rng, person, source, alternates)
            out.append(UnifyRecord(source, record_id, SOURCES[source], updated, attributes))
            truth.append(pid)
        pid += 1
    return out[:records], truth[:records]
