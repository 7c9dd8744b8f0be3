"""Medians of the runs, one markdown table with ratios to djtasks, and a summary of the profiles."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path

LABELS = {
    "djtasks": "djtasks",
    "tasks_db": "django-tasks-db 0.13 (db_worker x2)",
    "celery_db": "Celery 5.7 + django-celery-results",
    "celery_redis": "Celery 5.7 (Redis results)",
    "huey": "Huey 3.5 (Redis, notify_result)",
}
METRICS = [
    "enqueue_per_s",
    "bulk_per_s",
    "drain_per_s",
    "rt_p50_ms",
    "rt_p95_ms",
    "rt_p99_ms",
    "rss_mib",
    "pss_mib",
    "redis_bytes_per_task",
    "queued_rss_mib",
    "queued_rss_growth_mib",
    "priority_start_ms",
    "still_queued_at_probe",
    "pgbench_c1",
    "pgbench_c2",
]


def summarise(raw: list[dict], dbs: list[str]) -> list[dict]:
    """Return one row per (system, database) holding the median of each metric over the runs."""
    grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for figures in raw:
        grouped[(figures["peer"], figures["db"])].append(figures)
    rows = []
    for (peer, db), runs in grouped.items():
        row = {"peer": peer, "db": db, "runs": len(runs), "priority": runs[0].get("priority")}
        for metric in METRICS:
            values = [r[metric] for r in runs if r.get(metric) is not None]
            row[metric] = statistics.median(values) if values else None
        rows.append(row)
    return rows


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return ""
    return f" ({value / base:.2f}x)"


def _rate(row: dict, base: dict | None, metric: str) -> str:
    value = row.get(metric)
    if value is None:
        return "n/a"
    return f"{value:,.0f}/s" + ("" if base is row else _ratio(value, base and base.get(metric)))


def _cells(row: dict, base: dict | None) -> list[str]:
    same = base is row
    p50, p95, p99 = row.get("rt_p50_ms"), row.get("rt_p95_ms"), row.get("rt_p99_ms")
    rt = "n/a" if p50 is None else f"{p50:.1f} / {p95:.1f} / {p99:.1f} ms"
    if p50 is not None and not same:
        rt += _ratio(p50, base and base.get("rt_p50_ms"))
    rss = row.get("rss_mib")
    rss_cell = "n/a" if rss is None else f"{rss:.0f} MiB" + ("" if same else _ratio(rss, base and base.get("rss_mib")))
    if rss is not None and row.get("pss_mib") is not None:
        rss_cell += f"; PSS {row['pss_mib']:.0f} MiB"
    per_task = row.get("redis_bytes_per_task")
    per_task_cell = (
        "n/a"
        if per_task is None
        else f"{per_task:.0f} B" + ("" if same else _ratio(per_task, base and base.get("redis_bytes_per_task")))
    )
    queued_rss = row.get("queued_rss_mib")
    if queued_rss is None:
        queued_cell = "n/a"
    else:
        versus_idle = queued_rss - rss if rss is not None else 0.0
        queued_cell = f"{queued_rss:.0f} MiB ({versus_idle:+.0f} vs idle, {row['queued_rss_growth_mib']:+.1f} in 4 s)"
    start = row.get("priority_start_ms")
    if start is None:
        start_cell = "n/a (no priority in its default queue)"
    elif start == float("inf"):
        start_cell = "not within 30 s"
    else:
        start_cell = f"{start:.1f} ms" + ("" if same else _ratio(start, base and base.get("priority_start_ms")))
    return [
        _rate(row, base, "enqueue_per_s"),
        _rate(row, base, "bulk_per_s"),
        _rate(row, base, "drain_per_s"),
        rt,
        rss_cell,
        per_task_cell,
        queued_cell,
        start_cell,
    ]


HEADER = [
    "system (results in)",
    "enqueue, one call at a time",
    "bulk enqueue",
    "drain: worker start to last result",
    "round trip p50 / p95 / p99",
    "worker RSS (parent + children); PSS",
    "Redis per queued task",
    "worker RSS with 10x size queued",
    "high-priority start with 10x size queued",
]


def markdown(rows: list[dict], dbs: list[str], meta: dict) -> str:
    lines = [
        f"## djtasks benchmark {meta['stamp']}",
        "",
        f"Command: `{meta['command']}`  ",
        f"{meta['size']:,} tasks per workload, median of {meta['runs']} run(s); workers: 2 processes "
        f"(+ parent); {meta['machine']}; {meta['redis']}; PostgreSQL: {meta['postgres']}.  ",
        "Ratios are to djtasks on the same database (throughput: higher is better; times, memory: lower).",
        "",
    ]
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("|" + "---|" * len(HEADER))
    for db in dbs:
        base = next((r for r in rows if r["peer"] == "djtasks" and r["db"] == db), None)
        ordered = [r for r in rows if r["db"] == db] + [r for r in rows if r["db"] == "redis"]
        for row in sorted(ordered, key=lambda r: list(LABELS).index(r["peer"])):
            where = db if row["db"] != "redis" else "Redis"
            name = f"{LABELS[row['peer']]} ({where})"
            if row["db"] == "redis" and len(dbs) > 1:
                name += f", ratios vs djtasks on {db}"
            lines.append("| " + " | ".join([name, *_cells(row, base)]) + " |")
    lines += _reference(rows, meta)
    priorities = sorted({f"{LABELS[r['peer']]}: {r['priority']}" for r in rows if r.get("priority")})
    lines += ["", "High-priority task: " + "; ".join(priorities) + "." if priorities else "", ""]
    return "\n".join(lines) + "\n"


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/lib/python3.13/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def top_py_spy(path: Path, limit: int = 15) -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
    """Self and inclusive sample counts per function over the worker's children (every process but the parent)."""
    by_process: dict[str, list[tuple[list[str], int]]] = defaultdict(list)
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        process = frames[0] if frames[0].startswith("process ") else "process ?"
        by_process[process].append(([f for f in frames if not f.startswith("process ")], int(count)))
    pids = {p: int(m.group(1)) if (m := re.match(r"process (\d+)", p)) else 0 for p in by_process}
    parent = min(pids, key=pids.get) if len(pids) > 1 else None
    own, total, samples = Counter(), Counter(), 0
    for process, stacks in by_process.items():
        if process == parent:
            continue
        for frames, count in stacks:
            if not frames:
                continue
            samples += count
            own[_short(frames[-1])] += count
            for name in {_short(f) for f in frames if " (djtasks/" in f}:
                total[name] += count
    return own.most_common(limit), total.most_common(limit), samples


