#!/usr/bin/awk -f
# SPDX-License-Identifier: Apache-2.0
# Reads bench/wire.sh's per-run TSV (upstream op clients target round ops
# seconds throughput p50_us p99_us max_us proxy_cpu_us_per_op
# upstream_cpu_us_per_op) and prints the table of medians;
# writes the medians to `summary` (TSV) and one key line per comparison to
# `keys`. Ratios and added latencies are medians of per-round comparisons:
# each target against the direct run of the same round, which ran seconds
# apart, so slow drifts of a shared machine cancel out.
#   awk -f wire-report.awk -v summary=FILE -v keys=FILE runs.tsv

function median(list,    v, n, i, j, t) {
    n = split(list, v, " ")
    if (n == 0) return 0
    for (i = 2; i <= n; i++) {
        t = v[i] + 0
        for (j = i - 1; j >= 1 && v[j] + 0 > t; j--) v[j + 1] = v[j]
        v[j + 1] = t
    }
    return n % 2 ? v[(n + 1) / 2] + 0 : (v[n / 2] + v[n / 2 + 1]) / 2
}
function add(arr, key, value) { arr[key] = (key in arr) ? arr[key] " " value : value }
function ratio(a, b) { return b > 0 ? a / b : 0 }

BEGIN { FS = OFS = "\t" }
NR == 1 { next }
{
    up = $1; op = $2; c = $3; target = $4; round = $5
    group = up SUBSEP op SUBSEP c
    if (!(group in seen_group)) { seen_group[group] = 1; groups[++ngroups] = group }
    if (!(target in seen_target)) { seen_target[target] = 1; targets[++ntargets] = target }
    key = group SUBSEP target
    add(thr, key, $8); add(p50, key, $9); add(p99, key, $10); add(mx, key, $11)
    add(pcpu, key, $12); add(ucpu, key, $13)
    rounds[key]++
    r = group SUBSEP round
    run_thr[r, target] = $8; run_p50[r, target] = $9; run_p99[r, target] = $10
    round_keys[r] = group
}
END {
    # Per-round comparisons.
    for (r in round_keys) {
        group = round_keys[r]
        for (t = 1; t <= ntargets; t++) {
            target = targets[t]
            if (!((r, target) in run_thr) || !((r, "direct") in run_thr)) continue
            key = group SUBSEP target
            add(thr_ratio, key, ratio(run_thr[r, target], run_thr[r, "direct"]))
            add(added_p50, key, run_p50[r, target] - run_p50[r, "direct"])
            add(added_p99, key, run_p99[r, target] - run_p99[r, "direct"])
        }
        if ((r, "changecast") in run_thr && (r, "haproxy") in run_thr) {
            add(cc_hp_thr, group, ratio(run_thr[r, "changecast"], run_thr[r, "haproxy"]))
        }
    }

    print "upstream", "op", "clients", "target", "rounds", "throughput", "p50_us", "p99_us", \
        "max_us", "thr_vs_direct", "added_p50_us", "added_p99_us", "proxy_cpu_us_per_op", \
        "upstream_cpu_us_per_op" > summary
    printf "%-8s %-10s %7s  %-10s %9s %8s %8s %8s %7s %7s %7s %9s %9s\n", "upstream", "op", \
        "clients", "target", "ops/s", "p50_us", "p99_us", "max_us", "/direct", "+p50us", \
        "+p99us", "proxy_cpu", "upstr_cpu"
    for (g = 1; g <= ngroups; g++) {
        group = groups[g]
        split(group, parts, SUBSEP)
        for (t = 1; t <= ntargets; t++) {
            target = targets[t]
            key = group SUBSEP target
            if (!(key in thr)) continue
            m_thr[key] = median(thr[key]); m_ratio[key] = median(thr_ratio[key])
            m_a50[key] = median(added_p50[key]); m_a99[key] = median(added_p99[key])
            m_pcpu[key] = median(pcpu[key]); m_ucpu[key] = median(ucpu[key])
            print parts[1], parts[2], parts[3], target, rounds[key], sprintf("%.1f", m_thr[key]), \
                median(p50[key]), median(p99[key]), median(mx[key]), sprintf("%.3f", m_ratio[key]), \
                sprintf("%.1f", m_a50[key]), sprintf("%.1f", m_a99[key]), \
                sprintf("%.2f", m_pcpu[key]), sprintf("%.2f", m_ucpu[key]) > summary
            printf "%-8s %-10s %7s  %-10s %9.0f %8.1f %8.1f %8.0f %7.3f %7.1f %7.1f %9.1f %9.1f\n", \
                parts[1], parts[2], parts[3], target, m_thr[key], median(p50[key]), \
                median(p99[key]), median(mx[key]), m_ratio[key], m_a50[key], m_a99[key], \
                m_pcpu[key], m_ucpu[key]
        }
    }

    for (g = 1; g <= ngroups; g++) {
        group = groups[g]
        split(group, parts, SUBSEP)
        cc = group SUBSEP "changecast"; hp = group SUBSEP "haproxy"
        prefix = parts[1] == "mini" ? "wire" : "wire[" parts[1] "]"
        line = sprintf("%s %s c=%s:", prefix, parts[2], parts[3])
        if (cc in m_ratio)
            line = line sprintf(" changecast/direct throughput %.2f, added p50 %.0fus p99 %.0fus",
                                m_ratio[cc], m_a50[cc], m_a99[cc])
        if (hp in m_ratio)
            line = line sprintf("; haproxy/direct %.2f, added p50 %.0fus p99 %.0fus",
                                m_ratio[hp], m_a50[hp], m_a99[hp])
        if (group in cc_hp_thr)
            line = line sprintf("; changecast/haproxy throughput %.2f, proxy CPU per op %.1fus vs %.1fus",
                                median(cc_hp_thr[group]), m_pcpu[cc], m_pcpu[hp])
        print line > keys
    }
}
