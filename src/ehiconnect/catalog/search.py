"""Typo-tolerant brand search over an in-memory index (pure; rapidfuzz for the scoring).

Names and aliases are matched with rapidfuzz's WRatio, which tolerates typos, word order and
partial names ("mayo clinc", "clinic mayo", "stanford"). Words every other health system has
("health", "medical", "center", ... `GENERIC_WORDS`) are left out of the comparison whenever the
query has any other word, so "Mercy Health" does not find "Harbor Health" through "Health";
a query of generic words only ("health center") is compared whole.

Results are ordered the way Elasticsearch orders them with `sort: [_score desc, sort_name asc,
_id asc]`, and each result carries that sort key. Paging is Elasticsearch's `search_after`: the
next page starts after the key of the last result shown, so a page never repeats or skips a brand,
and a key stays meaningful for any query (no server-side cursor state).
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

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
    platform_types: tuple[str, ...] = field(default=())
    """The platforms of the brand's endpoints, in catalog order (for the aggregation)."""


MATCH_ALL_SCORE = 1.0
"""The score of every brand when the query is blank (Elasticsearch's `match_all` gives 1.0)."""

SCORE_DIGITS = 4
"""Scores are rounded before ranking, so a key that travelled through JSON compares exactly."""

SortKey = tuple[float, str, str]
"""`(score, sort_name, brand_id)`: the hit's `sort` array, in that order."""


def sort_name(name: str) -> str:
    """What results are ordered by after the score: the name, case-folded."""
    return name.casefold()


@dataclass(frozen=True)
class Ranked:
    brand_id: str
    score: float
    sort_name: str
    platform_types: tuple[str, ...]

    @property
    def sort(self) -> SortKey:
        return (self.score, self.sort_name, self.brand_id)


def _order(key: SortKey) -> tuple[float, str, str]:
    """Ascending order of `key`: score descending, then name and id ascending."""
    return (-key[0], key[1], key[2])


@dataclass(frozen=True)
class Page:
    hits: list[Ranked]
    total: int
    max_score: float | None
    by_platform_type: list[tuple[str, int]]
    """Every match (not only this page) counted per platform, most first, then by name."""

    @property
    def brand_ids(self) -> list[str]:
        return [hit.brand_id for hit in self.hits]


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
        return [hit.brand_id for hit in self.rank(query, city=city, state=state)]

    def rank(
        self, query: str, *, city: str | None = None, state: str | None = None
    ) -> list[Ranked]:
        """Every match with its score, in result order."""
        wanted = self._filtered(city, state)
        query = query.strip()
        if not query:
            scores = dict.fromkeys(wanted, MATCH_ALL_SCORE)
        else:
            normal = _normal(query)
            distinct = _distinctive(normal)
            scores = {}
            for _, score, choice_index in process.extract(
                distinct or normal,
                self._distinct if distinct else self._choices,
                scorer=fuzz.WRatio,
                score_cutoff=MIN_SCORE,
                limit=None,
            ):
                owner = self._owner[choice_index]
                rounded = round(float(score), SCORE_DIGITS)
                if owner in wanted and rounded > scores.get(owner, -1.0):
                    scores[owner] = rounded
        ranked = [
            Ranked(
                brand_id=self._docs[i].brand_id,
                score=score,
                sort_name=sort_name(self._docs[i].name),
                platform_types=self._docs[i].platform_types,
            )
            for i, score in scores.items()
        ]
        ranked.sort(key=lambda hit: _order(hit.sort))
        return ranked

    def _filtered(self, city: str | None, state: str | None) -> set[int]:
        city_key = city.strip().lower() if city else None
        state_key = state.strip().lower() if state else None
        return {
            i
            for i, doc in enumerate(self._docs)
            if (not city_key or city_key in doc.cities)
            and (not state_key or state_key in doc.states)
        }


def page_after(ranked: list[Ranked], *, limit: int, search_after: SortKey | None) -> Page:
    """The `limit` results after `search_after` (from the start without one)."""
    start = 0
    if search_after is not None:
        start = bisect.bisect_right([_order(hit.sort) for hit in ranked], _order(search_after))
    counts = Counter(kind for hit in ranked for kind in dict.fromkeys(hit.platform_types))
    return Page(
        hits=ranked[start : start + limit],
        total=len(ranked),
        max_score=max((hit.score for hit in ranked), default=None),
        by_platform_type=sorted(counts.items(), key=lambda item: (-item[1], item[0])),
    )


def parse_search_after(value: object) -> SortKey | None:
    """The `searchAfter` of a request: the last hit's `sort` array as returned, or the same
    values joined by commas (`"87.5,mercy health,mercy-health"`). ValueError says what is wrong."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        head, sep, rest = value.partition(",")
        name, sep2, brand_id = rest.rpartition(",")
        if not sep or not sep2:
            raise ValueError(_BAD_SEARCH_AFTER)
        parts: list[object] = [head, name, brand_id]
    elif isinstance(value, list):
        parts = list(value)
    else:
        raise ValueError(_BAD_SEARCH_AFTER)
    if len(parts) != 3 or not isinstance(parts[1], str) or not isinstance(parts[2], str):
        raise ValueError(_BAD_SEARCH_AFTER)
    score = parts[0]
    try:
        number = float(score) if isinstance(score, int | float | str) else None
    except ValueError:
        number = None
    if number is None or isinstance(score, bool) or number != number:  # NaN
        raise ValueError(_BAD_SEARCH_AFTER)
    return (number, parts[1], parts[2])


_BAD_SEARCH_AFTER = (
    "searchAfter must be the `sort` array of the last hit of the previous page "
    "([score, sort_name, id]); start without it"
)
