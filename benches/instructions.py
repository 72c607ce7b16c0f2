#!/usr/bin/env python3
"""Instructions sluice executes per proxied operation, counted by valgrind's callgrind.

CPU time per call on a shared 2-core VM moves by several percent between runs; the count of
instructions barely moves (a few tenths of a percent on unary calls, about 1 % on bidi), so
it shows the effect of a change of a few percent that timing cannot. Only sluice runs under
callgrind (tens of times slower); the upstream and the load generator run natively. Counts
are zeroed after a warm-up and dumped after the measured load, so start-up and shutdown are
not in them.

    python3 benches/instructions.py --binary OLD/sluice --binary target/release/sluice
    python3 benches/instructions.py --workload bidi --binary OLD/sluice --binary NEW/sluice
    python3 benches/instructions.py --binary target/release/h2-relay --binary target/release/sluice
    python3 benches/instructions.py --binary target/release/sluice --keep-dumps /tmp/dumps
        (then: callgrind_annotate --inclusive=yes /tmp/dumps/callgrind.*, to see where they go)

A binary named `h2-relay` (the floor of sluice's HTTP/2 stack, benches/src/bin/h2-relay.rs)
runs with its own flags and takes no sluice flags (`--plugins none` only).

Workloads: `unary` (h2load, instructions per call), `bidi` (bench-client's 64 B ping-pong
on 128 streams, per round trip), `stream` (bench-client's server streaming, per message).
Each binary is measured --runs times, in turn. Needs valgrind (apt-get install valgrind),
h2load and the release bench binaries; builds nothing (benches/run.sh does).

`--plugins chain` loads the benchmark's 3-plugin message chain; `--plugins empty-hooks`
three message hooks that do next to nothing (what three plugin entries cost on their own,
the floor under the chain); `--plugins headers` the harness's headers-only plugin
(`method-acl`, entered once per call). Wasmtime's instance pool
reserves more address space than valgrind can map, so sluice then runs with
SLUICE_WASM_SMALL_MEMORIES (64 MiB plugin memories with explicit bounds checks instead of
4 GiB reservations with guard pages) and a pool of 400 instances: the plugins' own code is
counted a little higher than it runs normally, the host's side of every plugin call as it
is. The plugins are compiled natively into a cache before the counted runs (compiling
under valgrind takes minutes).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (the harness's processes, ports and message bodies)

# Messages per server-streaming call (benches/src/lib.rs, STREAM_REPLIES).
STREAM_REPLIES = 1000


# What the plugins need to run under valgrind (see the module's text).
SMALL_MEMORIES = {"SLUICE_WASM_SMALL_MEMORIES": "1"}
# Instances the pool holds with the chain: 800 memories of 64 MiB fit in valgrind's address
# space (the default 2,000 do not). The chain's plugins now share a few instances; 400 is
# what a chain holding an instance per stream needs (bidi's 128 streams, a few more).
CHAIN_INSTANCES = 400


def is_relay(binary):
    """Whether `binary` is `h2-relay`, which takes its own flags and runs no plugins."""
    return Path(binary).name == "h2-relay"


def count(binary, upstream_port, stats_port, load, work, sluice_args, env, keep=None):
    """Instructions per operation of one sluice process under callgrind; its dump is copied
    into `keep` if given."""
    port = harness.free_port()
    out = work / f"callgrind.{port}"
    if is_relay(binary):
        proxy = harness.relay_command(binary, port, upstream_port)
    else:
        proxy = harness.sluice_command(binary, port, upstream_port, *sluice_args)
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *proxy]
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)
    target = harness.Target(f"{Path(binary).name} under callgrind", port, process)
    try:
        harness.wait_port(port, timeout=120)
        try:
            load(port, warmup=True)
        except RuntimeError:
            if process.poll() is None:
                raise
            log.seek(0)
            raise RuntimeError(f"sluice under callgrind ended: {log.read().decode(errors='replace')[-2000:]}")
        subprocess.run(["callgrind_control", "--zero", str(process.pid)], check=True, capture_output=True)
        before = harness.upstream_calls(stats_port)
        ops, counted = load(port, warmup=False)
        subprocess.run(["callgrind_control", "--dump", str(process.pid)], check=True, capture_output=True)
        # A call sluice answered by itself (no route, upstream down) is no proxied call.
        reached = harness.upstream_calls(stats_port) - before
        if reached != counted:
            raise RuntimeError(f"the load counted {counted}, the upstream {reached}")
    finally:
        target.stop()
    dumps = list(work.glob(f"callgrind.{port}.*"))
    if len(dumps) != 1:
        raise RuntimeError(f"expected one callgrind dump, found {[d.name for d in dumps]}")
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(dumps[0], keep / f"callgrind.{Path(binary).parent.name}-{Path(binary).name}.{port}")
    return total_instructions(dumps[0]) / ops


def plugin_args(work, plugins):
    """sluice's flags and environment for the plugin set `plugins` (harness.PLUGIN_SETS):
    one plugin folder and one compiled-plugin cache for every build."""
    env = {**os.environ, "RUST_LOG": "warn"}
    if plugins == "none":
        return [], env
    env.update(SMALL_MEMORIES)
    folder = harness.plugin_dir(work, "plugins", harness.PLUGIN_SETS[plugins])
    config = work / "instances.toml"
    config.write_text(f"[limits]\nplugin_instances = {CHAIN_INSTANCES}\n")
    args = ["--plugins", str(folder), "--plugin-cache", str(work / "plugin-cache"), "--config", str(config)]
    return args, env


def compile_plugins(binary, upstream_port, args, env):
    """Starts `binary` natively once with the plugin flags `args`, so that the plugins are
    in the cache before it runs under valgrind (where compiling them takes minutes)."""
    port = harness.free_port()
    command = harness.sluice_command(binary, port, upstream_port, *args)
    harness.start(command, port, "sluice compiling the plugins", env=env).stop()


def unary_load(body, calls, warmup_calls):
    """h2load's unary calls; a load returns (operations, what the upstream counts)."""

    def load(port, warmup):
        n = warmup_calls if warmup else calls
        h2load(harness.h2load_command(port, body) + ["-n", str(n)], n)
        return n, n

    return load


