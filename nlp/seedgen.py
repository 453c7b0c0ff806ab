"""Build the seed corpus (``nlp/data/seed_corpus.jsonl``) from ``nlp/data/seed_phrases.yaml``.

Each phrase (a problem in a resident's words) is placed into channel-style frames: a bare SMS,
an SMS with a request, a WeChat "随手拍" caption, a web-form complaint with a greeting, a place,
how long it has lasted and what the resident asks for. The generator is deterministic (fixed
seed), so the corpus file, and with it the bundled model, only changes when the phrases or this
code change. Every row carries ``phrase`` (the index of its phrase within its subcategory), so a
held-out measurement can hold out whole phrases rather than re-worded copies of training rows.

Run ``python -m nlp.seedgen`` after editing the phrases.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

DATA = Path(__file__).parent / "data"
PHRASES_PATH = DATA / "seed_phrases.yaml"
CORPUS_PATH = DATA / "seed_corpus.jsonl"

ROADS = [
    "人民路",
    "建设路",
    "民治大道",
    "东环二路",
    "和平街",
    "中山路",
    "解放大道",
    "新华路",
    "梅林路",
    "龙华大道",
    "幸福路",
    "文化路",
    "滨河路",
    "工业二路",
    "学府路",
    "南京路",
    "长江路",
    "东门北路",
]
# Places are kept topic-neutral (no bus stops, schools, parks...): a frame must not teach a class.
PLACES = [
    "小区门口",
    "我家楼下",
    "{road}和{road2}交叉口",
    "{road}{n}号附近",
    "{estate}小区{n}栋楼下",
    "{estate}花园东门",
    "{estate}小区里面",
    "{road}{n}号对面",
    "{estate}社区",
    "{road}中段",
    "城中村巷子里",
    "{estate}小区后门",
    "{road}西侧",
    "我们村口",
    "{estate}苑{n}栋旁边",
]
ESTATES = [
    "阳光",
    "锦绣",
    "幸福里",
    "翠竹",
    "碧水",
    "金地",
    "万科",
    "龙泉",
    "梅林",
    "华侨",
    "新城",
    "桃源",
    "紫荆",
    "东湖",
]
DURATIONS = [
    "",
    "",
    "好几天了",
    "已经一个多星期了",
    "从上个月就开始了",
    "反映过好几次了",
    "今天早上发现的",
    "持续很久了",
]
REQUESTS = [
    "",
    "请尽快处理",
    "希望有关部门管一管",
    "麻烦派人来看看",
    "请相关部门重视",
    "谢谢",
    "盼复",
    "请帮忙协调解决",
    "多次反映无果，请领导重视",
    "希望早日解决",
]
GREETINGS = ["", "您好，", "你好，", "尊敬的领导：", "市长您好！", "领导好，"]
INTROS = [
    "",
    "我是附近的居民，",
    "我是{estate}小区的业主，",
    "本人在{road}上班，",
    "我家住在{road}，",
    "作为一名市民，",
]
SOCIAL_INTROS = ["", "我想反映一下，", "我是{estate}社区的居民，", "本人反映：", "请问，", "反映问题："]
IMPACTS = [
    "",
    "给周边居民带来很大困扰",
    "影响大家正常生活",
    "存在很大的安全隐患",
    "老人小孩经过很不方便",
    "居民意见很大",
]
EMOJI = ["", "", "😡", "🙏", "😓", "👍"]


def _fill(rng: random.Random, template: str) -> str:
    road, road2 = rng.sample(ROADS, 2)
    return template.format(
        road=road, road2=road2, estate=rng.choice(ESTATES), n=rng.randint(1, 30), letter=rng.choice("ABCDE")
    )


def _sentences(rng: random.Random, phrase: str, located: bool) -> list[str]:
    place = _fill(rng, rng.choice(PLACES))
    duration = rng.choice(DURATIONS)
    request = rng.choice(REQUESTS)
    impact = rng.choice(IMPACTS)
    if located:
        bare = f"{place}{phrase}"
        web = (
            f"{rng.choice(GREETINGS)}{_fill(rng, rng.choice(INTROS))}{place}{phrase}"
            f"{'，' + duration if duration else ''}{'，' + impact if impact else ''}。"
            f"{request + '。' if request else ''}"
        )
        wechat = f"随手拍：{place}{phrase}{rng.choice(EMOJI)}"
    else:
        bare = phrase
        web = (
            f"{rng.choice(GREETINGS)}{_fill(rng, rng.choice(SOCIAL_INTROS))}{phrase}"
            f"{'，' + duration if duration else ''}。{request + '。' if request else ''}"
        )
        wechat = f"{phrase}{rng.choice(EMOJI)}"
    sms = f"{bare}{'，' + request if request else ''}"
    return [bare, sms, wechat, web]


def build(variants: int = 2, seed: int = 20240601) -> list[dict[str, object]]:
    data = yaml.safe_load(PHRASES_PATH.read_text(encoding="utf-8"))
    taxonomy = yaml.safe_load((DATA / "city_events.yaml").read_text(encoding="utf-8"))
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    # The taxonomy's own keywords and names, in short located/unlocated frames (phrase -1).
    located_codes = set(data["located"])
    for cat in taxonomy["categories"]:
        for sub in cat["subcategories"]:
            words = [str(k) for k in sub.get("keywords", [])] + [sub["name_zh"]]
            for w in words:
                frame = _fill(rng, rng.choice(PLACES)) + w if sub["code"] in located_codes else f"反映{w}的问题"
                rows.append({"text": frame, "label": sub["code"], "phrase": -1})
    for section, located in (("located", True), ("unlocated", False)):
        for code, phrases in data[section].items():
            for i, phrase in enumerate(phrases):
                seen = {phrase}
                rows.append({"text": phrase, "label": code, "phrase": i})
                for _ in range(variants):
                    for text in _sentences(rng, phrase, located):
                        if text not in seen:
                            seen.add(text)
                            rows.append({"text": text, "label": code, "phrase": i})
    return rows


def main() -> None:
    rows = build()
    with CORPUS_PATH.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {CORPUS_PATH}")


if __name__ == "__main__":
    main()
