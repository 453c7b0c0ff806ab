from pathlib import Path

import pytest
import yaml

from nlp.taxonomy import DEFAULT_TAXONOMY_PATH, TaxonomyError, load_taxonomy, parse_taxonomy


def test_default_taxonomy_loads_with_all_codes():
    tax = load_taxonomy()
    assert len(tax.categories) == 18
    subs = list(tax.subcategories())
    assert len(subs) == 147
    assert tax.name_of("0102") == "路灯与景观照明"
    assert tax.top_level_of("0102") == "01"
    assert tax.top_level_of("01") == "01"
    assert tax.top_level_of("城乡建设") is None
    assert tax.priority_of("1003") == "P1"
    assert "井盖" in tax.keywords()
    assert len(tax.sha256) == 64


def test_bundled_copy_matches_shared(shared_dir: Path):
    assert DEFAULT_TAXONOMY_PATH.read_bytes() == (shared_dir / "taxonomy" / "city_events.yaml").read_bytes()


def _doc():
    return {
        "name": "t",
        "categories": [
            {
                "code": "01",
                "name_zh": "甲",
                "subcategories": [{"code": "0101", "name_zh": "甲一", "priority": "P2", "keywords": ["井盖"]}],
            }
        ],
    }


def test_other_file_of_same_shape(tmp_path: Path):
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump(_doc(), allow_unicode=True), encoding="utf-8")
    tax = load_taxonomy(p)
    assert [c.code for c in tax.categories] == ["01"]
    assert tax.subcategory("0101").keywords == ("井盖",)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["categories"][0].update(code="1"), "2 digits"),
        (lambda d: d["categories"][0]["subcategories"][0].update(code="0201"), "starting with 01"),
        (lambda d: d["categories"][0]["subcategories"][0].update(priority="P9"), "priority"),
        (lambda d: d["categories"][0].update(subcategories=[]), "non-empty"),
        (lambda d: d["categories"].append(d["categories"][0]), "duplicate"),
        (lambda d: d.pop("categories"), "categories"),
    ],
)
def test_invalid_taxonomies_are_refused(mutate, message):
    doc = _doc()
    mutate(doc)
    with pytest.raises(TaxonomyError, match=message):
        parse_taxonomy(doc)
