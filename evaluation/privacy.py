"""PII detection and redaction, fully offline.

presidio-analyzer with its NoOpNlpEngine runs pattern recognizers only (no spaCy model is
loaded); phone numbers are checked by `phonenumbers`, cards by the Luhn checksum, IBANs by
their check digits. presidio's email recognizer asks `tldextract`, which would download the
public suffix list; it is pointed at the snapshot shipped in the package instead, so
nothing here touches the network.

Found values are replaced by typed placeholders numbered per case (`<EMAIL_1>`, the same
value always the same placeholder) before anything is stored.
"""

import re
import unicodedata
from collections import Counter
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import regex
import tldextract
import tldextract.tldextract
from presidio_analyzer import EntityRecognizer, RecognizerResult

# The bundled public suffix snapshot, never a download.
tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(
    suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True
)

PLACEHOLDER = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CARD",
    "IBAN_CODE": "IBAN",
    "IP_ADDRESS": "IP",
    "US_SSN": "GOV_ID",
    "UK_NINO": "GOV_ID",
    "PERSON": "PERSON",
    "POSTAL_ADDRESS": "ADDRESS",
}
MIN_SCORE = 0.4
_ALREADY_REDACTED = re.compile(r"<[A-Z_]+_\d+>")


@lru_cache(maxsize=1)
def analyzer():
    """The analyzer, built once per process (building it takes about a second)."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UkNinoRecognizer,
        UsSsnRecognizer,
    )

    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (
        EmailRecognizer(),
        PhoneRecognizer(supported_regions=("US", "GB", "DE", "FR", "NL", "IE")),
        CreditCardRecognizer(),
        IbanRecognizer(),
        IpRecognizer(),
        UsSsnRecognizer(),
        UkNinoRecognizer(),
        # An address outranks a name inside it ("Rua Augusta"); a phone or card outranks both.
        _SpanRecognizer("POSTAL_ADDRESS", address_spans, 0.9),
        _SpanRecognizer("PERSON", person_spans, 0.85),
    ):
        registry.add_recognizer(recognizer)
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


# --- People and places -------------------------------------------------------------------
# No NER model: a name is a run of capitalised words that holds a given name from the
# person lists bundled in Faker (MIT; given and family names of about 80 locales), two
# words closing on a family name from those lists, or a run that follows a title, a
# greeting or a word that introduces a person; an organisation or product word vetoes it.
# Addresses: pyap's rules for US, Canadian and British addresses, and the patterns below for
# the formats pyap does not know (Germany, France, India, Japan, Brazil).


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WORD = r"\p{Lu}(?:['\u2019]\p{Lu}|\p{Ll}+\p{Lu})?[\p{Ll}'\u2019]+(?:-\p{Lu}?[\p{Ll}'\u2019]+)*"
_PARTICLE = r"(?:de|da|do|dos|das|del|della|di|du|van|von|der|den|le|la|bin|binti|al)"
_RUN = regex.compile(
    rf"(?<![\p{{L}}\d<])(?:{_WORD})(?:[ \t]+(?:{_PARTICLE}[ \t]+)*{_WORD})*(?![\p{{L}}\d>])"
)
# Words that announce a name when they stand right before it (or open its run).
_TITLES = _words("mr mrs ms mx miss dr prof herr frau mme mlle sr sra srta dona shri smt sri")
_GREETINGS = _words("hi hello dear hey thanks regards cheers bonjour hallo olá namaste")
# "Customer Ananya Iyer": the word that introduces a name may open the sentence.
_INTRODUCERS = _words("customer client user caller cardholder recipient contact agent reviewer")
_CUE = regex.compile(
    r"\b(?:customer|client|user|caller|cardholder|recipient|contact|named|called|signed by|"
    r"name is|name:|from|by|for|to|cc|with|agent|reviewer)[ \t]+$",
    regex.IGNORECASE,
)
# A run with one of these words is a company, product or place, not a person.
_NOT_A_PERSON = _words(
    """inc ltd llc plc gmbh ag sa sas sarl bv co corp corporation company group bank
    airlines airways motors services solutions systems technologies labs studio studios
    foundation university hospital hotel store stores shop market pharmacy insurance team
    street st road rd avenue ave lane boulevard drive way place square park station office
    retro pro max plus mini ultra edition series model focus air classic lite pay"""
)
# Entries of the name lists that are everyday words: never evidence of a name alone,
# and at the start of a sentence not even with a surname after them.
_EVERYDAY = _words(
    """the an can will may june mark bill grace hope joy art summer rich chase grant page
    april august faith guy major pat sunny frank dean dale london paris victoria nike
    north south east west saint post"""
)
_SENTENCE_START = regex.compile(r"(?:^|[.!?:;\n]\s*|[\"'(]\s*)$")


# Provider attributes holding names, as tuples or as dicts of name -> weight: the Latin
# spellings only (Japanese has romanised lists beside its kanji and kana ones).
_NAME_LIST = re.compile(r"(first|last)_(?:romanized_)?names(?:_[a-z]+)*|[a-z]+_last_names")


@lru_cache(maxsize=1)
def name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """(given names, family names) of every Faker locale, lower case (loaded once)."""
    import importlib
    import pkgutil

    import faker.providers.person

    given: set[str] = set()
    family: set[str] = set()
    for locale in pkgutil.iter_modules(faker.providers.person.__path__):
        module = importlib.import_module(f"faker.providers.person.{locale.name}")
        # Class attributes only: no Faker generator is built.
        for attr, names in vars(module.Provider).items():
            found = _NAME_LIST.fullmatch(attr)
            if found and isinstance(names, tuple | list | dict):
                into = given if found.group(1) == "first" else family
                into.update(name.lower() for name in names)
    return frozenset(given), frozenset(family)


def _plain(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def person_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each person's name found in `text`."""
    spans = []
    for run in _RUN.finditer(text):
        words = list(regex.finditer(_WORD, run.group()))
        lowered = [w.group().lower().rstrip("'\u2019") for w in words]
        if any(word in _NOT_A_PERSON for word in lowered):
            continue
        lead = 0
        while lead < len(words) and lowered[lead] in _TITLES | _GREETINGS | _INTRODUCERS:
            lead += 1
        if lead == len(words):
            continue
        start = run.start() + words[lead].start()
        gap = text[:start]
        # "Hi,\n\nYour refund ...": a greeting on an earlier line introduces nobody.
        same_line = "\n" not in gap[len(gap.rstrip()) :]
        before = gap.rstrip().rstrip(",.").split()[-1:] if same_line else []
        titled = any(word.lower() in _TITLES | _GREETINGS for word in before)
        if titled or (_CUE.search(text[:start]) and len(words) - lead >= 2):
            spans.append((start, run.end()))
            continue
        first = _name_start(lowered, at_start=bool(_SENTENCE_START.search(text[:start])))
        if first is not None:
            spans.append((run.start() + words[first].start(), run.end()))
    return spans


