"""Typo-tolerant brand search over an in-memory index (pure; rapidfuzz for the scoring).

Names and aliases are matched with rapidfuzz's WRatio, which tolerates typos, word order and
partial names ("mayo clinc", "clinic mayo", "stanford"). Words every other health system has
("health", "medical", "center", ... `GENERIC_WORDS`) are left out of the comparison whenever the
query has any other word, so "Mercy Health" does not find "Harbor Health" through "Health";
a query of generic words only ("health center") is compared whole. Results are ordered by score,
then name, then id, so paging is stable for a given catalog.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

import orjson
from rapidfuzz import fuzz, process, utils

MIN_SCORE = 70.0
GENERIC_WORDS = frozenset(
    {
        "and", "of", "the", "at", "st", "care", "center", "centers", "centre", "clinic",
        "clinics", "group", "health", "healthcare", "hospital", "hospitals", "medical",
        "medicine", "network", "physicians", "regional", "sandbox", "system", "systems",
    }
)  # fmt: skip


def _normal(text: str) -> str:
    return str(utils.default_process(text))


def _distinctive(normal: str) -> str:
    """The words of a normalized name that are not generic ("" when all are)."""
    return " ".join(word for word in normal.split() if word not in GENERIC_WORDS)


@dataclass(frozen=True)
class SearchDoc:
    brand_id: str
    name: str
    aliases: tuple[str, ...]
    cities: frozenset[str]
    states: frozenset[str]


@dataclass(frozen=True)
class Page:
    brand_ids: list[str]
    total: int
    search_after: str | None


class BrandIndex:
    def __init__(self, docs: list[SearchDoc]) -> None:
        self._docs = docs
        self._choices: list[str] = []  # normalized names and aliases
        self._distinct: list[str] = []  # the same without generic words (or whole, if all are)
        self._owner: list[int] = []
        for position, doc in enumerate(docs):
            for text in (doc.name, *doc.aliases):
                normal = _normal(text)
                self._choices.append(normal)
                self._distinct.append(_distinctive(normal) or normal)
                self._owner.append(position)

    def __len__(self) -> int:
        return len(self._docs)

    def search(self, query: str, *, city: str | None = None, state: str | None = None) -> list[str]:
        """Brand ids matching `query` (all, when blank) within the city/state filters."""
        wanted = self._filtered(city, state)
        query = query.strip()
        if not query:
            ranked = sorted(
                wanted, key=lambda i: (self._docs[i].name.lower(), self._docs[i].brand_id)
            )
            return [self._docs[i].brand_id for i in ranked]
        normal = _normal(query)
        distinct = _distinctive(normal)
        best: dict[int, float] = {}
        for _, score, choice_index in process.extract(
            distinct or normal,
            self._distinct if distinct else self._choices,
            scorer=fuzz.WRatio,
            score_cutoff=MIN_SCORE,
            limit=None,
        ):
            owner = self._owner[choice_index]
            if owner in wanted and score > best.get(owner, -1.0):
                best[owner] = score
        ranked = sorted(
            best, key=lambda i: (-best[i], self._docs[i].name.lower(), self._docs[i].brand_id)
        )
        return [self._docs[i].brand_id for i in ranked]

    def _filtered(self, city: str | None, state: str | None) -> set[int]:
        city_key = city.strip().lower() if city else None
        state_key = state.strip().lower() if state else None
        return {
            i
            for i, doc in enumerate(self._docs)
            if (not city_key or city_key in doc.cities)
            and (not state_key or state_key in doc.states)
        }


def paginate(ids: list[str], *, limit: int, search_after: str | None, fingerprint: str) -> Page:
    offset = decode_cursor(search_after, fingerprint) if search_after else 0
    window = ids[offset : offset + limit]
    following = offset + limit
    cursor = encode_cursor(following, fingerprint) if following < len(ids) else None
    return Page(brand_ids=window, total=len(ids), search_after=cursor)


def query_fingerprint(*parts: str | None) -> str:
    return hashlib.sha256("\x1f".join(p or "" for p in parts).encode()).hexdigest()[:16]


def encode_cursor(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"o": offset, "f": fingerprint})).decode()


def decode_cursor(cursor: str, fingerprint: str) -> int:
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        offset, owner = decoded["o"], decoded["f"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ValueError(
            "searchAfter is not a cursor this API returned; start without it"
        ) from None
    if owner != fingerprint or not isinstance(offset, int) or offset < 0:
        raise ValueError("searchAfter belongs to a different search; start without it")
    return offset
