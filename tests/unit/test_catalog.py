"""The product catalog (docs/products.md): the packaged data file and custom deployment files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voxmeter.domain.catalog import Aggregation, Catalog, Product

SUM, ROUND_UP, COUNT, MAX = "sum", "sum_round_up", "count", "max"

#: The packaged catalog as docs/products.md lists it: number, api, title, unit, aggregation.
DOCUMENTED_TABLE = [
    (1, "agent_script", "Agent Script", "licenses", MAX),
    (2, "intelligent_dial", "Intelligent dial", "licenses", MAX),
    (3, "gamification", "Gamification", "licenses", MAX),
    (4, "ivr_minutes", "IVR minutes", "minutes", ROUND_UP),
    (5, "rec_minutes", "Recording minutes", "minutes", ROUND_UP),
    (6, "amazon_s3", "Amazon S3 storage", "GB", MAX),
    (7, "rsync", "Rsync transfer", "GB", SUM),
    (8, "rsync_s3_mp3", "Rsync S3 MP3 transfer", "GB", SUM),
    (9, "rec_screen", "Screen recording", "minutes", ROUND_UP),
    (10, "interactions", "Interactions", "interactions", COUNT),
    (11, "rec_screen_on_demand", "Screen recording on demand", "minutes", ROUND_UP),
    (12, "speech_analytics", "Speech analytics", "minutes", ROUND_UP),
    (13, "wp_connectors", "WhatsApp connectors", "connectors", MAX),
    (14, "sentiment_analysis", "Sentiment analysis", "analyses", COUNT),
    (15, "chat_licenses", "Chat licenses", "licenses", MAX),
    (16, "interaction_licenses", "Interaction licenses", "licenses", MAX),
    (17, "video_call", "Video call", "minutes", ROUND_UP),
    (18, "pbx_licenses", "PBX licenses", "licenses", MAX),
    (19, "ivr_calls", "IVR calls", "calls", COUNT),
    (20, "asr_calls", "ASR calls", "calls", COUNT),
    (21, "vision", "Vision", "requests", COUNT),
    (22, "tts_chars", "TTS characters", "characters", SUM),
    (23, "wp_connectors_official", "Official WhatsApp connectors", "connectors", MAX),
    (24, "contact_center_licenses", "Contact center licenses", "licenses", MAX),
    (25, "amd_ai", "AMD AI", "recognitions", COUNT),
    (26, "stereo_rec", "Stereo recording", "minutes", ROUND_UP),
    (27, "nlp_ai", "NLP", "requests", COUNT),
]


def _row(product: Product) -> tuple[int, str, str, str, str]:
    return (product.number, product.api, product.title, product.unit, product.aggregation.value)


def _write(path: Path, products: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps({"products": products}), "utf-8")
    return path


def _entry(number: int, api: str, aggregation: str = "sum") -> dict[str, object]:
    return {
        "number": number,
        "api": api,
        "title": api.title(),
        "unit": "u",
        "aggregation": aggregation,
    }


def test_packaged_catalog_is_exactly_the_spec_table_in_order() -> None:
    catalog = Catalog.load()
    assert len(catalog) == 27
    assert [_row(p) for p in catalog] == DOCUMENTED_TABLE


def test_packaged_catalog_aggregations_are_enum_members() -> None:
    for product in Catalog.load():
        assert isinstance(product.aggregation, Aggregation)
        assert isinstance(product.number, int)


def test_numbers_are_one_to_27_in_catalog_order() -> None:
    assert [p.number for p in Catalog.load()] == list(range(1, 28))


@pytest.mark.parametrize("row", DOCUMENTED_TABLE, ids=[r[1] for r in DOCUMENTED_TABLE])
def test_lookup_by_api(row: tuple[int, str, str, str, str]) -> None:
    catalog = Catalog.load()
    assert row[1] in catalog
    product = catalog.get(row[1])
    assert product is not None
    assert _row(product) == row


@pytest.mark.parametrize("api", ["all", "", "IVR_MINUTES", "ivr_minutes ", "nope", "unique"])
def test_unknown_api_is_not_in_the_catalog(api: str) -> None:
    catalog = Catalog.load()
    assert api not in catalog
    assert catalog.get(api) is None


def test_non_string_is_not_in_the_catalog() -> None:
    assert 4 not in Catalog.load()
    assert None not in Catalog.load()


def test_only_max_is_a_level() -> None:
    assert Aggregation.MAX.is_level
    assert [a for a in Aggregation if a.is_level] == [Aggregation.MAX]


def test_aggregation_values() -> None:
    assert {a.value for a in Aggregation} == {"sum", "sum_round_up", "count", "max", "unique"}


def test_custom_catalog_file_with_a_unique_product(tmp_path: Path) -> None:
    entries = [
        _entry(1, "ivr_minutes", "sum_round_up"),
        {
            "number": 28,
            "api": "active_agents",
            "title": "Active agents",
            "unit": "agents",
            "aggregation": "unique",
        },
    ]
    catalog = Catalog.load(_write(tmp_path / "products.json", entries))
    assert len(catalog) == 2
    assert [p.api for p in catalog] == ["ivr_minutes", "active_agents"]
    product = catalog.get("active_agents")
    assert product == Product(28, "active_agents", "Active agents", "agents", Aggregation.UNIQUE)
    assert "agent_script" not in catalog


def test_a_28th_product_is_one_entry(tmp_path: Path) -> None:
    packaged = [
        {"number": n, "api": a, "title": t, "unit": u, "aggregation": g}
        for n, a, t, u, g in DOCUMENTED_TABLE
    ]
    packaged.append(_entry(28, "call_tags", "unique"))
    catalog = Catalog.load(_write(tmp_path / "p.json", packaged))
    assert len(catalog) == 28
    assert [_row(p) for p in catalog][:27] == DOCUMENTED_TABLE
    last = list(catalog)[-1]
    assert (last.number, last.api, last.aggregation) == (28, "call_tags", Aggregation.UNIQUE)


def test_custom_file_with_duplicate_api_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.json", [_entry(1, "vision"), _entry(2, "vision", "count")])
    with pytest.raises(ValueError, match="duplicate"):
        Catalog.load(path)


def test_custom_file_with_all_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.json", [_entry(1, "vision"), _entry(2, "all")])
    with pytest.raises(ValueError, match="'all' is reserved"):
        Catalog.load(path)


def test_custom_file_with_unknown_aggregation_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.json", [_entry(1, "vision", "average")])
    with pytest.raises(ValueError, match="average"):
        Catalog.load(path)


def test_empty_catalog_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one product"):
        Catalog.load(_write(tmp_path / "p.json", []))
    with pytest.raises(ValueError, match="at least one product"):
        Catalog([])


def test_constructor_rejects_duplicates_and_all() -> None:
    a = Product(1, "a", "A", "u", Aggregation.SUM)
    with pytest.raises(ValueError, match="duplicate"):
        Catalog([a, Product(2, "a", "A again", "u", Aggregation.COUNT)])
    with pytest.raises(ValueError, match="reserved"):
        Catalog([a, Product(2, "all", "All", "u", Aggregation.COUNT)])


def test_catalog_is_read_only_snapshot_of_its_input() -> None:
    products = [Product(1, "a", "A", "u", Aggregation.SUM)]
    catalog = Catalog(products)
    products.append(Product(2, "b", "B", "u", Aggregation.SUM))
    assert len(catalog) == 1
    assert "b" not in catalog
    with pytest.raises(AttributeError):
        catalog.get("a").api = "x"  # type: ignore[union-attr, misc]
