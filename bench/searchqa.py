"""SearchQA retrieval benchmark: index build time, query latency and serving memory at scale.

For each corpus size (generated knowledge bases; default 100k and 1M passages) three fresh
subprocesses, so that one phase's memory never counts in another's:

  build    `SearchQAEnvironment(passages=N)` with an empty cache: generate every passage, index it
           (streaming) and save the index; wall time, peak RSS, index size on disk. A separate pass
           over a sample of passages times generation alone, to split the build time.
  serve    the same constructor on the warm cache (index memory-mapped): load time, then search
           latency p50/p99 for two workloads -- `entity` (the oracle's queries: entity names) and
           `question` (whole question texts, long and full of common words) -- and a full episode
           step (search + formatting three passages). RSS after the queries (VmRSS, which counts the
           index pages the queries touched) and its peak (VmHWM).
  bm25s    (sizes up to --bm25s-max, default 100k) the same corpus indexed by the `bm25s` package
           (numpy backend, same tokens, same k1/b), the same queries: a side-by-side check of speed
           and memory against a known implementation. Skipped when bm25s is not installed.

    python -m bench.searchqa                       # 100k and 1M (several minutes on 2 busy cores)
    python -m bench.searchqa --sizes 20000 --queries 300       # smoke run (< 1 min)
    python -m bench.searchqa --out /tmp/searchqa.json --keep-cache /tmp/sqa-cache
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import ROOT, json_child, percentile, status_kb, write_json

DEFAULT_OUT = ROOT / "bench" / "results" / "searchqa.json"


# --- measurements in the child processes ----------------------------------------------------------


def _rss_mib() -> dict[str, float]:
    pid = os.getpid()
    return {"rss_mib": status_kb(pid, "VmRSS") / 1024, "peak_rss_mib": status_kb(pid, "VmHWM") / 1024}


def _percentiles(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(samples, 0.50) * 1000,
        "p99_ms": percentile(samples, 0.99) * 1000,
        "mean_ms": sum(samples) / len(samples) * 1000,
    }


def _folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def worker_build(size: int, cache: Path) -> dict[str, Any]:
    from gymwire.env_servers.searchqa import SearchQAEnvironment
    from gymwire.env_servers.searchqa.knowledge import KnowledgeBase
    from gymwire.env_servers.searchqa.passages import contents

    started = time.perf_counter()
    env = SearchQAEnvironment(passages=size, cache_dir=cache)
    total = time.perf_counter() - started
    memory = _rss_mib()
    kb = KnowledgeBase(0, size)  # generation alone, on a sample, with a cold entity cache
    sample = range(0, size, max(1, size // 20_000))
    started = time.perf_counter()
    for doc in sample:
        contents(kb, doc)
    generation = (time.perf_counter() - started) / len(sample) * size
    return {
        "passages": env.kb.size,
        "build_s": total,
        "generate_s_est": generation,
        "index_s_est": max(total - generation, 0.0),
        "index_mib": _folder_mib(cache),
        "postings": int(env.retriever.index.indptr[-1]),
        "terms": len(env.retriever.index.vocab),
        "build_peak_rss_mib": memory["peak_rss_mib"],
    }


def _workloads(env, queries: int) -> dict[str, list[str]]:
    rng = random.Random(7)
    kb = env.kb
    entity = [kb.name(rng.randrange(kb.size)) for _ in range(queries)]
    from gymwire.env_servers.searchqa.questions import CATEGORIES

    question = [env.questions.question(CATEGORIES[i % 4], 10_000 + i).text for i in range(max(queries // 4, 20))]
    return {"entity": entity, "question": question}


def worker_serve(size: int, cache: Path, queries: int) -> dict[str, Any]:
    before = _rss_mib()["rss_mib"]
    from gymwire.env_servers.searchqa import SearchQAEnvironment

    imported = _rss_mib()["rss_mib"]
    started = time.perf_counter()
    env = SearchQAEnvironment(passages=size, cache_dir=cache)
    load = time.perf_counter() - started
    loaded = _rss_mib()["rss_mib"]
    workloads = _workloads(env, queries)
    out: dict[str, Any] = {
        "load_s": load,
        "rss_start_mib": before,
        "rss_imported_mib": imported,
        "rss_loaded_mib": loaded,
    }
    for name, texts in workloads.items():
        times = []
        for text in texts:
            t0 = time.perf_counter()
            env.retriever.search(text)
            times.append(time.perf_counter() - t0)
        out[name] = {"queries": len(texts), **_percentiles(times)}
    steps = []
    catalogue = env.catalogue()
    for i in range(min(queries, 500)):
        episode = env.start(catalogue.get(f"gen:bridge:{i}"))
        episode.reset()
        turn = f"<search>{workloads['entity'][i % len(workloads['entity'])]}</search>"
        t0 = time.perf_counter()
        episode.step(turn)
        steps.append(time.perf_counter() - t0)
    out["episode_step"] = {"steps": len(steps), **_percentiles(steps)}
    out.update(_rss_mib())
    return out


def worker_bm25s(size: int, queries: int) -> dict[str, Any]:
    try:
        import bm25s
    except ImportError:
        return {"skipped": "bm25s is not installed"}
    from gymwire.env_servers.searchqa.bm25 import tokenize
    from gymwire.env_servers.searchqa.knowledge import KnowledgeBase
    from gymwire.env_servers.searchqa.passages import contents

    kb = KnowledgeBase(0, size)
    started = time.perf_counter()
    tokens = [tokenize(contents(kb, doc)) for doc in range(kb.size)]
    tokenized = time.perf_counter() - started
    started = time.perf_counter()
    index = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    index.index(tokens, show_progress=False)
    build = time.perf_counter() - started
    del tokens
    rng = random.Random(7)
    texts = [kb.name(rng.randrange(kb.size)) for _ in range(queries)]
    times = []
    for text in texts:
        query = [t for t in tokenize(text) if t in index.vocab_dict]
        t0 = time.perf_counter()
        index.retrieve([query], k=3, show_progress=False, n_threads=1)
        times.append(time.perf_counter() - t0)
    return {
        "generate_tokenize_s": tokenized,
        "index_s": build,
        "entity": {"queries": len(texts), **_percentiles(times)},
        **_rss_mib(),
    }


# --- the parent: run the children, print, save -------------------------------------------------------


def _child(*args: str) -> dict[str, Any]:
    return json_child(["-m", "bench.searchqa", "--worker", *args])


def run(sizes: list[int], queries: int, bm25s_max: int, keep_cache: Path | None) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_start": list(os.getloadavg()),
        },
        "sizes": {},
    }
    for size in sizes:
        cache = (keep_cache / str(size)) if keep_cache else Path(tempfile.mkdtemp(prefix="searchqa-bench-"))
        if keep_cache and cache.exists():
            shutil.rmtree(cache)
        try:
            print(f"[{size:,} passages] build ...", file=sys.stderr, flush=True)
            entry: dict[str, Any] = {"build": _child("build", str(size), str(cache))}
            print(f"[{size:,} passages] serve ...", file=sys.stderr, flush=True)
            entry["serve"] = _child("serve", str(size), str(cache), str(queries))
            if size <= bm25s_max:
                print(f"[{size:,} passages] bm25s ...", file=sys.stderr, flush=True)
                entry["bm25s"] = _child("bm25s", str(size), str(queries))
        finally:
            if not keep_cache:
                shutil.rmtree(cache, ignore_errors=True)
        results["sizes"][str(size)] = entry
    results["machine"]["load_avg_end"] = list(os.getloadavg())
    return results


def table(results: dict[str, Any]) -> str:
    rows = [
        (
            "passages",
            "build s",
            "build CPU s",
            "gen s*",
            "index s*",
            "build peak MiB",
            "index MiB",
            "load s",
            "entity p50/p99 ms",
            "question p50/p99 ms",
            "step p50/p99 ms",
            "serve RSS MiB",
        )
    ]
    extra = []
    for size, entry in results["sizes"].items():
        b, s = entry["build"], entry["serve"]
        pair = lambda d: f"{d['p50_ms']:.2f} / {d['p99_ms']:.2f}"  # noqa: E731
        rows.append(
            (
                f"{int(size):,}",
                f"{b['build_s']:.1f}",
                f"{b['cpu_s']:.1f}",
                f"{b['generate_s_est']:.1f}",
                f"{b['index_s_est']:.1f}",
                f"{b['build_peak_rss_mib']:.0f}",
                f"{b['index_mib']:.0f}",
                f"{s['load_s']:.2f}",
                pair(s["entity"]),
                pair(s["question"]),
                pair(s["episode_step"]),
                f"{s['rss_mib']:.0f}",
            )
        )
        ref = entry.get("bm25s")
        if ref and "skipped" not in ref:
            theirs = ref["index_s"] + ref["generate_tokenize_s"]
            extra.append(
                f"bm25s at {int(size):,}: generate + tokenize + index {theirs:.1f} s ({ref['index_s']:.1f} s of it "
                f"indexing) vs ours {b['build_s']:.1f} s with saving; entity p50/p99 {pair(ref['entity'])} ms vs "
                f"{pair(s['entity'])} ms (x{ref['entity']['p50_ms'] / s['entity']['p50_ms']:.1f} at p50); "
                f"peak RSS {ref['peak_rss_mib']:.0f} MiB vs ours {b['build_peak_rss_mib']:.0f} MiB building, "
                f"{s['rss_mib']:.0f} MiB serving"
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("* gen = passage generation, estimated from a sample; index = build - gen (tokenize, postings, save)")
    load = results["machine"]["load_avg_start"][0], results["machine"]["load_avg_end"][0]
    lines.append(
        f"machine: {results['machine']['cpus']} CPUs, load average {load[0]:.1f} at start, {load[1]:.1f} at "
        "end (wall times include waiting for a shared CPU; build CPU s does not)"
    )
    return "\n".join(lines + extra)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated passage counts")
    parser.add_argument("--queries", type=int, default=2000, help="entity queries per size (questions: a quarter)")
    parser.add_argument("--bm25s-max", type=int, default=100_000, help="largest size also run through bm25s")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--keep-cache", type=Path, default=None, help="keep the built indices under this folder")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, size, *rest = args.worker
        if kind == "build":
            out = worker_build(int(size), Path(rest[0]))
        elif kind == "serve":
            out = worker_serve(int(size), Path(rest[0]), int(rest[1]))
        else:
            out = worker_bm25s(int(size), int(rest[0]))
        out["cpu_s"] = (
            resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime
        )
        print(json.dumps(out))
        return
    results = run([int(s) for s in args.sizes.split(",")], args.queries, args.bm25s_max, args.keep_cache)
    print(table(results))
    write_json(args.out, results, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
