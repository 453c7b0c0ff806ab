"""How many moderator confirmations before the classifier is trusted: the learning curve.

Simulates a city that starts from the generated seed corpus only and whose moderators confirm N
real reports (N = 0, 50, 100, 200, 500, 1,000, 2,000, drawn in random order from the `train` rows
of ``nlp/data/real_corpus.jsonl``; 3 seeds). For each N the confirmations are written to a fresh
SQLite database as the console writes them (``labeled_examples``) and the model is retrained by
``gateway train SEED --from-reviews --bundled-params``: the very code path a city runs (generated
rows train but never calibrate; the thresholds and the confidence come from the confirmed real
reports' out-of-fold scores). Each model is measured on the corpus's held-out rows (never
confirmed, never trained on): top-level and subcategory accuracy, auto-dispatch coverage and
precision. Prints a table, the N at which top-level accuracy first reaches 0.85, and writes
``bench/learning_curve.png``.

    python bench/learning_curve.py [--sizes 0,50,...] [--seeds 3] [--jobs 1] [--png PATH]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZES = (0, 50, 100, 200, 500, 1000, 2000)
GOAL = 0.85


async def _confirm(url: str, rows: list[tuple[str, str]]) -> None:
    """Store ``rows`` (text, code) as moderator-confirmed examples, as the console does."""
    from gateway.db import Database, LabeledExample, Report

    db = Database(url)
    try:
        async with db.session() as s, s.begin():
            now = datetime.now(UTC)
            for i, (text, label) in enumerate(rows):
                report = Report(
                    case_number=f"ZW2026113{i:07d}",
                    channel="web",
                    sender="web:sim",
                    text=text,
                    status="ready",
                    priority="P3",
                    urgent=False,
                    created_at=now,
                    updated_at=now,
                )
                s.add(report)
                await s.flush()
                s.add(
                    LabeledExample(
                        report_id=report.id, text=text, label=label, source="confirmed", moderator="moderator:simulated"
                    )
                )
    finally:
        await db.close()


def run_one(n: int, seed: int, template: str, seed_file: str, work: str) -> dict[str, float | int]:
    """Confirm N reports (seeded order), retrain through `gateway train --from-reviews`, measure."""
    from gateway.cli import main as gateway_main
    from nlp.bundled import training_data
    from nlp.corpus import TRAIN, load_corpus
    from nlp.evaluate import evaluate
    from nlp.loader import open_model
    from nlp.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    pool = [(r.text, r.code) for r in load_corpus() if r.split == TRAIN and r.code in taxonomy]
    random.Random(seed).shuffle(pool)
    run_dir = Path(work) / f"n{n}-s{seed}"
    run_dir.mkdir(parents=True)
    db_path = run_dir / "gateway.db"
    shutil.copy(template, db_path)
    url = f"sqlite+aiosqlite:///{db_path}"
    asyncio.run(_confirm(url, pool[:n]))
    os.environ["GATEWAY_DATABASE_URL"] = url
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        rc = gateway_main(
            ["train", seed_file, "--from-reviews", "--bundled-params", "--out", str(run_dir / "model"), "--no-progress"]
        )
    if rc != 0:
        raise RuntimeError(f"gateway train failed (exit {rc}) for N={n}, seed {seed}")
    seconds = time.perf_counter() - t0
    data = training_data(taxonomy)
    m = evaluate(open_model(run_dir / "model", taxonomy), data.heldout_texts, data.heldout_labels)
    shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "n": n,
        "seed": seed,
        "top": m["top_level_accuracy"],
        "sub": m["accuracy"],
        "coverage": m["coverage"],
        "precision": m["precision_routed"] if m["coverage"] > 0 else float("nan"),
        "heldout": m["n"],
        "seconds": round(seconds, 1),
    }


def _plot(results: list[dict[str, float | int]], sizes: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [max(n, 10) for n in sizes]  # N=0 drawn at 10 on the log axis
    for key, label, style in (
        ("top", "top-level accuracy", "o-"),
        ("sub", "subcategory accuracy", "s-"),
        ("coverage", "auto-dispatch coverage", "^-"),
        ("precision", "auto-dispatch precision", "v-"),
    ):
        vals = [[float(r[key]) for r in results if r["n"] == n and r[key] == r[key]] for n in sizes]
        pts = [(x, v) for x, v in zip(xs, vals, strict=True) if v]  # precision: only where something was routed
        line = ax.plot([x for x, _ in pts], [statistics.mean(v) for _, v in pts], style, label=label)[0]
        ax.fill_between(
            [x for x, _ in pts], [min(v) for _, v in pts], [max(v) for _, v in pts], color=line.get_color(), alpha=0.15
        )
    ax.axhline(GOAL, color="grey", linestyle=":", linewidth=1)
    ax.text(xs[0], GOAL + 0.01, f"{GOAL} top-level", fontsize=8, color="grey")
    ax.set_xscale("log")
    ax.set_xticks(xs, ["0"] + [str(n) for n in sizes[1:]])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("real reports confirmed by moderators (N; plus the generated seed corpus)")
    ax.set_ylabel("on held-out real reports")
    ax.set_title("learning curve of gateway train --from-reviews (mean, band: min-max of seeds)", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=",".join(str(n) for n in SIZES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (one core each)")
    ap.add_argument("--png", default=str(Path(__file__).with_name("learning_curve.png")))
    ap.add_argument(
        "--replot",
        metavar="LOG",
        default=None,
        help="only print the table and draw the plot from the `run {...}` lines of an earlier output",
    )
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(","))
    if args.replot:
        lines = Path(args.replot).read_text(encoding="utf-8").splitlines()
        done = [json.loads(line[4:]) for line in lines if line.startswith("run {")]
        report([r for r in done if r["n"] in sizes], sorted({int(r["n"]) for r in done} & set(sizes)), args.png)
        return 0

    from gateway.migrate import upgrade
    from nlp.bundled import write_training_file
    from nlp.corpus import load_corpus

    work = Path(tempfile.mkdtemp(prefix="bench-learning-"))
    template = work / "template.db"
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{template}"))
    seed_file = work / "seed_corpus.jsonl"
    n_seed = write_training_file(seed_file, real=False)
    n_train = sum(1 for r in load_corpus() if r.split == "train")
    if sizes[-1] > n_train:
        raise SystemExit(f"N={sizes[-1]} exceeds the {n_train} train rows of the real corpus")
    print("# learning curve: moderators confirming N real reports, retrained by gateway train --from-reviews")
    print(
        f"machine: {platform.platform()}, cpus={os.cpu_count()}, python {platform.python_version()}, jobs {args.jobs}"
    )
    print(
        f"base: {n_seed} generated seed sentences (train only); N drawn from {n_train} annotated train rows, "
        f"{args.seeds} seeds (N=0 once: nothing to draw)"
    )
    # seed by seed, so that a run cut short still has whole curves; each result is printed as it comes
    runs = [(n, s) for s in range(args.seeds) for n in sizes if s == 0 or n > 0]
    started = time.perf_counter()
    results: list[dict[str, float | int]] = []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        futures = [ex.submit(run_one, n, s, str(template), str(seed_file), str(work)) for n, s in runs]
        for f in futures:
            results.append(f.result())
            print("run " + json.dumps(results[-1]), flush=True)
    shutil.rmtree(work, ignore_errors=True)

    print(f"total {time.perf_counter() - started:.0f} s")
    report(results, sizes, args.png)
    print(json.dumps({"results": results}))
    return 0


def report(results: list[dict[str, float | int]], sizes: list[int], png: str) -> None:
    """The table (mean ± sd over the seeds run), the N where top-level accuracy reaches the goal, the plot."""
    seeds = {n: sum(1 for r in results if r["n"] == n) for n in sizes}
    print(f"held-out real reports: {results[0]['heldout']}; seeds per N: {seeds}")
    heads = ("top-level acc", "subcategory acc", "coverage", "precision")
    print(f"{'N':>5} | " + " | ".join(f"{h:>15}" for h in heads) + " | train s")

    def cell(key: str, n: int) -> str:
        vals = [float(r[key]) for r in results if r["n"] == n and r[key] == r[key]]  # NaN: nothing routed
        if not vals:
            return "none routed"
        sd = statistics.pstdev(vals) if len(vals) > 1 else 0.0
        return f"{statistics.mean(vals):.3f} ± {sd:.3f}"

    for n in sizes:
        secs = statistics.mean(float(r["seconds"]) for r in results if r["n"] == n)
        print(
            f"{n:>5} | {cell('top', n):>15} | {cell('sub', n):>15} | {cell('coverage', n):>15} | "
            f"{cell('precision', n):>15} | {secs:.0f}"
        )
    reached = next((n for n in sizes if statistics.mean(float(r["top"]) for r in results if r["n"] == n) >= GOAL), None)
    print(
        f"top-level accuracy first reaches {GOAL} (mean of seeds) at N = "
        + (str(reached) if reached is not None else f"none of {sizes} (not reached by N={sizes[-1]})")
    )
    _plot(results, sizes, Path(png))
    print(f"plot: {png}")


if __name__ == "__main__":
    sys.exit(main())