def _name_start(lowered: list[str], *, at_start: bool) -> int | None:
    """Index of the word where a name starts in a run of two or more capitalised words."""
    if len(lowered) < 2:
        return None
    given, family = name_lists()
    found = [i for i, word in enumerate(lowered) if _known(word, given)]
    if found and found[0] < len(lowered) - 1:
        return found[0]
    # Only the last word is a given name: family name first ("Tanaka Kenji"), unless the
    # word before it merely opens the sentence.
    if found and not (found[0] == 1 and at_start):
        return found[0] - 1
    # A given name the lists lack ("Ananya Iyer"): two words closing on a family name.
    if len(lowered) == 2 and _known(lowered[1], family) and lowered[0] not in _EVERYDAY:
        return 0
    return None


def _known(word: str, names: frozenset[str]) -> bool:
    # The lists spell some names without their accents: "Elodie" for "Élodie".
    return word not in _EVERYDAY and (word in names or _plain(word) in names)


_NUMBER = r"\d{1,5}[A-Za-z]?(?:[-/]\d{1,4}[A-Za-z]?)?"
_NAMES = r"[\p{L}'\u2019.-]+(?:[ \t]+[\p{L}'\u2019.-]+){0,4}"
_ADDRESS_PATTERNS = [
    # Germany: Hauptstraße 5, 10115 Berlin
    rf"\p{{Lu}}[\p{{L}}.-]*(?:straße|strasse|str\.|weg|platz|allee|gasse|ring|damm|ufer)"
    rf"[ \t]+{_NUMBER},?[ \t]+\d{{5}}[ \t]+\p{{Lu}}[\p{{L}}-]+(?:[ \t]+\p{{Lu}}[\p{{L}}-]+)?",
    # France: 12 rue de la Paix, 75002 Paris
    rf"\d{{1,4}}(?:[ \t]?(?:bis|ter))?,?[ \t]+(?i:rue|avenue|av\.|boulevard|bd|place|allée|"
    rf"chemin|impasse|quai|route)[ \t]+{_NAMES},?[ \t]+\d{{5}}[ \t]+\p{{Lu}}[\p{{L}}-]+"
    rf"(?:[ \t]+(?:CEDEX|Cedex|\d{{1,2}}))?",
    # India: 12 MG Road, Indiranagar, Bengaluru 560038 (a six-digit PIN ends it)
    rf"(?:(?:Flat|House|Plot|Door|H\.?)[ \t]*(?:No\.?)?[ \t]*)?{_NUMBER},?[ \t]+"
    rf"[^\n]{{0,80}}?\b(?:Road|Rd\.?|Marg|Nagar|Lane|Street|Colony|Layout|Sector|Chowk|Bagh)"
    rf"\b[^\n]{{0,60}}?[ \t,-]+\d{{3}}[ \t]?\d{{3}}(?!\d)",
    # Japan, romanised: 1-2-3 Jingumae, Shibuya-ku, Tokyo 150-0001
    rf"\d{{1,4}}-\d{{1,4}}(?:-\d{{1,4}})?[ \t]+{_NAMES},[ \t]*[\p{{L}}]+-(?:ku|shi|cho|machi)"
    rf"(?:,[ \t]*{_NAMES})?(?:[ \t,]+\d{{3}}-\d{{4}})?",
    # Japan, in Japanese: 〒150-0001 東京都渋谷区神宮前1-2-3
    r"〒?\d{3}-\d{4}[ \t]*[\p{Han}\p{Hiragana}\p{Katakana}]+[\d\uff10-\uff19\-\uff0d丁目番地号]+",
    # Brazil: Rua Augusta, 1500 - Consolação, São Paulo - SP, 01304-001
    rf"(?:Rua|Avenida|Av\.|Travessa|Alameda|Praça|Estrada|Rodovia)[ \t]+{_NAMES},?[ \t]+"
    rf"(?:n[º°o]\.?[ \t]*)?\d{{1,5}}[^\n]{{0,80}}?\d{{5}}-\d{{3}}",
]
_ADDRESS = regex.compile("|".join(f"(?:{p})" for p in _ADDRESS_PATTERNS))


