#!/usr/bin/env python3
"""A/B of two sluice builds: proxy CPU per call (from /proc) and rate, interleaved rounds
(the order flips every round), medians and how many rounds B used less CPU than A.

For checking one optimization, where the full harness is too coarse: throughput on a
shared 2-core machine drifts by ±10 % between rounds, CPU per call in the same round much
less. Needs the release binaries (`benches/run.sh` builds them, or
`cargo build --release -p sluice-bench`) and, for --plugins chain, the plugins
(`scripts/build-plugins.sh`). All traffic stays on 127.0.0.1; only processes this script
started are stopped.

    python3 benches/ab.py --a OLD/sluice --b target/release/sluice --workload bidi --plugins chain
    python3 benches/ab.py --a target/release/sluice --b target/release/sluice --workload bidi \
        --plugins none --plugins-b chain
    python3 benches/ab.py --a OLD/sluice --wasm-a OLD/target/wasm32-wasip2/release \
        --b target/release/sluice --workload bidi --plugins chain
    python3 benches/ab.py --a S --wasm-a OLD/target/wasm32-wasip2/release --b S \
        --workload unary64 --plugins headers          (same proxy, plugins built from two SDKs)
"""

import argparse
import statistics
import tempfile
from pathlib import Path

import harness

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="the sluice binary to compare against")
    parser.add_argument("--b", required=True, help="the sluice binary to compare")
    parser.add_argument("--workload", choices=["unary64", "unary16k", "bidi", "stream"], default="unary64")
    parser.add_argument("--plugins", choices=sorted(harness.PLUGIN_SETS), default="none",
                        help="the plugins both builds load (`chain`: the benchmark's 3-plugin message chain; "
                             "`empty-hooks`: three message hooks that do next to nothing; `headers`: one "
                             "headers-only plugin, method-acl)")
    parser.add_argument("--plugins-b", choices=sorted(harness.PLUGIN_SETS),
                        help="other plugins for B (the same --a and --b binary then compares plugin sets)")
    parser.add_argument("--wasm-a", metavar="DIR",
                        help="the folder A's plugins come from (default: this tree's build), for an A that "
                             "speaks another plugin interface (a build of an older commit, with its plugins)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args()
    harness.exit_on_sigterm()
    harness.PROXY_THREADS = 2

    with tempfile.TemporaryDirectory(prefix="sluice-ab-") as tmp:
        work = Path(tmp)
        upstream_port, stats_port = harness.free_port(), harness.free_port()
        upstream = harness.start_upstream(upstream_port, stats_port)
        plugins = {"A": harness.PLUGIN_SETS[args.plugins], "B": harness.PLUGIN_SETS[args.plugins_b or args.plugins]}
        targets = []
        try:
            wasm = {"A": Path(args.wasm_a) if args.wasm_a else None, "B": None}
            for name, binary in (("A", args.a), ("B", args.b)):
                targets.append(harness.start_sluice(work, upstream_port, name, plugins[name], Path(binary), wasm[name]))

            _, _, run = harness.all_workloads(work, args.seconds, stats_port)[args.workload]
            cpu = {"A": [], "B": []}
            rate = {"A": [], "B": []}
            for round_ in range(args.rounds):
                order = targets if round_ % 2 == 0 else targets[::-1]
                for target in order:
                    result = harness.measure(target, lambda: run(target))
                    if result["errors"] or not result["cpu_us_per_op"]:
                        raise SystemExit(f"round {round_ + 1}: {target.name} had errors: {result}")
                    cpu[target.name].append(result["cpu_us_per_op"])
                    rate[target.name].append(result["rate"])
                print(f"round {round_ + 1}: CPU per op A {cpu['A'][-1]:.1f} µs, B {cpu['B'][-1]:.1f} µs; "
                      f"rate A {rate['A'][-1]:,.0f}/s, B {rate['B'][-1]:,.0f}/s", flush=True)
            wins = sum(b < a for a, b in zip(cpu["A"], cpu["B"]))
            a, b = statistics.median(cpu["A"]), statistics.median(cpu["B"])
            sets = args.plugins if not args.plugins_b else f"A {args.plugins}, B {args.plugins_b}"
            print(f"{args.workload}, plugins {sets}: median proxy CPU per op A {a:.1f} µs, B {b:.1f} µs "
                  f"({(b / a - 1) * 100:+.1f} %), B lower in {wins} of {args.rounds} rounds; median rate "
                  f"A {statistics.median(rate['A']):,.0f}/s, B {statistics.median(rate['B']):,.0f}/s")
        finally:
            for target in targets:
                target.stop()
            upstream.stop()


if __name__ == "__main__":
    main()
