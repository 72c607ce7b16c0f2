#!/usr/bin/env python3
"""Instructions sluice executes per proxied unary call, counted by valgrind's callgrind.

CPU time per call on a shared 2-core VM moves by several percent between runs; the count of
instructions barely moves (a few tenths of a percent), so it shows the effect of a change of
a few percent that timing cannot. Only sluice runs under callgrind (tens of times slower);
the upstream and h2load run natively. Counts are zeroed after a warm-up and dumped after the
measured calls, so start-up and shutdown are not in them.

    python3 benches/instructions.py --binary OLD/sluice --binary target/release/sluice

Each binary is measured --runs times, in turn; prints instructions per call for each run.
Needs valgrind (apt-get install valgrind) and h2load; builds nothing (benches/run.sh does).
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (the harness's processes, ports and message bodies)


def count(binary, upstream_port, stats_port, body, calls, warmup, work):
    """Instructions per call of one sluice process under callgrind."""
    port = harness.free_port()
    out = work / f"callgrind.{port}"
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(binary),
               "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{upstream_port}",
               "--no-access-log", "--no-watch", "--threads", str(harness.PROXY_THREADS)]
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    target = harness.Target("sluice under callgrind", port, process)
    try:
        harness.wait_port(port, timeout=120)
        load = harness.h2load_command(port, body)
        h2load(load, warmup)
        subprocess.run(["callgrind_control", "--zero", str(process.pid)], check=True, capture_output=True)
        before = harness.upstream_calls(stats_port)
        h2load(load, calls)
        subprocess.run(["callgrind_control", "--dump", str(process.pid)], check=True, capture_output=True)
        # A call sluice answered by itself (no route, upstream down) is no proxied call.
        reached = harness.upstream_calls(stats_port) - before
        if reached != calls:
            raise RuntimeError(f"{calls} calls sent, {reached} reached the upstream")
    finally:
        target.stop()
    dumps = list(work.glob(f"callgrind.{port}.*"))
    if len(dumps) != 1:
        raise RuntimeError(f"expected one callgrind dump, found {[d.name for d in dumps]}")
    return total_instructions(dumps[0]) / calls


def h2load(command, calls):
    out = subprocess.run(command + ["-n", str(calls)], capture_output=True, text=True, timeout=600).stdout
    if f"{calls} succeeded, 0 failed, 0 errored, 0 timeout" not in out or " 0 4xx, 0 5xx" not in out:
        raise RuntimeError(f"calls failed:\n{out[-600:]}")


def total_instructions(dump):
    """The dump's instruction total (its `summary:` or `totals:` line)."""
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no instruction total in {dump}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", action="append", required=True, help="a sluice build (repeat to compare)")
    parser.add_argument("--calls", type=int, default=20000, help="measured calls per run")
    parser.add_argument("--warmup", type=int, default=2000, help="calls before the count is zeroed")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="request message bytes")
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control", "h2load"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (valgrind: apt-get install valgrind; h2load: nghttp2-client)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        body = work / "unary.bin"
        body.write_bytes(harness.frame(harness.bench_message(args.size)))
        upstream_port, stats_port = harness.free_port(), harness.free_port()
        upstream = harness.start_upstream(upstream_port, stats_port)
        try:
            results = {binary: [] for binary in args.binary}
            for run in range(args.runs):
                for binary in args.binary:
                    per_call = count(binary, upstream_port, stats_port, body, args.calls, args.warmup, work)
                    results[binary].append(per_call)
                    print(f"run {run + 1}: {binary}: {per_call:,.0f} instructions per call", flush=True)
        finally:
            upstream.stop()
    first = min(results[args.binary[0]])
    for binary, counts in results.items():
        best = min(counts)
        print(f"{binary}: {best:,.0f} instructions per unary {args.size} B call "
              f"(runs: {', '.join(f'{c:,.0f}' for c in counts)}; {100 * (best / first - 1):+.1f} % against the first)")


if __name__ == "__main__":
    main()