def address_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each postal address found in `text`."""
    import pyap

    spans = [(m.start(), m.end()) for m in _ADDRESS.finditer(text)]
    if not any(ch.isdigit() for ch in text):
        return spans
    for country in ("US", "CA", "GB"):
        # Each country reads the text with what is already found masked, so a loose British
        # match cannot swallow an American address and hide its own.
        masked = list(text)
        for start, end in spans:
            masked[start:end] = "~" * (end - start)
        spans += [_locate(text, a) for a in pyap.parse("".join(masked), country=country)]
    return spans


def _locate(text: str, address) -> tuple[int, int]:
    # pyap's offsets count in its whitespace-collapsed copy of the text: find the words of
    # the address in the text itself, whatever spaces and commas stand between them.
    words = regex.findall(r"[^\s,]+", address.full_address)
    found = regex.search(r"[\s,]*".join(map(regex.escape, words)), text)
    return (found.start(), found.end()) if found else (address.match_start, address.match_end)


class _SpanRecognizer(EntityRecognizer):
    """Wraps a span finder as a presidio recognizer of one entity type."""

    def __init__(self, entity: str, find, score: float):
        self.find, self.score = find, score
        super().__init__(supported_entities=[entity], name=f"{entity.title()}Recognizer")

    def load(self) -> None:
        """Nothing to load: the data ships inside the packages."""

    def analyze(self, text, entities, nlp_artifacts=None):
        entity = self.supported_entities[0]
        return [RecognizerResult(entity, start, end, self.score) for start, end in self.find(text)]


class Redactor:
    """Redacts the texts of one case, numbering each distinct value per type."""

    def __init__(self):
        self._placeholders: dict[tuple[str, str], str] = {}
        self._numbers: Counter = Counter()
        self.found: Counter = Counter()

    def text(self, value: str) -> str:
        if not value or not isinstance(value, str):
            return value
        results = analyzer().analyze(text=value, language="en", score_threshold=MIN_SCORE)
        spans = _non_overlapping(results)
        out = []
        last = 0
        for result in spans:
            kind = PLACEHOLDER.get(result.entity_type, result.entity_type)
            raw = value[result.start : result.end]
            key = (kind, raw)
            if key not in self._placeholders:
                self._numbers[kind] += 1
                self._placeholders[key] = f"<{kind}_{self._numbers[kind]}>"
                self.found[kind] += 1
            out.append(value[last : result.start])
            out.append(self._placeholders[key])
            last = result.end
        out.append(value[last:])
        return "".join(out)

    def value(self, value: Any) -> Any:
        """Redact every string inside a JSON value (keys stay: they are field names)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value


def _non_overlapping(results):
    # Highest score first, then longest; drop anything overlapping a span already taken.
    chosen = []
    for result in sorted(results, key=lambda r: (-r.score, -(r.end - r.start), r.start)):
        if all(result.end <= c.start or result.start >= c.end for c in chosen):
            chosen.append(result)
    return sorted(chosen, key=lambda r: r.start)


def find_pii(text: str) -> list[tuple[str, str]]:
    """(placeholder type, value) for each PII span found; for tests and reports."""
    results = _non_overlapping(
        analyzer().analyze(text=text, language="en", score_threshold=MIN_SCORE)
    )
    return [(PLACEHOLDER.get(r.entity_type, r.entity_type), text[r.start : r.end]) for r in results]