def profile_summary(directory: Path) -> str:
    lines = ["", "## Profile of djtasks", ""]
    for spy in sorted(directory.glob("worker-*.txt")):
        own, total, samples = top_py_spy(spy)
        lines += [
            f"### Worker children during drain ({spy.name}, {samples} samples, py-spy raw in {spy})",
            "",
            "| self % | function |",
            "|---|---|",
        ]
        lines += [f"| {100 * n / max(samples, 1):.1f} | `{name}` |" for name, n in own]
        lines += ["", "| inclusive % | djtasks function |", "|---|---|"]
        lines += [f"| {100 * n / max(samples, 1):.1f} | `{name}` |" for name, n in total]
        lines.append("")
    for stats in sorted(directory.glob("enqueue-*.txt")):
        text = stats.read_text().splitlines()
        start = next((i for i, line in enumerate(text) if "ncalls" in line), 0)
        lines += [
            f"### Enqueue loop, cProfile by self time ({stats.name}; .pstats beside it)",
            "",
            "```",
            *[line[:160] for line in text[max(start - 6, 0) : start + 22]],
            "```",
            "",
        ]
    return "\n".join(lines) + "\n"


def _reference(rows: list[dict], meta: dict) -> list[str]:
    """pgbench -N of the same runs, and djtasks' one-call-at-a-time enqueue as a share of it; the load."""
    lines = [""]
    pg = next((r for r in rows if r["peer"] == "djtasks" and r["db"] == "postgres"), None)
    pg = pg or next((r for r in rows if r["db"] == "postgres"), None)
    if pg and pg.get("pgbench_c1"):
        share = ""
        if pg["peer"] == "djtasks" and pg.get("enqueue_per_s"):
            rate = pg["enqueue_per_s"] / pg["pgbench_c1"]
            share = f"; djtasks enqueue one call at a time = {rate:.0%} of the 1-client rate"
        lines.append(
            f"PostgreSQL reference, same runs: `pgbench -N` {pg['pgbench_c1']:,.0f} commits/s with 1 client, "
            f"{pg['pgbench_c2'] or 0:,.0f} with 2{share}.  "
        )
    if meta.get("load"):
        lines.append(f"Load average at the end: {meta['load']}.  ")
    return lines


BUDGET_PATHS = [
    ("enqueue", "enqueue, one call at a time"),
    ("bulk", "bulk enqueue (one transaction)"),
    ("drain", "drain, deep queue"),
    ("roundtrip", "round trip, idle worker"),
]


def _n(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def budget_table(raw: list[dict]) -> str:
    """Per task, per path: what each costs (the first run that counted it, per system and database)."""
    lines = [
        "",
        "## Per-task budget",
        "",
        "Counted per task (benchmarks/budget.py): SQL statements (pg_stat_statements; SQLite: the caller's only), "
        "commits that wrote (transaction ids assigned: each needs its WAL flushed to disk), "
        "Redis commands (INFO commandstats, script-run commands included) and reads (total_reads_processed: "
        "about one per round trip), CPU time of the caller and of the worker (parent + children), wall time.",
        "",
        "| system (db) | path | statements | commits | Redis commands | Redis reads | caller CPU µs "
        "| worker CPU µs | wall µs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    seen, tops = set(), []
    for figures in sorted(raw, key=lambda f: (f["db"], list(LABELS).index(f["peer"]), f["run"])):
        key = (figures["peer"], figures["db"])
        if "budget" not in figures or key in seen:
            continue
        seen.add(key)
        for path, label in BUDGET_PATHS:
            b = figures["budget"].get(path)
            if not b:
                continue
            lines.append(
                f"| {LABELS[figures['peer']]} ({figures['db']}) | {label} | {_n(b.get('statements'))} "
                f"| {_n(b.get('commits'))} | {_n(b['redis_commands'])} "
                f"| {_n(b['redis_reads'])} | {_n(b['caller_cpu_us'], 0)} | {_n(b.get('worker_cpu_us'), 0)} "
                f"| {_n(b['wall_us'], 0)} |"
            )
            if figures["peer"] == "djtasks":
                tops.append((f"djtasks ({figures['db']}), {label}", b))
    for title, b in tops:
        lines += ["", f"{title}, {b['tasks']:,} tasks: statements by calls, Redis commands by calls", "", "```"]
        lines += [f"{n:>8,}  {q}" for q, n in (b.get("statements_top") or {}).items()]
        lines += [f"{n:>8,}  redis {c}" for c, n in list(b["redis_top"].items())[:15]]
        lines.append("```")
    return "\n".join(lines) + "\n"
