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


# People and places: names and postal addresses from seven countries, set in support-ticket
# text by a seeded generator, and lookalikes that a careless detector would take for them.
SEED = 18
NAMES = {
    "US": ["Emily Johnson", "Michael Brown", "Jessica Martinez", "Tyler Robinson"],
    "UK": ["Oliver Hughes", "Siobhan O'Connor", "Charlotte Davies", "Harry Whitfield"],
    "DE": ["Jürgen Müller", "Anna Schmidt", "Lukas Becker", "Katrin Weiß"],
    "FR": ["Élodie Dubois", "François Lefèvre", "Camille Moreau", "Amélie Fontaine"],
    "IN": ["Priya Sharma", "Rajesh Kumar", "Ananya Iyer", "Deepika Reddy"],
    "JP": ["Hiroshi Tanaka", "Yuki Sato", "Takeshi Yamamoto", "Tanaka Kenji"],
    "BR": ["João Silva", "Beatriz Santos", "Lucas Oliveira", "Maria da Costa"],
}
ADDRESSES = {
    "US": [
        "742 Evergreen Terrace, Springfield, IL 62704",
        "350 Fifth Avenue, New York, NY 10118",
        "1200 Main St, Austin TX 78701",
    ],
    "UK": [
        "221B Baker Street, London NW1 6XE",
        "Flat 2, 14 Princes Street, Edinburgh EH2 2AN",
        "10 Downing Street, London SW1A 2AA",
    ],
    "DE": [
        "Hauptstraße 5, 10115 Berlin",
        "Lindenallee 12a, 50968 Köln",
        "Bahnhofstr. 3, 80335 München",
    ],
    "FR": [
        "12 rue de la Paix, 75002 Paris",
        "45 avenue Jean Jaurès, 69007 Lyon",
        "3 bis boulevard Victor Hugo, 06000 Nice",
    ],
    "IN": [
        "12 MG Road, Indiranagar, Bengaluru 560038",
        "Flat 4B, 27 Nehru Nagar, Pune 411001",
        "House No. 9, Sector 15, Gurugram - 122001",
    ],
    "JP": [
        "1-2-3 Jingumae, Shibuya-ku, Tokyo 150-0001",
        "4-5-6 Umeda, Kita-ku, Osaka 530-0001",
        "〒150-0001 東京都渋谷区神宮前1-2-3",
    ],
    "BR": [
        "Rua Augusta, 1500 - Consolação, São Paulo - SP, 01304-001",
        "Avenida Atlântica, 1702 - Copacabana, Rio de Janeiro - RJ, 22021-001",
        "Rua das Flores, 89, Curitiba - PR, 80010-130",
    ],
}
NAME_TEMPLATES = [
    "Customer {} says the refund never arrived.",
    "Hi {}, thanks for your patience while we check order 4411.",
    "Escalated by {} after two failed deliveries.",
    "Ticket opened for {}: double charge on the March invoice.",
    "{} asked to cancel the subscription before renewal.",
    "Please confirm with {} that the replacement was shipped.",
    "Mr. {} wants the invoice re-issued to the company.",
    "Refund approved; {} will get an email today.",
]
ADDRESS_TEMPLATES = [
    "Parcel was sent to {} but came back.",
    "Please update the billing address to {} before the next invoice.",
    "Customer moved; new delivery address: {}.",
    "The courier could not find {} and returned the box.",
]
NOT_PII = [
    "Customer wants to return the Jordan 1 Retro High, size 44.",
    "Ford Focus parts order 7781 is delayed at the warehouse.",
    "Main Street checkout bug: the pay button does nothing on Safari.",
    "Bug report: Elm Street landing page shows the old prices.",
    "Refund for the Morgan Stanley Ltd invoice was approved.",
    "Acme Services Ltd asked for a copy of the VAT invoice.",
    "Please escalate this to the Billing team before Friday.",
    "Customer Support rotated the on-call schedule for December.",
    "Thanks for flagging the Apple Pay timeout on iOS 17.",
    "Order 5521 shipped with the Tesla Model 3 floor mats.",
    "Return label for the Nike Air Max 90 was emailed twice.",
    "Will the refund reach the card within 5 business days?",
    "May Update rollout broke the export to CSV for 3 tenants.",
    "Grace period for the annual plan ends on 2026-12-31.",
    "Victoria Station pickup point is closed until Monday.",
    "Harbour Road release notes mention 12 fixes and 2 known issues.",
    "Order 221 contains 3 items; 2 were out of stock.",
    "The Paris office handles refunds for France and Belgium.",
    "Escalated: Google Pay and PayPal both declined the same order.",
    "Version 10.2.1 of the Android app fixes the London timezone bug.",
]


def people_and_places():
    """(text, planted values, country) triples: each name and address in two ticket
    sentences, then every lookalike with nothing planted."""
    import random

    rng = random.Random(SEED)
    out = []
    for country, names in NAMES.items():
        for name in names:
            for template in rng.sample(NAME_TEMPLATES, 2):
                value = name.split()[-1] if template.startswith("Mr.") else name
                out.append((template.format(value), [value], country))
    for country, addresses in ADDRESSES.items():
        for address in addresses:
            for template in rng.sample(ADDRESS_TEMPLATES, 2):
                out.append((template.format(address), [address], country))
    out.extend((text, [], None) for text in NOT_PII)
    return out
