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
from collections import Counter
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import tldextract
import tldextract.tldextract

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
    ):
        registry.add_recognizer(recognizer)
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


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
