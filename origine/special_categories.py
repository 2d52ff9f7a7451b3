"""Column names that reveal special categories of personal data (GDPR art. 9).

A delivery is not allowed to carry these categories for canvassing; a column
named for one of them is evidence of profiling even when origine never stores
its values. Matching is on folded words (case, accents, separators ignored) so
``Religion``, ``RELIGION_DECLAREE`` and ``confession-religieuse`` all match.
"""

from __future__ import annotations

from origine.purposes import fold

# category -> phrases (folded, space-separated words). A phrase matches when its
# words appear consecutively in the column name's words.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "religion": (
        "religion", "religious", "religieux", "religieuse", "confession", "culte",
        "faith", "croyance", "belief", "beliefs", "musulman", "muslim", "catholique",
        "catholic", "juif", "jewish", "chretien", "christian", "islam", "halal",
        "casher", "kosher",
    ),
    "ethnic_origin": (
        "ethnic", "ethnicity", "ethnie", "ethnique", "origine ethnique",
        "ethnic origin", "race", "racial", "raciale", "racial origin",
    ),
    "health": (
        "health", "sante", "medical", "medicale", "maladie", "disease", "handicap",
        "disability", "pathologie", "diagnostic", "diagnosis",
    ),
    "sexual_orientation": (
        "sexual orientation", "orientation sexuelle", "sexualite", "sexuality",
        "lgbt", "lgbtq", "gay", "homosexuel",
    ),
    "political_opinion": (
        "political opinion", "opinion politique", "opinions politiques",
        "political affiliation", "affiliation politique", "vote", "votes",
        "intention de vote", "voting intention", "sympathisant", "sympathisants",
        "sympathie politique", "bord politique", "party affiliation",
        "parti politique", "political party", "militant",
    ),
    "union_membership": (
        "union membership", "trade union", "syndicat", "syndical", "syndicale",
        "syndique", "adhesion syndicale",
    ),
    "genetic_biometric": ("genetic", "genetique", "biometric", "biometrique"),
}


def special_category(column: str) -> str | None:
    """The special category a column name reveals, or ``None``."""
    words = fold(column).replace(".", " ").split()
    if not words:
        return None
    padded = " " + " ".join(words) + " "
    for category, phrases in CATEGORIES.items():
        for phrase in phrases:
            if f" {phrase} " in padded:
                return category
    # Names glued without separators ("originethnique", "religiondeclaree").
    glued = "".join(words)
    for category, phrases in CATEGORIES.items():
        for phrase in phrases:
            if len(phrase) >= 7 and phrase.replace(" ", "") in glued:
                return category
    return None
