"""The performance goals of issue #6, judged from one harness run: each comparison is made
round by round (the targets of a round ran back to back, interleaved), then the median of
the rounds taken, so the VM's drift between rounds does not enter it.

Goals:
- sluice without plugins: at least 1.25 times HAProxy's ratio to direct on every
  workload, with a p99 latency no worse than HAProxy's;
- sluice with the 3-plugin chain: at most 10 % below sluice without plugins;
- at most 40 MiB RSS idle with the seven example plugins loaded;
- at most 16 KiB per idle open stream, with 10,000 streams open.
"""

import statistics

SLUICE = "sluice"
CHAIN = "sluice + 3-plugin chain"
HAPROXY = "HAProxy proto h2"
# The h2 crate relaying streams and nothing else: how far a proxy on sluice's stack can go.
RELAY = "h2 relay (floor)"

RATIO_OVER_HAPROXY = 1.25
CHAIN_MAX_COST = 0.10
IDLE_RSS_MAX_MIB = 40
PER_STREAM_MAX_KIB = 16
PER_STREAM_AT = 10_000


def counts(result):
    """A round counts when its calls all succeeded (and there were some)."""
    return result["errors"] == 0 and result["ops"] > 0


def per_round(by_target, a, b):
    """rate of b / rate of a in every round where both counted."""
    if a not in by_target or b not in by_target:
        return []
    return [rb["rate"] / ra["rate"] for ra, rb in zip(by_target[a], by_target[b])
            if counts(ra) and counts(rb) and ra["rate"] > 0]


def median_p99_us(results):
    ok = [r["p99_us"] for r in results if counts(r)]
    return statistics.median(ok) if ok else None


def fmt_us(us):
    """A latency in µs, as ms from 1 ms on (also the harness's tables)."""
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def fmt_times(quotient):
    return f"{quotient:.2f}x"


def fmt_percent(change):
    return f"{change:+.1%}".replace("-", "−")


def spread(values, fmt):
    return fmt(values[0]) if len(values) == 1 else f"rounds {fmt(min(values))} to {fmt(max(values))}"


def over_haproxy_row(workload, by_target):
    goal = f"no plugins: ≥ {RATIO_OVER_HAPROXY}x HAProxy's ratio, p99 no worse — {workload}"
    quotients = per_round(by_target, HAPROXY, SLUICE)
    if not quotients:
        return goal, "HAProxy or sluice not measured, or no round without errors", "–"
    ours, theirs = median_p99_us(by_target[SLUICE]), median_p99_us(by_target[HAPROXY])
    ratio = statistics.median(quotients)
    met = ratio >= RATIO_OVER_HAPROXY and ours <= theirs
    value = f"**{fmt_times(ratio)}** ({spread(quotients, fmt_times)}); p99 {fmt_us(ours)} vs {fmt_us(theirs)}"
    floor = per_round(by_target, HAPROXY, RELAY)
    if floor:
        value += f"; the bare h2 relay: {fmt_times(statistics.median(floor))}"
    return goal, value, "yes" if met else "no"


def chain_row(workload, by_target):
    goal = f"3-plugin chain costs ≤ {CHAIN_MAX_COST:.0%} of the rate without plugins — {workload}"
    costs = [q - 1 for q in per_round(by_target, SLUICE, CHAIN)]
    if not costs:
        return goal, "the chain or sluice not measured, or no round without errors", "–"
    cost = statistics.median(costs)
    within = sum(c >= -CHAIN_MAX_COST for c in costs)
    return (goal, f"**{fmt_percent(cost)}** ({spread(costs, fmt_percent)}; within {CHAIN_MAX_COST:.0%} in {within} of {len(costs)})",
            "yes" if cost >= -CHAIN_MAX_COST else "no")


def memory_rows(idle, seven_rss_kib):
    rows = []
    if seven_rss_kib:
        mib = seven_rss_kib / 1024
        rows.append((f"≤ {IDLE_RSS_MAX_MIB} MiB idle with the seven example plugins", f"**{mib:.1f} MiB**",
                     "yes" if mib <= IDLE_RSS_MAX_MIB else "no"))
    ours = idle.get(SLUICE)
    if ours:
        enough = ours["streams"] >= PER_STREAM_AT and ours["errors"] == 0
        met = "yes" if enough and ours["kib_per_stream"] <= PER_STREAM_MAX_KIB else "no"
        rows.append((f"≤ {PER_STREAM_MAX_KIB} KiB per idle open stream at {PER_STREAM_AT:,} streams",
                     f"**{ours['kib_per_stream']:.1f} KiB** at {ours['streams']:,} streams, {ours['errors']} errors", met))
    return rows


def table(runs, idle, seven_rss_kib):
    """The goals as a markdown table: `runs` maps workload -> target -> per-round results
    (rate, errors, ops, p99_us), `idle` target -> idle-stream result, `seven_rss_kib` the
    idle RSS with the seven plugins (or None)."""
    rows = [over_haproxy_row(w, by_target) for w, by_target in runs.items()]
    rows += [chain_row(w, by_target) for w, by_target in runs.items()]
    rows += memory_rows(idle, seven_rss_kib)
    if not rows:
        return ""
    lines = ["### Against the goals", "",
             "Each comparison round by round (the same round's rates), then the median of the rounds.", "",
             "| goal | this run | met |", "|---|---|---|"]
    lines += [f"| {goal} | {value} | {met} |" for goal, value, met in rows]
    return "\n".join(lines)
