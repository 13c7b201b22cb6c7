#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/report.py RESULTS_DIR: turn ci/bench's raw output into results.

Reads (all in RESULTS_DIR/raw/):
  machine.json          what ci/bench recorded about the machine
  hotpath.json          bench_vmap, Google Benchmark JSON (3 repetitions)
  scaling_rep<k>.json   bench_scaling, the thread sweep, one file per round
  headline_rep<k>.json  bench_scaling, window workload at T = N = 64, one file per round
  lookup.json           bench_scaling, BM_lookup (3 repetitions)
  memory.json           bench_memory
Writes into RESULTS_DIR:
  results.json          every figure below, medians of the rounds
  summary.md            the same as Markdown tables
  *.svg                 self-contained charts (no scripts, no fonts, no links)

Python 3 standard library only.
"""
import glob
import json
import math
import os
import re
import statistics
import sys

LOCKS = ["xa", "vbq", "vb", "va"]
LOCK_NAMES = {"xa": "xa_lock", "vbq": "vbq->lock", "vb": "vb->lock", "va": "vmap_area_lock"}
CONFIGS = [
    ("global", "block_index"),
    ("per_cpu_hashed", "block_index"),
    ("global", "va_start"),
    ("per_cpu_hashed", "va_start"),
    ("per_cpu_hashed", "dense"),
]
# Dashes tell apart lines that coincide (e.g. two layouts with the same node count).
DASHES = ["", "6 3", "", "2 2", "8 3 2 3"]
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def label(scheme, key):
    return ("global" if scheme == "global" else "hashed") + " / " + key


def load(path):
    with open(path) as f:
        return json.load(f)


def median(values):
    return statistics.median(values) if values else None


# --------------------------------------------------------------------------
# Parsing

NAME_RE = re.compile(
    r"^BM_vm_map_ram_test/(?P<wl>\w+)/(?P<scheme>\w+)/(?P<key>\w+)/.*threads:(?P<t>\d+)$")
COUNTERS = ["ops_per_s", "blocks"] + [f"{l}_{k}" for l in LOCKS for k in ("acq", "con")]


def scaling_runs(files):
    """(workload, scheme, key, threads) -> list of counter dicts, one per round."""
    runs = {}
    for path in sorted(files):
        for b in load(path)["benchmarks"]:
            if b.get("run_type") != "iteration" or b.get("error_occurred"):
                continue
            m = NAME_RE.match(b["name"])
            if not m:
                continue
            k = (m["wl"], m["scheme"], m["key"], int(m["t"]))
            runs.setdefault(k, []).append({c: b[c] for c in COUNTERS})
    return runs


def medians(runs):
    out = {}
    for k, rs in runs.items():
        out[k] = {c: median([r[c] for r in rs]) for c in COUNTERS}
        out[k]["rounds"] = len(rs)
    return out


def gb_medians(path, prefix):
    """name -> median real time (ns) from a Google Benchmark file with repetitions."""
    out = {}
    for b in load(path)["benchmarks"]:
        if b.get("error_occurred") or not b["name"].startswith(prefix):
            continue
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") == "median":
            out[b["run_name"]] = b["real_time"]
            for c in ("xa_contentions", "xa_acquisitions", "va_contentions", "xa_nodes",
                      "xa_height"):
                if c in b:
                    out[b["run_name"] + "#" + c] = b[c]
    return out


# --------------------------------------------------------------------------
# SVG (hand-made: lines, bars, axes, legend)

def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fmt(v):
    if v == 0:
        return "0"
    a = abs(v)
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{v / div:g}{suf}"
    return f"{v:g}"


class Axis:
    """Maps data to pixels. kind: 'lin', 'log2', 'log10', 'log1p' (log10(1 + v), shows 0)."""

    def __init__(self, kind, lo, hi, p0, p1):
        self.kind, self.p0, self.p1 = kind, p0, p1
        if kind in ("log2", "log10"):
            lo = max(lo, 1e-9)
            hi = max(hi, lo * 1.0001)
        self.lo, self.hi = lo, hi if hi > lo else lo + 1

    def f(self, v):
        if self.kind == "log2":
            return math.log2(max(v, 1e-9))
        if self.kind == "log10":
            return math.log10(max(v, 1e-9))
        if self.kind == "log1p":
            return math.log10(1 + max(v, 0))
        return v

    def __call__(self, v):
        a, b = self.f(self.lo), self.f(self.hi)
        return self.p0 + (self.f(v) - a) / (b - a) * (self.p1 - self.p0)

    def ticks(self):
        if self.kind == "log2":
            t, v = [], 2 ** math.floor(math.log2(self.lo))
            while v <= self.hi * 1.0001:
                if v >= self.lo * 0.9999:
                    t.append(v)
                v *= 2
            return t
        if self.kind in ("log10", "log1p"):
            start = 0 if self.kind == "log1p" else math.floor(math.log10(self.lo))
            t = [0] if self.kind == "log1p" else []
            e = max(start, 0) if self.kind == "log1p" else start
            while 10 ** e <= self.hi * 1.0001:
                if 10 ** e >= self.lo:
                    t.append(10 ** e)
                e += 1
            return t
        step = nice_step((self.hi - self.lo) / 5)
        v = math.ceil(self.lo / step) * step
        t = []
        while v <= self.hi + 1e-9:
            t.append(v)
            v += step
        return t


def nice_step(raw):
    if raw <= 0:
        return 1
    e = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * e:
            return m * e
    return 10 * e


def svg_frame(width, height, title, body):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">\n'
            f'<rect width="{width}" height="{height}" fill="white"/>\n'
            f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14" '
            f'font-weight="bold">{esc(title)}</text>\n{body}</svg>\n')


def axes(x, y, xlabel, ylabel, box, xticks=None):
    left, top, right, bottom = box
    out = [f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
           f'fill="none" stroke="#444"/>']
    for v in (xticks if xticks is not None else x.ticks()):
        px = x(v)
        out.append(f'<line x1="{px:.1f}" y1="{bottom}" x2="{px:.1f}" y2="{bottom + 4}" '
                   f'stroke="#444"/><text x="{px:.1f}" y="{bottom + 17}" '
                   f'text-anchor="middle">{esc(fmt(v))}</text>')
    for v in y.ticks():
        py = y(v)
        out.append(f'<line x1="{left}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end">{esc(fmt(v))}</text>')
    out.append(f'<text x="{(left + right) / 2}" y="{bottom + 36}" text-anchor="middle">'
               f'{esc(xlabel)}</text>')
    out.append(f'<text transform="translate(16 {(top + bottom) / 2}) rotate(-90)" '
               f'text-anchor="middle">{esc(ylabel)}</text>')
    return out


def legend(labels, x0, y0):
    out = []
    for i, name in enumerate(labels):
        y = y0 + 18 * i
        out.append(f'<rect x="{x0}" y="{y - 9}" width="12" height="12" '
                   f'fill="{COLORS[i % len(COLORS)]}"/><text x="{x0 + 18}" y="{y + 1}">'
                   f'{esc(name)}</text>')
    return out


def line_chart(path, title, xlabel, ylabel, series, xkind="log2", ykind="lin", note=""):
    """series: [(label, [(x, y), ...])]; y None is skipped."""
    width, height = 760, 420
    box = (80, 40, 540, 360)
    xs = [p[0] for _, pts in series for p in pts]
    ys = [p[1] for _, pts in series for p in pts if p[1] is not None]
    if not xs or not ys:
        return
    ylo = 0 if ykind in ("lin", "log1p") else min(v for v in ys if v > 0) / 1.5
    yhi = max(ys) * (1.1 if ykind == "lin" else 1.5)
    x = Axis(xkind, min(xs), max(xs), box[0] + 10, box[2] - 10)
    y = Axis(ykind, ylo, yhi, box[3], box[1])
    body = axes(x, y, xlabel, ylabel, box, sorted(set(xs)))
    for i, (name, pts) in enumerate(series):
        pts = [(a, b) for a, b in pts if b is not None]
        color = COLORS[i % len(COLORS)]
        d = " ".join(f"{'M' if j == 0 else 'L'}{x(a):.1f},{y(b):.1f}" for j, (a, b) in
                     enumerate(pts))
        dash = DASHES[i % len(DASHES)]
        body.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2"'
                    + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
        for a, b in pts:
            body.append(f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="3" fill="{color}">'
                        f'<title>{esc(name)}: {esc(fmt(a))} -> {esc(fmt(b))}</title></circle>')
    body += legend([s[0] for s in series], box[2] + 20, box[1] + 10)
    if note:
        body.append(f'<text x="{box[0]}" y="{height - 8}" font-size="11" fill="#555">'
                    f'{esc(note)}</text>')
    with open(path, "w") as f:
        f.write(svg_frame(width, height, title, "\n".join(body)))


def bar_chart(path, title, categories, series, ylabel, ykind="lin", note=""):
    """Grouped bars: series [(label, [value per category])]."""
    width, height = 760, 420
    box = (80, 40, 540, 360)
    vals = [v for _, vs in series for v in vs if v is not None]
    if not vals:
        return
    ylo = 0 if ykind in ("lin", "log1p") else min(v for v in vals if v > 0) / 1.5
    y = Axis(ykind, ylo, max(vals) * (1.1 if ykind == "lin" else 1.5), box[3], box[1])
    body = [f'<rect x="{box[0]}" y="{box[1]}" width="{box[2] - box[0]}" '
            f'height="{box[3] - box[1]}" fill="none" stroke="#444"/>']
    for v in y.ticks():
        py = y(v)
        body.append(f'<line x1="{box[0]}" y1="{py:.1f}" x2="{box[2]}" y2="{py:.1f}" '
                    f'stroke="#ddd"/><text x="{box[0] - 6}" y="{py + 4:.1f}" '
                    f'text-anchor="end">{esc(fmt(v))}</text>')
    group = (box[2] - box[0]) / len(categories)
    bw = group * 0.8 / len(series)
    for ci, cat in enumerate(categories):
        gx = box[0] + ci * group + group * 0.1
        body.append(f'<text x="{gx + group * 0.4:.1f}" y="{box[3] + 17}" '
                    f'text-anchor="middle">{esc(cat)}</text>')
        for si, (name, vs) in enumerate(series):
            v = vs[ci]
            if v is None:
                continue
            top = y(v)
            body.append(f'<rect x="{gx + si * bw:.1f}" y="{top:.1f}" width="{bw * 0.9:.1f}" '
                        f'height="{max(box[3] - top, 0):.1f}" fill="{COLORS[si % len(COLORS)]}">'
                        f'<title>{esc(name)} / {esc(cat)}: {esc(fmt(v))}</title></rect>')
    body.append(f'<text transform="translate(16 {(box[1] + box[3]) / 2}) rotate(-90)" '
                f'text-anchor="middle">{esc(ylabel)}</text>')
    body += legend([s[0] for s in series], box[2] + 20, box[1] + 10)
    if note:
        body.append(f'<text x="{box[0]}" y="{height - 30}" font-size="11" fill="#555">'
                    f'{esc(note)}</text>')
    with open(path, "w") as f:
        f.write(svg_frame(width, height, title, "\n".join(body)))


# --------------------------------------------------------------------------
# Report

def ratio(a, b):
    if a is None or b is None:
        return None
    if b == 0:
        return math.inf if a > 0 else None
    return a / b


def finite(o):
    """JSON has no infinity: a ratio over 0 becomes the string "inf"."""
    if isinstance(o, float) and not math.isfinite(o):
        return "inf" if o > 0 else None
    if isinstance(o, dict):
        return {k: finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite(v) for v in o]
    return o


def rstr(r, digits=2):
    if r is None:
        return "n/a"
    if math.isinf(r):
        return "inf (0 in the denominator)"
    return f"{r:.{digits}f}x"


def main(out):
    raw = os.path.join(out, "raw")
    res = {"machine": load(os.path.join(raw, "machine.json"))}
    md = ["# Benchmark results (generated by ci/bench; do not edit)", ""]
    m = res["machine"]
    md += [f"Machine: {m.get('cpu_model')}, {m.get('nproc')} CPUs, {m.get('compiler')}, "
           f"kernel {m.get('kernel')}; commit {m.get('commit')}; {m.get('date')}.",
           f"Commands: see ci/bench (sweep --ops={m.get('sweep_ops')}, headline "
           f"--ops={m.get('headline_ops')}).", ""]

    # Hot path (issue 2).
    hp = gb_medians(os.path.join(raw, "hotpath.json"), "BM_")
    floor = hp.get("BM_floor")
    res["hotpath"] = {"floor_ns": floor, "pairs": {}}
    md += ["## Hot path: map+unmap of one page vs the floor (bench_vmap, medians of 3)", "",
           "| benchmark | ns (wall / all pairs) | one thread's pair, ns | pair / floor | "
           "xa_lock contentions | xa_lock acquisitions |", "|---|---|---|---|---|---|"]
    for name, t in sorted(hp.items()):
        if "#" in name or not name.startswith("BM_map_unmap_1page/"):
            continue
        threads = int(name.rsplit("threads:", 1)[1])
        per_thread = t * threads
        entry = {"ns": t, "ns_per_thread_pair": per_thread,
                 "ratio_to_floor": ratio(per_thread, floor),
                 "xa_contentions": hp.get(name + "#xa_contentions"),
                 "xa_acquisitions": hp.get(name + "#xa_acquisitions")}
        res["hotpath"]["pairs"][name] = entry
        md.append(f"| {name} | {t:.2f} | {per_thread:.2f} | {rstr(entry['ratio_to_floor'])} | "
                  f"{fmt(entry['xa_contentions'] or 0)} | {fmt(entry['xa_acquisitions'] or 0)} |")
    md += ["", f"BM_floor: {floor:.2f} ns." if floor else "BM_floor: missing.", ""]

    # Thread sweep.
    sweep = medians(scaling_runs(glob.glob(os.path.join(raw, "scaling_rep*.json"))))
    res["sweep"] = [dict(zip(("workload", "scheme", "key", "threads"), k), **v)
                    for k, v in sorted(sweep.items())]
    threads = sorted({k[3] for k in sweep})
    for wl in ("window", "plain"):
        md += [f"## {wl} workload: ops/s and xa_lock contentions vs threads "
               "(T = N possible CPUs, medians of 3 interleaved rounds)", "",
               "| config | " + " | ".join(f"T={t}" for t in threads) + " |",
               "|---|" + "---|" * len(threads)]
        for s, k in CONFIGS:
            row = [sweep.get((wl, s, k, t)) for t in threads]
            md.append(f"| {label(s, k)} ops/s | " + " | ".join(
                fmt(round(r["ops_per_s"], -3)) if r else "" for r in row) + " |")
        for s, k in CONFIGS:
            row = [sweep.get((wl, s, k, t)) for t in threads]
            md.append(f"| {label(s, k)} xa_lock con | " + " | ".join(
                fmt(r["xa_con"]) if r else "" for r in row) + " |")
        for s, k in CONFIGS:
            row = [sweep.get((wl, s, k, t)) for t in threads]
            md.append(f"| {label(s, k)} vmap_area_lock con | " + " | ".join(
                fmt(r["va_con"]) if r else "" for r in row) + " |")
        md.append("")
        # hashed vs global throughput, same key.
        md.append("Hashed / global throughput (block_index keys): " + ", ".join(
            f"T={t}: {rstr(ratio(sweep[(wl, 'per_cpu_hashed', 'block_index', t)]['ops_per_s'], sweep[(wl, 'global', 'block_index', t)]['ops_per_s']))}"
            for t in threads if (wl, "global", "block_index", t) in sweep and
            (wl, "per_cpu_hashed", "block_index", t) in sweep) + ".")
        md.append("")
        line_chart(os.path.join(out, f"{wl}_ops.svg"),
                   f"{wl} workload: throughput vs threads (T = N, medians of 3)",
                   "threads = possible CPUs", "map+unmap pairs per second",
                   [(label(s, k), [(t, sweep[(wl, s, k, t)]["ops_per_s"]) for t in threads
                                   if (wl, s, k, t) in sweep]) for s, k in CONFIGS])
        line_chart(os.path.join(out, f"{wl}_xa_contentions.svg"),
                   f"{wl} workload: xa_lock contentions vs threads (medians of 3)",
                   "threads = possible CPUs", "contentions per run (log scale, 0 at the bottom)",
                   [(label(s, k), [(t, sweep[(wl, s, k, t)]["xa_con"]) for t in threads
                                   if (wl, s, k, t) in sweep]) for s, k in CONFIGS],
                   ykind="log1p",
                   note=f"Each run: {m.get('sweep_ops')} map+unmap pairs in total, split over "
                        "the threads.")

    # Headline: window, T = N = 64, long runs.
    head_runs = scaling_runs(glob.glob(os.path.join(raw, "headline_rep*.json")))
    head = medians(head_runs)
    res["headline"] = {"runs": {f"{k[1]}/{k[2]}": v for k, v in head_runs.items()},
                       "medians": {f"{k[1]}/{k[2]}": v for k, v in head.items()}}
    if head:
        t = max(k[3] for k in head)
        g = head.get(("window", "global", "block_index", t))
        md += [f"## Headline: window workload, T = N = {t}, "
               f"{m.get('headline_ops')} pairs a run, 3 interleaved rounds", "",
               "| config | ops/s (median) | " + " | ".join(
                   f"{LOCK_NAMES[l]} con (median) [rounds]" for l in LOCKS) + " |",
               "|---|---|" + "---|" * len(LOCKS)]
        for s, k in CONFIGS:
            key = ("window", s, k, t)
            if key not in head:
                continue
            r, rounds = head[key], head_runs[key]
            md.append(f"| {label(s, k)} | {fmt(round(r['ops_per_s'], -3))} | " + " | ".join(
                f"{fmt(r[l + '_con'])} [{', '.join(fmt(x[l + '_con']) for x in rounds)}]"
                for l in LOCKS) + " |")
        md.append("")
        res["headline"]["ratios"] = {}
        for s, k in CONFIGS:
            h = head.get(("window", s, k, t))
            if s == "global" or not h or not g:
                continue
            rr = {"xa_con_global_over_hashed": ratio(g["xa_con"], h["xa_con"]),
                  "ops_hashed_over_global": ratio(h["ops_per_s"], g["ops_per_s"]),
                  "va_con_hashed_over_global": ratio(h["va_con"], g["va_con"])}
            res["headline"]["ratios"][f"{s}/{k}"] = rr
            md.append(f"- {label(s, k)} vs global / block_index: xa_lock contentions "
                      f"{rstr(rr['xa_con_global_over_hashed'])} fewer (global median "
                      f"{fmt(g['xa_con'])}); throughput {rstr(rr['ops_hashed_over_global'])}; "
                      f"vmap_area_lock contentions {rstr(rr['va_con_hashed_over_global'])}.")
        md.append("")
        cats = [LOCK_NAMES[l] for l in LOCKS]
        present = [(s, k) for s, k in CONFIGS if ("window", s, k, t) in head]
        bar_chart(os.path.join(out, "headline_contentions.svg"),
                  f"window, T = N = {t}: contentions per lock (medians of 3)", cats,
                  [(label(s, k), [head[("window", s, k, t)][l + "_con"] for l in LOCKS])
                   for s, k in present], "contentions per run (log scale)", ykind="log1p",
                  note=f"{m.get('headline_ops')} map+unmap pairs a run.")

    # Lookup.
    lk = gb_medians(os.path.join(raw, "lookup.json"), "BM_lookup/")
    res["lookup"] = {n: v for n, v in lk.items()}
    names = sorted({n.split("/blocks:")[0] for n in lk if "#" not in n})
    sizes = sorted({int(n.split("/blocks:")[1]) for n in lk if "#" not in n})
    md += ["## Lookup: ns per vb_free() lookup of a live block (64 CPUs, medians of 3)", "",
           "| structure | " + " | ".join(f"{b} blocks" for b in sizes) + " |",
           "|---|" + "---|" * len(sizes)]
    for n in names:
        md.append(f"| {n.removeprefix('BM_lookup/')} | " + " | ".join(
            f"{lk[f'{n}/blocks:{b}']:.2f}" if f"{n}/blocks:{b}" in lk else "" for b in sizes)
            + " |")
    md.append("")
    bar_chart(os.path.join(out, "lookup.svg"), "ns per block lookup by address (medians of 3)",
              [f"{b} blocks" for b in sizes],
              [(n.removeprefix("BM_lookup/"), [lk.get(f"{n}/blocks:{b}") for b in sizes])
               for n in names], "ns per lookup")

    # Memory.
    mem = load(os.path.join(raw, "memory.json"))
    res["memory"] = mem
    dc = mem["dense_check"]
    md += ["## xarray memory per live block", "",
           f"Dense key check: {dc['masks']} masks, {dc['allocators']} allocators, "
           f"{dc['blocks']} blocks: {dc['collisions']} collisions, "
           f"{dc['bound_violations']} keys above the density bound.", "",
           f"Bytes use our node ({mem['node_bytes']} B); the kernel's xa_node is "
           f"{mem['kernel_node_bytes']} B, so multiply by {mem['kernel_node_bytes'] / mem['node_bytes']:.3f} "
           "for kernel bytes. Ratios are of node counts.", ""]
    rows = mem["memory"]
    per_cpus = sorted({r["per_cpu"] for r in rows})
    layouts = [("global", "block_index"), ("global", "va_start"),
               ("per_cpu_hashed", "block_index"), ("per_cpu_hashed", "va_start"),
               ("per_cpu_hashed", "dense")]
    idx = {(r["mask"], r["possible"], r["per_cpu"], r["scheme"], r["key"]): r for r in rows}
    for mask in ("first_n", "even"):
        cpus = sorted({r["possible"] for r in rows if r["mask"] == mask})
        for pc in per_cpus:
            md += [f"### mask {mask}, {pc} live block(s) per possible CPU: bytes per live block "
                   "(nodes)", "",
                   "| possible CPUs | " + " | ".join(label(s, k) for s, k in layouts) +
                   " | hashed block_index / global | dense / global |",
                   "|---|" + "---|" * (len(layouts) + 2)]
            for n in cpus:
                cells = []
                for s, k in layouts:
                    r = idx.get((mask, n, pc, s, k))
                    cells.append(f"{r['bytes'] / r['blocks']:.0f} ({r['nodes']})" if r else "")
                g = idx[(mask, n, pc, "global", "block_index")]["nodes"]
                hb = idx[(mask, n, pc, "per_cpu_hashed", "block_index")]["nodes"]
                dn = idx[(mask, n, pc, "per_cpu_hashed", "dense")]["nodes"]
                md.append(f"| {n} | " + " | ".join(cells) +
                          f" | {rstr(ratio(hb, g))} | {rstr(ratio(dn, g))} |")
            md.append("")
            line_chart(os.path.join(out, f"memory_{mask}_{pc}pc.svg"),
                       f"xarray bytes per live block, mask {mask}, {pc} block(s) per CPU",
                       "possible CPUs", "bytes per live block (log scale)",
                       [(label(s, k), [(n, idx[(mask, n, pc, s, k)]["bytes"] /
                                        idx[(mask, n, pc, s, k)]["blocks"] or None)
                                       for n in cpus]) for s, k in layouts],
                       ykind="log10",
                       note="A point at 0 bytes (the tree holds one entry in its head) is "
                            "not drawn.")

    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(finite(res), f, indent=1, allow_nan=False)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RESULTS_DIR")
    main(sys.argv[1])
