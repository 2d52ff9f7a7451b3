"""Inbound SMS replies: which ones are a STOP, which ones a re-subscribe.

The decision, on the reply folded (case, accents and punctuation ignored, so
``Arrêt``, ``ARRET`` and ``arret!`` are one word):

* **strong stop words** — ``stop``, ``stopall``, ``arret`` (``arretez``), ``desabonner`` (and its
  forms ``desabonnez``, ``desabonnement``, ``desinscrire``…), ``unsubscribe``,
  ``optout`` / ``opt out``, and the phrase ``stop sms`` — are a STOP wherever they
  stand as a whole word: "Stop", "STOP SMS", "arrêt svp", "stop 36789",
  "Non merci STOP". A whole word only: "stopper", "s'arrête", "arrêter" are not
  STOP (a person writing "je ne veux pas que ça s'arrête" did not opt out).
* **weak stop words** — ``end``, ``quit``, ``cancel``, ``revoke`` (carrier keywords
  that are everyday English words) — are a STOP only when they are the whole reply,
  apart from politeness words (please, thanks, merci, svp…) and a short code: "END",
  "Cancel please" are; "the end of the world" is not.
* **re-subscribe words** — ``start``, ``unstop`` — are a re-subscribe only when they
  are the whole reply in the same sense, and only when no stop word is there.

What a re-subscribe means: **nothing for consent**. A keyword reply to a sender
says neither which purpose nor which sponsor, and carries none of what proves
consent (CNIL: specific, informed, one tick-box per purpose): origine records no
``consent_granted`` for it and does not lift the opt-out. It is counted in the
audit's summary (``send_report.resubscribe_replies``) so the operator sees it; a
sender who wants to text that person again needs a new, provable consent for the
purpose, delivered like any other.
"""

from __future__ import annotations

import re
from typing import Literal

from origine.purposes import fold

Reply = Literal["stop", "start"] | None

STOP = "stop"
START = "start"

STRONG_STOP = frozenset({
    "stop", "stopall", "arret", "arretez", "desabonner", "desabonnez", "desabonne", "desabonnement", "desinscrire",
    "desinscrivez", "desinscription", "unsubscribe", "optout",
})
WEAK_STOP = frozenset({"end", "quit", "cancel", "revoke"})
RESUBSCRIBE = frozenset({"start", "unstop"})
# Words that may surround a lone keyword without changing what it says.
POLITE = frozenset({
    "please", "pls", "plz", "thanks", "thank", "you", "merci", "svp", "stp", "sil", "vous", "plait",
    "te", "ok", "non", "no", "bonjour", "hello", "hi",
})
_CODE = re.compile(r"^\d{3,8}$")  # a short code (36789) written after the keyword


_NON_STOP = re.compile(r"\bnon-stop\b", re.IGNORECASE)  # "non-stop" (continuous) is one word


def _words(text: str) -> list[str]:
    # fold() maps punctuation and apostrophes to spaces: "s'arrête" -> "s arrete"
    # fold() keeps dots (they belong in purpose codes): "stop." is "stop"
    return fold(_NON_STOP.sub("nonstop", text)).replace(".", " ").split()


def classify_reply(text: object) -> Reply:
    """``"stop"``, ``"start"`` or ``None`` for one reply text (see the module's rules)."""
    if text is None:
        return None
    words = _words(str(text))
    if not words:
        return None
    if any(w in STRONG_STOP for w in words) or any(
        a == "opt" and b == "out" for a, b in zip(words, words[1:])
    ):
        return STOP
    core = [w for w in words if w not in POLITE and not _CODE.match(w)]
    if len(core) == 1 and core[0] in WEAK_STOP:
        return STOP
    if len(core) == 1 and core[0] in RESUBSCRIBE:
        return START
    return None


def is_stop(text: object) -> bool:
    """True when the reply asks to stop (see :func:`classify_reply`)."""
    return classify_reply(text) == STOP