def client_load(workload, seconds):
    """bench-client's bidi (ops: round trips) or stream (ops: messages) load; its own
    warm-up second is inside the count, and so are its operations (`all_ops`)."""

    def load(port, warmup):
        command = [str(harness.RELEASE / "bench-client"), "--addr", f"127.0.0.1:{port}",
                   "--streams", "128" if workload == "bidi" else "8", "--streams-per-connection", "32",
                   "--size", "64", "--seconds", str(1 if warmup else seconds), workload]
        out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 300)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if result["errors"]:
            raise RuntimeError(f"bench-client failed: {result['first_error']}")
        if workload == "stream" and result["messages"] != result["ops"] * STREAM_REPLIES:
            raise RuntimeError(f"expected {STREAM_REPLIES} messages per streaming call: {result}")
        # bench-upstream counts a streaming call once, a bidi message each time it echoes it.
        ops = result["all_ops"] * (STREAM_REPLIES if workload == "stream" else 1)
        return ops, result["all_ops"]

    return load


def h2load(command, calls):
    out = subprocess.run(command, capture_output=True, text=True, timeout=600).stdout
    if f"{calls} succeeded, 0 failed, 0 errored, 0 timeout" not in out or " 0 4xx, 0 5xx" not in out:
        raise RuntimeError(f"calls failed:\n{out[-600:]}")


def total_instructions(dump):
    """The dump's instruction total (its `summary:` or `totals:` line)."""
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no instruction total in {dump}")


UNITS = {"unary": "call", "bidi": "round trip", "stream": "message"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", action="append", required=True, help="a sluice build (repeat to compare)")
    parser.add_argument("--workload", choices=sorted(UNITS), default="unary")
    parser.add_argument("--calls", type=int, default=20000, help="unary: measured calls per run")
    parser.add_argument("--warmup", type=int, default=2000, help="unary: calls before the count is zeroed")
    parser.add_argument("--seconds", type=int, default=5, help="bidi, stream: measured seconds per run")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="unary: request message bytes")
    parser.add_argument("--body-mode", choices=["auto", "raw", "message"], default="auto",
                        help="sluice's --body-mode (`message` de-frames every message without plugins)")
    parser.add_argument("--plugins", choices=sorted(harness.PLUGIN_SETS), default="none",
                        help="`chain`: the benchmark's 3-plugin message chain; `empty-hooks`: three "
                             "message hooks that do next to nothing (see above)")
    parser.add_argument("--keep-dumps", type=Path, metavar="DIR",
                        help="copy each run's callgrind dump into DIR (read it with callgrind_annotate)")
    args = parser.parse_args()
    harness.exit_on_sigterm()
    if args.plugins != "none" and any(is_relay(b) for b in args.binary):
        sys.exit("h2-relay runs no plugins: measure it with --plugins none")
    for tool in ("valgrind", "callgrind_control", "h2load"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (valgrind: apt-get install valgrind; h2load: nghttp2-client)")
    unit = UNITS[args.workload]
    what = f"unary {args.size} B call" if args.workload == "unary" else f"{args.workload} {unit}"
    what += f", body mode {args.body_mode}, plugins {args.plugins}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        body = work / "unary.bin"
        body.write_bytes(harness.frame(harness.bench_message(args.size)))
        if args.workload == "unary":
            load = unary_load(body, args.calls, args.warmup)
        else:
            load = client_load(args.workload, args.seconds)
        upstream_port, stats_port = harness.free_port(), harness.free_port()
        upstream = harness.start_upstream(upstream_port, stats_port)
        try:
            results = {binary: [] for binary in args.binary}
            extra, env = plugin_args(work, args.plugins)
            if extra:
                for binary in args.binary:
                    compile_plugins(binary, upstream_port, extra, env)
            for run in range(args.runs):
                for binary in args.binary:
                    per_op = count(binary, upstream_port, stats_port, load, work,
                                   ["--body-mode", args.body_mode, *extra], env, args.keep_dumps)
                    results[binary].append(per_op)
                    print(f"run {run + 1}: {binary}: {per_op:,.0f} instructions per {unit}", flush=True)
        finally:
            upstream.stop()
    first = min(results[args.binary[0]])
    for binary, counts in results.items():
        best = min(counts)
        print(f"{binary}: {best:,.0f} instructions per {what} "
              f"(runs: {', '.join(f'{c:,.0f}' for c in counts)}; {100 * (best / first - 1):+.1f} % against the first)")


if __name__ == "__main__":
    main()
