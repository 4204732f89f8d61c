#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reports of the push benchmarks (fanout.sh, idle.sh, catchup.sh, hostile.sh,
compression.sh).

    python3 bench/push-report.py fanout|idle|catchup|hostile|compression --out DIR [--write-docs]

Reads DIR/SCENARIO-runs.tsv (case columns, then fanout_load's logfmt line)
and DIR/SCENARIO-machine.txt; writes DIR/SCENARIO-summary.tsv (medians),
SCENARIO-table.txt, SCENARIO-keys.txt and SVG plots (gnuplot), prints the
table and the key lines; with --write-docs, replaces the block between
<!-- SCENARIO-results:begin --> and <!-- SCENARIO-results:end --> in
docs/benchmarks.md. Every number is a median over rounds; ratios are ratios
of those medians. Standard library only."""
import argparse
import csv
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_ORDER = ["changecast", "changecast-z", "nchan", "nchan-z", "node-sse", "node-ws", "node-ws-z",
              "node-watch"]


def read_runs(path, case_cols):
    rows = []
    with open(path) as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader)
        for rec in reader:
            if len(rec) < len(header):
                continue
            row = dict(zip(header[:-1], rec[:-1]))
            for kv in rec[-1].split():
                k, _, v = kv.partition("=")
                try:
                    row[k] = float(v)
                except ValueError:
                    row[k] = v
            rows.append(row)
    groups = {}
    for row in rows:
        key = tuple(row[c] for c in case_cols)
        groups.setdefault(key, []).append(row)
    return groups


def med(rows, field):
    vals = [r[field] for r in rows if isinstance(r.get(field), float)]
    return statistics.median(vals) if vals else float("nan")


def fmt_ms(v):
    if v != v:
        return "-"
    return f"{v:.1f}ms" if v >= 10 else f"{v:.2f}ms"


def order(t):
    return PEER_ORDER.index(t) if t in PEER_ORDER else 99


def gnuplot(script):
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"push-report: gnuplot failed: {e}", file=sys.stderr)


STYLE = """set terminal svg size 860,460 dynamic font "sans,12" background "white"
set grid
set key outside right top vertical Left reverse
set style line 1 lc rgb "#2166ac" lw 2 pt 7
set style line 2 lc rgb "#b2182b" lw 2 pt 5
set style line 3 lc rgb "#1b7837" lw 2 pt 9
set style line 4 lc rgb "#762a83" lw 2 pt 11
set style line 5 lc rgb "#e08214" lw 2 pt 13
"""


def fanout(out):
    groups = read_runs(os.path.join(out, "fanout-runs.tsv"), ["proto", "subscribers", "rate", "target"])
    summary = {}
    for (proto, s, r, target), rows in groups.items():
        m = {f: med(rows, f) for f in ["deliveries_per_s", "p50_ms", "p99_ms", "max_ms", "drops",
                                        "disconnects", "server_cpu_s_per_m", "total_cpu_s_per_m",
                                        "server_rss_kib", "bytes_per_delivery", "publish_rate", "ready"]}
        m["runs"] = len(rows)
        m["offered"] = int(s) * float(r)
        m["dpcs"] = 1e6 / m["server_cpu_s_per_m"] if m["server_cpu_s_per_m"] > 0 else float("nan")
        if m["deliveries_per_s"] == 0:
            m["p50_ms"] = m["p99_ms"] = m["max_ms"] = float("nan")
        m["dpcs_total"] = 1e6 / m["total_cpu_s_per_m"] if m["total_cpu_s_per_m"] > 0 else float("nan")
        summary[(proto, int(s), int(float(r)), target)] = m
    keys = sorted(summary, key=lambda k: (k[0] != "sse", k[1], k[2], order(k[3])))
    cols = ["proto", "subs", "rate", "target", "runs", "deliv/s", "of_offer", "p50_ms", "p99_ms", "max_ms",
            "drops", "disconn", "srv_us/dlv", "all_us/dlv", "dlv/cpu-s", "rss_MiB", "B/dlv", "pub/s"]
    lines = ["  ".join(f"{c:>10}" if i > 3 else f"{c:<10}" for i, c in enumerate(cols))]
    with open(os.path.join(out, "fanout-summary.tsv"), "w") as f:
        f.write("proto\tsubscribers\trate\ttarget\truns\tdeliveries_per_s\tp50_ms\tp99_ms\tmax_ms\tdrops\t"
                "disconnects\tserver_us_per_delivery\ttotal_us_per_delivery\tdeliveries_per_cpu_s\t"
                "server_rss_kib\tbytes_per_delivery\tpublish_rate\n")
        for k in keys:
            m = summary[k]
            f.write("\t".join(str(x) for x in [*k, m["runs"], round(m["deliveries_per_s"]), m["p50_ms"],
                                               m["p99_ms"], m["max_ms"], m["drops"], m["disconnects"],
                                               round(m["server_cpu_s_per_m"], 3),
                                               round(m["total_cpu_s_per_m"], 3), m["dpcs"] if m["dpcs"] != m["dpcs"] else round(m["dpcs"]),
                                               m["server_rss_kib"], m["bytes_per_delivery"],
                                               m["publish_rate"]]) + "\n")
            vals = [k[0], str(k[1]), str(k[2]), k[3], str(m["runs"]), f"{m['deliveries_per_s']:.0f}",
                    f"{m['deliveries_per_s'] / m['offered']:.2f}", f"{m['p50_ms']:.2f}", f"{m['p99_ms']:.2f}",
                    f"{m['max_ms']:.1f}", f"{m['drops']:.0f}", f"{m['disconnects']:.0f}",
                    f"{m['server_cpu_s_per_m']:.2f}", f"{m['total_cpu_s_per_m']:.2f}", f"{m['dpcs']:.0f}",
                    f"{m['server_rss_kib'] / 1024:.1f}", f"{m['bytes_per_delivery']:.0f}",
                    f"{m['publish_rate']:.0f}"]
            lines.append("  ".join(f"{v:>10}" if i > 3 else f"{v:<10}" for i, v in enumerate(vals)))
    table = "\n".join(lines) + "\n"
    key_lines = []
    for k in keys:
        proto, s, r, target = k
        if target != "changecast":
            continue
        cc = summary[k]
        for peer in sorted((p for (pp, ss, rr, p) in summary if (pp, ss, rr) == (proto, s, r) and p != target),
                           key=order):
            pm = summary[(proto, s, r, peer)]
            def ratio(a, b):
                return f"{a / b:.2f}" if a == a and b == b and b > 0 else "n/a"
            p99_cc = fmt_ms(cc["p99_ms"]) if cc["deliveries_per_s"] > 0 else "none delivered"
            p99_peer = fmt_ms(pm["p99_ms"]) if pm["deliveries_per_s"] > 0 else "none delivered"
            line = (f"fanout {proto} s={s} r={r}: changecast/{peer} deliveries per cpu-second "
                    f"{ratio(cc['dpcs'], pm['dpcs'])} (server+subscribers {ratio(cc['dpcs_total'], pm['dpcs_total'])}), "
                    f"p99 {p99_cc} vs {p99_peer}")
            notes = []
            for name, m in (("changecast", cc), (peer, pm)):
                share = m["deliveries_per_s"] / m["offered"]
                if share < 0.95:
                    notes.append(f"{name} delivered {share * 100:.0f}% of offered")
                if m["drops"] > 0:
                    notes.append(f"{name} dropped {m['drops']:.0f}")
            if notes:
                line += "; " + ", ".join(notes)
            key_lines.append(line)
    keys_text = "\n".join(key_lines) + "\n"
    write(out, "fanout-table.txt", table)
    write(out, "fanout-keys.txt", keys_text)
    print(table)
    print(keys_text, end="")

    plots = []
    for proto in ("sse", "ws"):
        cases = sorted({(s, r) for (p, s, r, _) in summary if p == proto}, key=lambda c: (c[0] * c[1], c[0]))
        targets = sorted({t for (p, _, _, t) in summary if p == proto}, key=order)
        if not cases:
            continue
        parts = []
        datafiles = []
        for i, t in enumerate(targets):
            path = os.path.join(out, f".plot-fanout-{proto}-{t}.dat")
            with open(path, "w") as f:
                for x, c in enumerate(cases):
                    m = summary.get((proto, c[0], c[1], t))
                    if m:
                        f.write(f"{x} {max(m['p50_ms'], 0.01)} {max(m['p99_ms'], 0.01)}\n")
            datafiles.append(path)
            parts.append(f"'{path}' using 1:2 with linespoints ls {i + 1} title '{t} p50'")
            parts.append(f"'{path}' using 1:3 with linespoints ls {i + 1} dt 2 title '{t} p99'")
        xtics = ", ".join(f'"{c[0]}x{c[1]}/s" {x}' for x, c in enumerate(cases))
        name = f"fanout-{proto}.svg"
        gnuplot(STYLE + f"""set output '{os.path.join(out, name)}'
set title "fan-out over {proto.upper()}: delivery latency against load (median of rounds)"
set xlabel "subscribers x events per second"
set ylabel "delivery latency (ms)"
set logscale y
set xrange [-0.3:{len(cases) - 0.7}]
set xtics ({xtics})
plot {", ".join(parts)}
""")
        for p in datafiles:
            os.remove(p)
        plots.append((name, f"fan-out over {proto.upper()}: p50 and p99 delivery latency against load"))
    return table, keys_text, plots


def idle(out):
    groups = read_runs(os.path.join(out, "idle-runs.tsv"), ["proto", "subscribers", "target"])
    summary = {}
    for (proto, s, target), rows in groups.items():
        summary[(proto, int(s), target)] = {
            "runs": len(rows), "bytes": med(rows, "bytes_per_subscriber"),
            "rss": med(rows, "server_rss_kib"), "base": med(rows, "server_rss_base_kib"),
            "ready": med(rows, "ready"), "cpu": med(rows, "idle_cpu_s_per_s")}
    keys = sorted(summary, key=lambda k: (k[0] != "sse", k[1], order(k[2])))
    lines = [f"{'proto':<6}{'subs':>7}  {'target':<12}{'runs':>5}{'ready':>8}{'KiB/sub':>9}"
             f"{'rss_base_MiB':>14}{'rss_MiB':>9}{'idle_cpu_ms/s':>15}"]
    with open(os.path.join(out, "idle-summary.tsv"), "w") as f:
        f.write("proto\tsubscribers\ttarget\truns\tready\tbytes_per_subscriber\tserver_rss_base_kib\tserver_rss_kib\n")
        for k in keys:
            m = summary[k]
            f.write("\t".join(str(x) for x in [*k, m["runs"], m["ready"], round(m["bytes"]), m["base"], m["rss"]]) + "\n")
            lines.append(f"{k[0]:<6}{k[1]:>7}  {k[2]:<12}{m['runs']:>5}{m['ready']:>8.0f}{m['bytes'] / 1024:>9.2f}"
                         f"{m['base'] / 1024:>14.1f}{m['rss'] / 1024:>9.1f}"
                         + (f"{m['cpu'] * 1000:>15.1f}" if m["cpu"] == m["cpu"] and k[1] != min(x[1] for x in keys) else f"{'-':>15}"))
    table = "\n".join(lines) + "\n"
    key_lines = []
    for proto in ("sse", "ws"):
        ks = [k for k in keys if k[0] == proto]
        for s in sorted({k[1] for k in ks}):
            cc = summary.get((proto, s, "changecast"))
            if not cc:
                continue
            peers = [f"{k[2]} {summary[k]['bytes'] / 1024:.2f}" for k in ks if k[1] == s and k[2] != "changecast"]
            measured = [k for k in ks if k[1] == s and summary[k]["cpu"] == summary[k]["cpu"]]
            cpu = [f"{k[2]} {summary[k]['cpu'] * 1000:.1f}" for k in measured] if any(summary[k]["cpu"] > 0 for k in measured) else []
            key_lines.append(f"idle {proto} s={s}: changecast {cc['bytes'] / 1024:.2f} KiB per idle subscriber"
                             + (f" vs {', '.join(peers)}" if peers else "")
                             + (f"; CPU while idle (ms per second): {', '.join(cpu)}" if cpu else "")
                             + ("" if cc["ready"] >= s else f"; changecast took only {cc['ready']:.0f}"))
    keys_text = "\n".join(key_lines) + "\n"
    write(out, "idle-table.txt", table)
    write(out, "idle-keys.txt", keys_text)
    print(table)
    print(keys_text, end="")
    targets = sorted({k[2] for k in keys}, key=order)
    path = os.path.join(out, ".plot-idle.dat")
    with open(path, "w") as f:
        f.write("target sse ws\n")
        for t in targets:
            vals = []
            for proto in ("sse", "ws"):
                m = [summary[k]["bytes"] for k in keys if k[0] == proto and k[2] == t]
                vals.append(f"{m[0] / 1024:.3f}" if m else "NaN")
            f.write(f"{t} {' '.join(vals)}\n")
    gnuplot(STYLE + f"""set output '{os.path.join(out, "idle.svg")}'
set title "memory per idle subscriber (server RSS delta / subscribers, median of rounds)"
set ylabel "KiB per subscriber"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set yrange [0:*]
set key top left
plot '{path}' using 2:xtic(1) title "SSE" lc rgb "#2166ac", '' using 3 title "WebSocket" lc rgb "#b2182b"
""")
    os.remove(path)
    return table, keys_text, [("idle.svg", "memory per idle subscriber, SSE and WebSocket, every peer")]


def catchup(out):
    groups = read_runs(os.path.join(out, "catchup-runs.tsv"), ["source", "proto", "target"])
    summary = {}
    for (source, proto, target), rows in groups.items():
        summary[(source, proto, target)] = {
            "runs": len(rows), "events": med(rows, "events"), "received": med(rows, "received"),
            "seconds": med(rows, "seconds"), "eps": med(rows, "events_per_s"),
            "peak": med(rows, "peak_delta_kib"), "cpu": med(rows, "server_cpu_s"),
            "insert_s": med(rows, "insert_s")}
    keys = sorted(summary, key=lambda k: (k[0] != "ring", k[1] != "sse", order(k[2])))
    lines = [f"{'source':<9}{'proto':<6}{'target':<12}{'runs':>5}{'events':>8}{'received':>9}{'seconds':>9}"
             f"{'events/s':>10}{'peak+MiB':>10}{'srv_cpu_s':>10}"]
    with open(os.path.join(out, "catchup-summary.tsv"), "w") as f:
        f.write("source\tproto\ttarget\truns\tevents\treceived\tseconds\tevents_per_s\tpeak_delta_kib\tserver_cpu_s\n")
        for k in keys:
            m = summary[k]
            f.write("\t".join(str(x) for x in [*k, m["runs"], m["events"], m["received"], m["seconds"], round(m["eps"]),
                                               m["peak"], m["cpu"]]) + "\n")
            lines.append(f"{k[0]:<9}{k[1]:<6}{k[2]:<12}{m['runs']:>5}{m['events']:>8.0f}{m['received']:>9.0f}"
                         f"{m['seconds']:>9.2f}{m['eps']:>10.0f}{m['peak'] / 1024:>10.1f}{m['cpu']:>10.2f}")
    table = "\n".join(lines) + "\n"
    key_lines = []
    for k in keys:
        m = summary[k]
        key_lines.append(f"catchup {k[0]} {k[1]} n={m['events']:.0f}: {k[2]} {m['seconds']:.2f}s "
                         f"({m['eps']:.0f} events/s), peak memory +{m['peak'] / 1024:.1f} MiB, "
                         f"server CPU {m['cpu']:.2f}s"
                         + ("" if m["received"] >= m["events"] else f"; only {m['received']:.0f} received"))
    keys_text = "\n".join(key_lines) + "\n"
    write(out, "catchup-table.txt", table)
    write(out, "catchup-keys.txt", keys_text)
    print(table)
    print(keys_text, end="")
    path = os.path.join(out, ".plot-catchup.dat")
    with open(path, "w") as f:
        f.write("case seconds peak\n")
        for k in keys:
            f.write(f'"{k[0]} {k[1]} {k[2]}" {summary[k]["seconds"]:.3f} {summary[k]["peak"] / 1024:.2f}\n')
    gnuplot(STYLE + f"""set output '{os.path.join(out, "catchup.svg")}'
set title "catch-up: replaying the missed events to one reconnecting subscriber (median of rounds)"
set ylabel "seconds"
set y2label "peak RSS added (MiB)"
set ytics nomirror
set y2tics
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set yrange [0:*]
set y2range [0:*]
set key top left
plot '{path}' using 2:xtic(1) title "time" lc rgb "#2166ac", '' using 3 axes x1y2 title "peak memory" lc rgb "#e08214"
""")
    os.remove(path)
    return table, keys_text, [("catchup.svg", "catch-up time and peak memory")]


def hostile(out):
    groups = read_runs(os.path.join(out, "hostile-runs.tsv"), ["proto", "readers", "stalled"])
    fields = ["base_p50_ms", "base_p99_ms", "during_p50_ms", "during_p99_ms", "during_max_ms",
              "reader_drops", "reader_disconnects", "slow_drops", "stalled_open",
              "rss_before_kib", "rss_peak_kib", "rss_after_kib"]
    summary = {k: {"runs": len(rows), **{f: med(rows, f) for f in fields},
                   "worst_reader_disconnects": max(r.get("reader_disconnects", 0) for r in rows)}
               for k, rows in groups.items()}
    keys = sorted(summary, key=lambda k: k[0] != "sse")
    lines = [f"{'readers':<8}{'n':>4}{'stalled':>8}{'runs':>5}{'base_p50':>10}{'base_p99':>10}{'p50':>9}{'p99':>9}"
             f"{'max':>9}{'lost':>6}{'disc':>6}{'slow_drops':>11}{'rss_MiB':>9}{'peak_MiB':>9}{'after_MiB':>10}"]
    with open(os.path.join(out, "hostile-summary.tsv"), "w") as f:
        f.write("proto\treaders\tstalled\truns\t" + "\t".join(fields) + "\n")
        for k in keys:
            m = summary[k]
            f.write("\t".join(str(x) for x in [*k, m["runs"], *(m[x] for x in fields)]) + "\n")
            lines.append(f"{k[0]:<8}{float(k[1]):>4.0f}{float(k[2]):>8.0f}{m['runs']:>5}{fmt_ms(m['base_p50_ms']):>10}{fmt_ms(m['base_p99_ms']):>10}"
                         f"{fmt_ms(m['during_p50_ms']):>9}{fmt_ms(m['during_p99_ms']):>9}{fmt_ms(m['during_max_ms']):>9}"
                         f"{m['reader_drops']:>6.0f}{m['reader_disconnects']:>6.0f}{m['slow_drops']:>11.0f}"
                         f"{m['rss_before_kib'] / 1024:>9.1f}{m['rss_peak_kib'] / 1024:>9.1f}{m['rss_after_kib'] / 1024:>10.1f}")
    table = "\n".join(lines) + "\n"
    key_lines = []
    for k in keys:
        m = summary[k]
        key_lines.append(
            f"hostile {k[0]} readers={float(k[1]):.0f} stalled={float(k[2]):.0f}: readers p99 {fmt_ms(m['base_p99_ms'])} before, "
            f"{fmt_ms(m['during_p99_ms'])} with the non-readers; readers dropped in any run "
            f"{m['worst_reader_disconnects']:.0f}, events lost {m['reader_drops']:.0f}; non-readers dropped "
            f"{m['slow_drops']:.0f} of {m['stalled_open']:.0f}; RSS {m['rss_before_kib'] / 1024:.1f} MiB, "
            f"peak {m['rss_peak_kib'] / 1024:.1f}, after {m['rss_after_kib'] / 1024:.1f}")
    keys_text = "\n".join(key_lines) + "\n"
    write(out, "hostile-table.txt", table)
    write(out, "hostile-keys.txt", keys_text)
    print(table)
    print(keys_text, end="")
    return table, keys_text, []


def compression(out):
    groups = read_runs(os.path.join(out, "compression-runs.tsv"),
                       ["proto", "doc_bytes", "subscribers", "rate", "target"])
    summary = {}
    for (proto, doc, s, r, target), rows in groups.items():
        m = {f: med(rows, f) for f in ["deliveries_per_s", "p99_ms", "drops", "server_cpu_s_per_m",
                                        "bytes_per_delivery"]}
        m["runs"] = len(rows)
        m["offered"] = int(s) * float(r)
        m["share"] = m["deliveries_per_s"] / m["offered"]
        summary[(proto, int(doc), int(s), int(float(r)), target)] = m
    keys = sorted(summary, key=lambda k: (k[0] != "sse", k[1], k[2], k[3], order(k[4])))
    cols = ["proto", "doc_B", "subs", "rate", "target", "runs", "of_offer", "p99_ms", "drops",
            "srv_us/dlv", "B/dlv"]
    lines = ["  ".join(f"{c:>12}" if i > 4 else f"{c:<12}" for i, c in enumerate(cols))]
    with open(os.path.join(out, "compression-summary.tsv"), "w") as f:
        f.write("proto\tdoc_bytes\tsubscribers\trate\ttarget\truns\tshare_of_offered\tp99_ms\tdrops\t"
                "server_us_per_delivery\tbytes_per_delivery\n")
        for k in keys:
            m = summary[k]
            f.write("\t".join(str(x) for x in [*k, m["runs"], round(m["share"], 3), m["p99_ms"], m["drops"],
                                               round(m["server_cpu_s_per_m"], 3),
                                               round(m["bytes_per_delivery"])]) + "\n")
            vals = [k[0], str(k[1]), str(k[2]), str(k[3]), k[4], str(m["runs"]), f"{m['share']:.2f}",
                    f"{m['p99_ms']:.2f}", f"{m['drops']:.0f}", f"{m['server_cpu_s_per_m']:.2f}",
                    f"{m['bytes_per_delivery']:.0f}"]
            lines.append("  ".join(f"{v:>12}" if i > 4 else f"{v:<12}" for i, v in enumerate(vals)))
    table = "\n".join(lines) + "\n"
    key_lines = []
    for (proto, doc, s, r, target) in keys:
        if target != "changecast-z":
            continue
        z = summary[(proto, doc, s, r, target)]
        plain = summary.get((proto, doc, s, r, "changecast"))
        if not plain:
            continue
        def ratio(a, b):
            return f"{a / b:.2f}" if a == a and b == b and b > 0 else "n/a"
        line = (f"compression {proto} doc={doc} s={s} r={r}: bytes per delivery {plain['bytes_per_delivery']:.0f} -> "
                f"{z['bytes_per_delivery']:.0f} ({ratio(plain['bytes_per_delivery'], z['bytes_per_delivery'])}x fewer), "
                f"server CPU per delivery compressed/plain {ratio(z['server_cpu_s_per_m'], plain['server_cpu_s_per_m'])} "
                f"({z['server_cpu_s_per_m']:.2f} vs {plain['server_cpu_s_per_m']:.2f} us)")
        for peer in ("nchan-z", "node-ws-z"):
            pm = summary.get((proto, doc, s, r, peer))
            if pm:
                line += (f"; {peer} {pm['bytes_per_delivery']:.0f} B and {pm['server_cpu_s_per_m']:.2f} us per delivery"
                         f" (changecast-z/{peer} CPU {ratio(z['server_cpu_s_per_m'], pm['server_cpu_s_per_m'])})")
        notes = []
        for name in ("changecast", "changecast-z", "nchan-z", "node-ws-z"):
            m = summary.get((proto, doc, s, r, name))
            if m and m["share"] < 0.95:
                notes.append(f"{name} delivered {m['share'] * 100:.0f}% of offered")
        if notes:
            line += "; " + ", ".join(notes)
        key_lines.append(line)
    keys_text = "\n".join(key_lines) + "\n"
    write(out, "compression-table.txt", table)
    write(out, "compression-keys.txt", keys_text)
    print(table)
    print(keys_text, end="")
    return table, keys_text, []


def write(out, name, text):
    with open(os.path.join(out, name), "w") as f:
        f.write(text)


def write_docs(scenario, out, table, keys_text, plots):
    doc = os.path.join(ROOT, "docs", "benchmarks.md")
    machine = open(os.path.join(out, f"{scenario}-machine.txt")).read()
    begin = f"<!-- {scenario}-results:begin (generated by bench/{scenario}.sh --write-docs; edits here are overwritten) -->"
    end = f"<!-- {scenario}-results:end -->"
    block = [begin, "", "Machine and run:", "", machine.rstrip("\n"), "", "Key lines:", "", "```",
             keys_text.rstrip("\n"), "```", "", "Medians per case:", "", "```", table.rstrip("\n"), "```", ""]
    for name, alt in plots:
        block += [f"![{alt}](bench/{name})", ""]
    block.append(end)
    text = open(doc).read()
    start = text.find(f"<!-- {scenario}-results:begin")
    stop = text.find(end)
    if start >= 0 and stop > start:
        text = text[:start] + "\n".join(block) + text[stop + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(block) + "\n"
    with open(doc, "w") as f:
        f.write(text)
    print(f"push-report: wrote {doc}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["fanout", "idle", "catchup", "hostile", "compression"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--write-docs", action="store_true")
    a = ap.parse_args()
    table, keys_text, plots = {"fanout": fanout, "idle": idle, "catchup": catchup, "hostile": hostile,
                               "compression": compression}[a.scenario](a.out)
    if a.write_docs:
        write_docs(a.scenario, a.out, table, keys_text, plots)


if __name__ == "__main__":
    main()
