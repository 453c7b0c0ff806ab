"""The real-text corpus: annotated citizen messages in the city taxonomy (``nlp/data/real_corpus.jsonl``).

The texts are rows of the ``train`` and ``dev`` splits of ``gov_messages_7class``: the TipDM Cup
2020 problem C attachment 2 (第八届泰迪杯 C 题 附件2), messages from a provincial "问政" online
message board, place names anonymised by the organisers (A市, A1区 ...). Not from people.cn. Each
row was read and given one subcategory code of ``city_events.yaml`` by annotators following
``docs/annotation.md`` (99xx: fits no category; certainty ``sure`` or ``unsure``).

``build`` joins the annotation files (``id<TAB>code<TAB>certainty`` lines, later lines win) with
the dataset and writes one JSON object per line::

    {"id": "tipdm20c-00793", "text": "...", "text_kind": "raw"|"segmented", "top": "13",
     "code": "1303", "certainty": "sure", "label7": "城乡建设", "split": "train"|"heldout",
     "source": "tipdm2020c-att2"}

``text`` is the original message where it was recovered (``raw_text``), else the title and the
organisers' jieba-segmented, stop-word-stripped text. ``split``: rows of the dataset's ``dev``
split are the fixed evaluation hold-out (``heldout``): never trained on, never used to fit
calibration or thresholds; every other row is ``train``. Rows of the dataset's ``test`` split
are refused. The committed file is all a fresh clone needs to rebuild the default model.

    python -m nlp.corpus build --annotations DIR --dataset data.csv [--out nlp/data/real_corpus.jsonl]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .taxonomy import Taxonomy, load_taxonomy

REAL_CORPUS_PATH = Path(__file__).parent / "data" / "real_corpus.jsonl"
SOURCE = "tipdm2020c-att2"
SOURCE_DESCRIPTION = (
    "TipDM Cup 2020 problem C attachment 2: messages of a provincial 问政 online message board "
    "(via ../shared/datasets/gov_messages_7class; not people.cn)"
)
HELDOUT = "heldout"
TRAIN = "train"
CERTAINTIES = ("sure", "unsure")


class CorpusError(ValueError):
    """An annotation or dataset row that cannot go into the corpus."""


@dataclass(frozen=True)
class CorpusRow:
    id: str
    text: str
    text_kind: str  # "raw": the original message; "segmented": title + the organisers' segmented text
    top: str
    code: str
    certainty: str
    label7: str
    split: str  # "train" or "heldout"
    source: str = SOURCE


def read_annotations(files: Iterable[Path]) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """``id -> (code, certainty)`` from ``id<TAB>code<TAB>certainty`` files (later lines win),
    and a list of problems (malformed lines)."""
    out: dict[str, tuple[str, str]] = {}
    problems: list[str] = []
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = [p.strip() for p in line.split("\t")]
            if len(parts) < 2 or not parts[0] or not parts[1]:
                problems.append(f"{path.name}:{n}: not id<TAB>code<TAB>certainty")
                continue
            certainty = (parts[2] if len(parts) > 2 else "").lower() or "unsure"
            if certainty not in CERTAINTIES:
                problems.append(f"{path.name}:{n}: certainty {parts[2]!r} is not sure|unsure")
                continue
            out[parts[0]] = (parts[1], certainty)
    return out, problems


def read_dataset(path: Path) -> dict[str, dict[str, str]]:
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return {r["id"]: r for r in csv.DictReader(fh)}


def text_of(row: dict[str, str]) -> tuple[str, str]:
    raw = (row.get("raw_text") or "").strip()
    if raw:
        return raw, "raw"
    title = (row.get("title") or "").strip()
    text = (row.get("text") or "").strip()
    return (f"{title} {text}".strip() if title else text), "segmented"


def join(
    annotations: dict[str, tuple[str, str]], dataset: dict[str, dict[str, str]], taxonomy: Taxonomy
) -> tuple[list[CorpusRow], list[str]]:
    """Corpus rows in dataset id order, and the annotations refused (with why)."""
    rows: list[CorpusRow] = []
    refused: list[str] = []
    for rid in sorted(annotations):
        code, certainty = annotations[rid]
        src = dataset.get(rid)
        if src is None:
            refused.append(f"{rid}: not in the dataset")
            continue
        if src.get("split") not in ("train", "dev"):
            refused.append(f"{rid}: split {src.get('split')!r} (only train and dev rows may be annotated)")
            continue
        if len(code) != 4 or code not in taxonomy:
            refused.append(f"{rid}: {code!r} is not a subcategory of {taxonomy.name}")
            continue
        text, kind = text_of(src)
        if not text:
            refused.append(f"{rid}: no text")
            continue
        split = HELDOUT if src["split"] == "dev" else TRAIN
        rows.append(CorpusRow(rid, text, kind, code[:2], code, certainty, src.get("label", ""), split))
    return rows, refused


def write_corpus(rows: Sequence[CorpusRow], out: Path) -> None:
    tmp = out.with_suffix(out.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
    tmp.replace(out)


def load_corpus(path: str | Path | None = None) -> list[CorpusRow]:
    p = Path(path) if path is not None else REAL_CORPUS_PATH
    rows = []
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(CorpusRow(**json.loads(line)))
    return rows


def summary(rows: Sequence[CorpusRow]) -> str:
    split = Counter(r.split for r in rows)
    kinds = Counter(r.text_kind for r in rows)
    cert = Counter(r.certainty for r in rows)
    tops = Counter(r.top for r in rows)
    held = Counter(r.top for r in rows if r.split == HELDOUT)
    lines = [
        f"{len(rows)} rows: {split[TRAIN]} train, {split[HELDOUT]} held out; "
        f"{kinds['raw']} original texts, {kinds['segmented']} segmented; {cert['sure']} sure, {cert['unsure']} unsure; "
        f"{len({r.code for r in rows})} subcategories",
        "top-level  all  held-out",
    ]
    lines += [f"{t}  {tops[t]:5d}  {held[t]:5d}" for t in sorted(tops)]
    return "\n".join(lines)


def cmd_build(args: argparse.Namespace) -> int:
    ann_dir = Path(args.annotations)
    files = sorted(ann_dir.glob(args.pattern))
    if not files:
        print(f"error: no {args.pattern} files in {ann_dir}", file=sys.stderr)
        return 2
    annotations, problems = read_annotations(files)
    rows, refused = join(annotations, read_dataset(Path(args.dataset)), load_taxonomy(args.taxonomy))
    for msg in problems + refused:
        print(f"skipped {msg}", file=sys.stderr)
    out = Path(args.out)
    write_corpus(rows, out)
    print(f"wrote {out} from {len(files)} annotation files")
    print(summary(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nlp.corpus", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="join annotation files with the dataset into the corpus file")
    b.add_argument("--annotations", required=True, help="folder of annotation TSV files")
    b.add_argument("--pattern", default="chunk_*.tsv", help="annotation file names (default: chunk_*.tsv)")
    b.add_argument("--dataset", required=True, help="gov_messages_7class data.csv")
    b.add_argument("--taxonomy", default=None, help="taxonomy YAML (default: the bundled city taxonomy)")
    b.add_argument("--out", default=str(REAL_CORPUS_PATH))
    b.set_defaults(func=cmd_build)
    s = sub.add_parser("summary", help="size and label distribution of a corpus file")
    s.add_argument("path", nargs="?", default=str(REAL_CORPUS_PATH))
    s.set_defaults(func=lambda a: print(summary(load_corpus(a.path))) or 0)
    args = ap.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
