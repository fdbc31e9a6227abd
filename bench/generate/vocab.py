"""Word lists of the generated datasets: names, places, shops, tags and the product catalog.

Leaf module of the generator (bench/generate/__init__.py): plain tuples, no randomness. Values the
spec's examples name (departments diamond/beads/charms, metal gold, tags VIP/staff) are spelt
exactly as the examples spell them, lower-case where the examples are.
"""
from __future__ import annotations

# Shops: also the customers' origin_shop. Spaces and non-ASCII on purpose.
SHOPS = ("Downtown", "Mall of America", "Zürich Bahnhofstrasse", "Online",
         "São Paulo Jardins", "Østerbro")
SHOP_WEIGHTS = (0.26, 0.22, 0.14, 0.20, 0.10, 0.08)

# First names (weight). Accented and unaccented twins (Zoë/Zoe) for accent-blind search.
FIRST_NAMES = (
    ("Mary", 5), ("John", 5), ("James", 4), ("Emma", 5), ("Olivia", 5), ("Liam", 4),
    ("Noah", 3), ("Ava", 3), ("Sophia", 4), ("Mia", 3), ("Lucas", 3), ("Ana", 2),
    ("José", 3), ("Zoë", 2), ("Zoe", 2), ("François", 2), ("Łukasz", 2), ("Chloé", 2),
    ("Björn", 1), ("Renée", 2), ("Søren", 1), ("Ólafur", 1), ("Siobhán", 1), ("Jürgen", 1),
    ("María", 2), ("Wei", 2), ("Yuki", 1), ("Fatima", 2), ("Mohammed", 2), ("Priya", 2),
    ("Anne-Marie", 1), ("Jean-Luc", 1), ("Agnès", 1), ("陽子", 1), ("Ærin", 1), ("Nuño", 1),
)

# Last names (weight). Smith/Smithson/Smithers share a prefix; Müller/Mueller/Muller and
# Nuñez/Nunez differ only by accent or transliteration.
LAST_NAMES = (
    ("Smith", 8), ("Smithson", 3), ("Smithers", 1), ("Johnson", 5), ("Williams", 4),
    ("Brown", 4), ("Jones", 4), ("Garcia", 3), ("García", 3), ("Miller", 3), ("Müller", 3),
    ("Mueller", 1), ("Muller", 1), ("Nuñez", 2), ("Nunez", 1), ("Øster", 1),
    ("Østergaard", 1), ("Ærø", 1), ("Łukasiewicz", 1), ("O'Brien", 2), ("van der Berg", 1),
    ("de la Cruz", 1), ("Dvořák", 1), ("Nguyễn", 2), ("Kowalski", 2), ("Lee", 3), ("Wang", 2),
    ("Ng", 1), ("Dubois", 2), ("Rossi", 2), ("Schäfer", 1), ("Jensen", 1), ("田中", 1),
    ("François", 1), ("Lefèvre", 1), ("Sørensen", 1),
)

EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com",
                 "gmx.ch", "web.de", "example.org")

STREETS = ("Main St", "Elm Street", "5th Avenue", "Bahnhofstrasse", "Rue de l'Église",
           "Calle Mayor", "Øster Allé", "Rua Augusta", "High Street", "Oak Ave, Apt 4B",
           "Broadway, Suite 210", "Königstraße")

# (city, postal code) pairs: postal codes are text (leading zeros, spaces, dashes).
PLACES = (
    ("New York", "10001"), ("New York", "10013"), ("New York", "10128"),
    ("Brooklyn", "11201"), ("Boston", "02108"), ("Zürich", "8001"), ("Zürich", "8004"),
    ("London", "SW1A 1AA"), ("London", "EC1A 1BB"), ("Paris", "75008"),
    ("São Paulo", "01310-100"), ("København", "1050"), ("Montréal", "H2Y 1C6"),
    ("Minneapolis", "55425"),
)

GENDERS = ("female", "male", "other")
GENDER_WEIGHTS = (0.55, 0.38, 0.03)          # remaining share null
MARITAL = ("single", "married", "divorced", "widowed")
MARITAL_WEIGHTS = (0.36, 0.40, 0.09, 0.04)   # remaining share null

# Tags and the chance a customer carries each one (independent).
TAGS = (("VIP", 0.05), ("staff", 0.01), ("wholesale", 0.02), ("newsletter", 0.30),
        ("birthday club", 0.08), ("Stammkunde", 0.03))

# Jewellery departments: (name, catalog weight, median price in cents, price sigma).
DEPARTMENTS = (
    ("rings", 0.18, 40_000, 0.8), ("earrings", 0.14, 20_000, 0.8),
    ("necklaces", 0.14, 30_000, 0.8), ("bracelets", 0.12, 25_000, 0.8),
    ("charms", 0.14, 6_000, 0.6), ("beads", 0.12, 2_500, 0.5),
    ("diamond", 0.10, 150_000, 0.9), ("watches", 0.06, 80_000, 0.9),
)
METALS = ("gold", "silver", "platinum", "white_gold", "rose_gold")
# Metal weights per department (same order as METALS); the rest of each row is null.
METAL_WEIGHTS = {
    "rings": (0.35, 0.25, 0.10, 0.15, 0.10), "earrings": (0.35, 0.35, 0.05, 0.10, 0.10),
    "necklaces": (0.35, 0.35, 0.05, 0.10, 0.10), "bracelets": (0.30, 0.40, 0.05, 0.10, 0.10),
    "charms": (0.30, 0.45, 0.00, 0.10, 0.10), "beads": (0.15, 0.30, 0.00, 0.00, 0.05),
    "diamond": (0.30, 0.00, 0.35, 0.25, 0.08), "watches": (0.25, 0.20, 0.05, 0.05, 0.05),
}
JEWELLERY_BRANDS = ("Pandora", "Trollbeads", "Tiffany & Co.", "Swarovski", "Thomas Sabo",
                    "Chopard")

# Dispensary side of the catalog.
DISPENSARY_BRANDS = ("Cookies", "Stiiizy", "Raw Garden", "Wyld", "Kiva")
STRAINS = ("Blue Dream", "OG Kush", "Sour Diesel", "Girl Scout Cookies", "Granddaddy Purple",
           "Gelato", "Pineapple Express")
INVENTORY_GROUPS = ("flower", "pre-rolls", "vape", "edibles", "concentrates", "topicals")
INVENTORY_TYPES = ("indica", "sativa", "hybrid", "cbd")
DISPENSARY_PRICE = (3_500, 0.6)   # median cents, sigma
