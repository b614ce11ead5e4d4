"""The catalog search answer in Elasticsearch's shape, as Fasten Connect publishes it (compat).

`POST /v1/bridge/catalog/search` answers `data` =

    {"took", "timed_out",
     "hits": {"total": {"value", "relation": "eq"}, "max_score",
              "hits": [{"_index", "_type", "_id", "_score", "sort", "_source"}]},
     "aggregations": {"by_platform_type": {"doc_count_error_upper_bound", "sum_other_doc_count",
                                           "buckets": [{"key", "doc_count"}]}}}

`_source` is the brand as `GET /bridge/catalog` shows it plus `sort_name`, `hidden`,
`platform_type` and `logo_uri` (Fasten's name for `logo`). The next page is asked for with
`searchAfter` = the last hit's `sort`. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from ehiconnect.catalog.search import Page, Ranked

INDEX_NAME = "catalog_brands"


def brand_platform_type(hit: Ranked, brand: dict[str, Any]) -> str | None:
    """One platform for the brand: its first active endpoint's, else its first endpoint's."""
    endpoints = [e for portal in brand["portals"] for e in portal["endpoints"]]
    for endpoint in endpoints:
        if endpoint["status"] == "active" and endpoint["platform_type"]:
            return str(endpoint["platform_type"])
    return hit.platform_types[0] if hit.platform_types else None


def search_response(page: Page, brands: dict[str, dict[str, Any]], took_ms: int) -> dict[str, Any]:
    """`brands`: brand views by id (a hit whose brand vanished meanwhile is left out)."""
    hits = []
    for hit in page.hits:
        brand = brands.get(hit.brand_id)
        if brand is None:
            continue
        source = {
            **brand,
            "logo_uri": brand["logo"],
            "sort_name": hit.sort_name,
            "hidden": False,
            "platform_type": brand_platform_type(hit, brand),
        }
        hits.append(
            {
                "_index": INDEX_NAME,
                "_type": "_doc",
                "_id": hit.brand_id,
                "_score": hit.score,
                "sort": list(hit.sort),
                "_source": source,
            }
        )
    return {
        "took": took_ms,
        "timed_out": False,
        "hits": {
            "total": {"value": page.total, "relation": "eq"},
            "max_score": page.max_score,
            "hits": hits,
        },
        "aggregations": {
            "by_platform_type": {
                "doc_count_error_upper_bound": 0,
                "sum_other_doc_count": 0,
                "buckets": [{"key": key, "doc_count": n} for key, n in page.by_platform_type],
            }
        },
    }
