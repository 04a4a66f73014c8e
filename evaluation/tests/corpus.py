"""A synthetic corpus: planted PII of each kind, and lookalikes that are not PII."""

PLANTED = {
    "EMAIL": ["anna.smith@example.org", "j.doe+refunds@shop.example.com"],
    "PHONE": ["+1 212-555-0187", "+44 20 7946 0958", "+49 30 12345678"],
    "CARD": ["4111 1111 1111 1111", "5500-0000-0000-0004"],
    "IBAN": ["DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32"],
    "IP": ["192.168.1.20", "10.0.0.7"],
    "GOV_ID": ["536-22-1234", "AB 12 34 56 C"],
}

LOOKALIKES = [
    "order #20261123",
    "shipped on 2026-11-23",
    "release 1.2.3",
    "card ending 4111 1111 1111 1112",  # fails the Luhn check
    "IBAN DE00 1234 5678 9012 3456 78",  # wrong check digits
    "host 999.1.1.1",
    "write to support at example dot com",
    "SKU 000-00-0000",
    "total 4111.11 EUR",
]

TEMPLATES = [
    "Customer wrote from {} about order 17.",
    "Please call back on {} before noon.",
    "Refund goes to {} as agreed.",
    "Logged in from {} yesterday.",
    "Identity checked with {}.",
]


def sentences():
    """(text, planted values in it) pairs covering every kind and every lookalike."""
    out = []
    index = 0
    for values in PLANTED.values():
        for value in values:
            out.append((TEMPLATES[index % len(TEMPLATES)].format(value), [value]))
            index += 1
    for lookalike in LOOKALIKES:
        out.append((f"Note: {lookalike}.", []))
    return out
