#!/usr/bin/env python3
"""Sluice benchmark harness: one run, interleaved, the same workloads direct to a tonic echo
upstream and through each proxy; prints and writes markdown tables and an SVG chart.

Called by benches/run.sh (which builds everything first). All traffic stays on 127.0.0.1;
only processes this script started are stopped, by PID.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import goals

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
WASM = ROOT / "target" / "wasm32-wasip2" / "release"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Threads (nginx: worker processes) every proxy gets; set by --proxy-threads.
PROXY_THREADS = os.cpu_count() or 2


def exit_on_sigterm():
    """SIGTERM ends the script through its `finally` blocks, which stop the processes it
    started (Python's default for SIGTERM is to die on the spot and leave them running)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def pids_of(process):
    """The process and its children (nginx workers)."""
    pids = [process.pid]
    try:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(process.pid)], capture_output=True, text=True).stdout
        pids += [int(p) for p in out.split()]
    except OSError:
        pass
    return pids


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / CLK_TCK


def memory_kib(pids, key):
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class Target:
    def __init__(self, name, port, process=None):
        self.name, self.port, self.process = name, port, process

    def pids(self):
        return pids_of(self.process) if self.process else []

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(command, port, name, **kwargs):
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, **kwargs)
    try:
        wait_port(port)
    except RuntimeError:
        process.kill()
        log.seek(0)
        raise RuntimeError(f"{name} did not start: {log.read().decode(errors='replace')[-2000:]}")
    return Target(name, port, process)


# The 3-plugin message chain: (file stem, crate, config); `redact-fields` matches no field.
CHAIN_PLUGINS = [
    ("10-size", "size_limit", "max_request_bytes = 1048576\n"),
    ("20-redact", "redact_fields", "request_fields = [9]\nresponse_fields = []\nmethods = [\"*\"]\n"),
    ("30-dedupe", "dedupe", ""),
]

# Three message hooks that do next to nothing (size-limit with a limit no message
# reaches): what three plugin entries cost on their own, the floor under CHAIN_PLUGINS.
EMPTY_HOOK_PLUGINS = [(f"{n}0-size", "size_limit", "max_request_bytes = 1048576\n") for n in (1, 2, 3)]

# One headers-only plugin: method-acl allowing the benchmark's service (every call enters it
# once, for its request headers).
HEADERS_PLUGINS = [("10-acl", "method_acl", 'allow = ["/bench.Echo/*"]\n')]

# The plugin sets benches/ab.py and benches/instructions.py take (`--plugins`).
PLUGIN_SETS = {"none": None, "headers": HEADERS_PLUGINS, "chain": CHAIN_PLUGINS, "empty-hooks": EMPTY_HOOK_PLUGINS}


def plugin_dir(work, name, plugins, wasm=None):
    """A plugin folder for target `name`: `plugins` copied from `wasm` (default: this
    tree's build)."""
    folder = work / name
    folder.mkdir()
    for stem, crate, config in plugins:
        shutil.copy((wasm or WASM) / f"{crate}.wasm", folder / f"{stem}.wasm")
        if config:
            (folder / f"{stem}.toml").write_text(config)
    return folder


def sluice_command(binary, port, upstream, *extra):
    """How every benchmark runs sluice: on `port`, every method to `upstream`, no access
    log, no folder watch, PROXY_THREADS threads, then `extra` flags."""
    return [str(binary), "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{upstream}",
            "--no-access-log", "--no-watch", "--threads", str(PROXY_THREADS), *extra]


def start_sluice(work, upstream, name, plugins=None, binary=None, wasm=None):
    port = free_port()
    command = sluice_command(binary or RELEASE / "sluice", port, upstream)
    if plugins is not None:
        command += ["--plugins", str(plugin_dir(work, name, plugins, wasm))]
    return start(command, port, name, env={**os.environ, "RUST_LOG": "warn"})


def start_upstream(port, stats_port):
    """The tonic echo upstream, counting its calls on `stats_port`."""
    return start([str(RELEASE / "bench-upstream"), "--listen", f"127.0.0.1:{port}", "--stats", f"127.0.0.1:{stats_port}"],
                 port, "upstream")


def relay_command(binary, port, upstream):
    """How every benchmark runs `h2-relay`: on `port`, to `upstream`, PROXY_THREADS threads."""
    return [str(binary), "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{upstream}",
            "--threads", str(PROXY_THREADS)]


def start_relay(upstream):
    """`h2-relay`: the h2 crate relaying every stream and nothing else, the floor of the
    stack sluice is built on (see benches/src/bin/h2-relay.rs)."""
    port = free_port()
    return start(relay_command(RELEASE / "h2-relay", port, upstream), port, goals.RELAY)


def start_nginx(work, upstream):
    if not shutil.which("nginx"):
        return None
    port = free_port()
    prefix = work / "nginx"
    (prefix / "logs").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
worker_processes {PROXY_THREADS};
worker_rlimit_nofile 65535;
error_log {prefix}/logs/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 30000; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  keepalive_requests 10000000;
  http2_max_concurrent_streams 1000;
  client_max_body_size 0;
  upstream echo {{ server 127.0.0.1:{upstream}; keepalive 64; keepalive_requests 10000000; }}
  server {{
    listen 127.0.0.1:{port} http2;
    location / {{ grpc_pass grpc://echo; grpc_read_timeout 300s; grpc_send_timeout 300s; }}
  }}
}}
""")
    return start(["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"], port, "nginx grpc_pass")


def start_haproxy(work, upstream):
    if not shutil.which("haproxy"):
        return None
    port = free_port()
    conf = work / "haproxy.cfg"
    conf.write_text(f"""
global
  nbthread {PROXY_THREADS}
  maxconn 8000
  tune.h2.max-concurrent-streams 1000
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
frontend fe
  bind 127.0.0.1:{port} proto h2
  default_backend be
backend be
  http-reuse always
  server echo 127.0.0.1:{upstream} proto h2
""")
    return start(["haproxy", "-f", str(conf), "-db"], port, goals.HAPROXY)


def upstream_calls(stats_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{stats_port}/", timeout=5) as reply:
        return int(reply.read().decode().strip())


def frame(message):
    return bytes([0]) + len(message).to_bytes(4, "big") + message


def bench_message(size, tag=1):
    """Same shape as sluice_bench::message: protobuf field 1 (bytes), `size` bytes in all."""
    body = size - 2
    while body + 1 + len(varint(body)) > size:
        body -= 1
    out = bytes([0x0A]) + varint(body) + tag.to_bytes(8, "little")
    return out + b"x" * (size - len(out))


def varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def h2load_command(port, body):
    """h2load's unary load on `port`: 4 connections x 32 streams, sending the framed `body`
    (add -D seconds or -n calls)."""
    return ["h2load", "-t", "1", "-c", "4", "-m", "32", "-H", "content-type: application/grpc",
            "-H", "te: trailers", "-d", str(body), f"http://127.0.0.1:{port}/bench.Echo/Unary"]


def run_h2load(target, work, size, seconds, stats_port):
    body = work / f"unary-{size}.bin"
    if not body.exists():
        body.write_bytes(frame(bench_message(size)))
    log = work / "h2load.log"
    command = h2load_command(target.port, body)
    # Warm-up as a run of its own, not h2load's --warm-up-time: the proxy's CPU is read
    # around the measured run, so it must hold only the calls that are counted.
    subprocess.run(command + ["-D", "1"], capture_output=True, timeout=60)
    before = upstream_calls(stats_port)
    out = subprocess.run(command + ["-D", str(seconds), "--log-file", str(log)],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    after = upstream_calls(stats_port)
    requests = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not requests or not codes:
        return {"ops": 0, "rate": 0, "errors": 1, "p50_us": 0, "p99_us": 0, "note": out[-300:]}
    succeeded = int(requests.group(4))
    errors = sum(int(requests.group(i)) for i in (5, 6, 7)) + sum(int(codes.group(i)) for i in (2, 3, 4))
    # Every success must have reached the upstream (a proxy answering by itself is an error).
    errors += max(0, succeeded - (after - before))
    latencies = sorted(int(line.split("\t")[2]) for line in log.read_text().splitlines() if line.count("\t") >= 2)
    return {"ops": succeeded, "rate": succeeded / seconds, "errors": errors,
            "p50_us": percentile(latencies, 0.5), "p99_us": percentile(latencies, 0.99)}


def percentile(sorted_values, p):
    if not sorted_values:
        return 0
    return sorted_values[round((len(sorted_values) - 1) * p)]


def run_client(target, workload, seconds, streams, size):
    command = [str(RELEASE / "bench-client"), "--addr", f"127.0.0.1:{target.port}", "--streams", str(streams),
               "--streams-per-connection", "32", "--size", str(size), "--seconds", str(seconds), workload]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    try:
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"ops": 0, "rate": 0, "errors": 1, "p50_us": 0, "p99_us": 0, "note": out.stderr[-300:]}
    count = result["messages"] if workload == "stream" else result["ops"]
    result["rate"] = count / seconds
    return result


def all_workloads(work, seconds, stats_port):
    """key -> (name, unit, run(target)) of every rate workload."""
    return {
        "unary64": ("unary 64 B", "calls/s", lambda t: run_h2load(t, work, 64, seconds, stats_port)),
        "unary16k": ("unary 16 KiB", "calls/s", lambda t: run_h2load(t, work, 16384, seconds, stats_port)),
        "bidi": ("bidi 64 B ping-pong", "round trips/s", lambda t: run_client(t, "bidi", seconds, 128, 64)),
        "stream": ("server streaming 64 B", "messages/s", lambda t: run_client(t, "stream", seconds, 8, 64)),
    }


def measure(target, run):
    pids = target.pids()
    cpu_before = cpu_seconds(pids)
    result = run()
    cpu = cpu_seconds(pids) - cpu_before
    # bench-client's warm-up second is in the CPU too: its ops count as well (h2load warms up
    # in a run of its own).
    ops = result.get("all_ops", result["ops"])
    result["cpu_us_per_op"] = (cpu * 1e6 / ops) if target.process and ops else None
    result["peak_rss_kib"] = memory_kib(pids, "VmHWM") if target.process else None
    return result


def idle_streams(target, streams):
    """RSS growth of the proxy while `streams` idle bidi streams are open through it."""
    command = [str(RELEASE / "bench-client"), "--addr", f"127.0.0.1:{target.port}", "--streams", str(streams),
               "--streams-per-connection", "100", "--size", "64", "idle"]
    pids = target.pids()
    before = memory_kib(pids, "VmRSS")
    client = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = client.stdout.readline().split()
    time.sleep(1.0)
    during = memory_kib(pids, "VmRSS")
    try:
        out, _ = client.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        client.kill()
        out, _ = client.communicate()
    try:
        result = json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        result = {"errors": streams, "ops": 0}
    opened = int(ready[1]) if len(ready) == 2 else 0
    errors = result["errors"] + (streams - opened) + (streams - result["ops"])
    return {"streams": streams, "errors": errors, "rss_before_kib": before, "rss_during_kib": during,
            "kib_per_stream": (during - before) / streams if streams else 0}


def machine():
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores ({model}), Linux {platform.release()}, {time.strftime('%Y-%m-%d')}"


def table(workload, unit, rows):
    lines = [f"### {workload}", "", f"| target | rate ({unit}) | ratio to direct | p50 | p99 | errors | proxy CPU per op | peak RSS |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        cpu = f"{r['cpu_us_per_op']:.1f} µs" if r.get("cpu_us_per_op") is not None else "–"
        rss = f"{r['peak_rss_kib'] / 1024:.1f} MiB" if r.get("peak_rss_kib") else "–"
        lines.append(f"| {name} | {r['rate']:,.0f} | {r['ratio']:.2f} | {goals.fmt_us(r['p50_us'])} | {goals.fmt_us(r['p99_us'])} | {r['errors']} | {cpu} | {rss} |")
    return "\n".join(lines)


def chart(results, names, path):
    """Grouped bars: ratio to direct per workload and target, a colour per target and a
    legend below the chart (three columns)."""
    colors = ["#888888", "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a",
              "#9467bd", "#d62728", "#8c564b", "#e377c2", "#17becf"]
    workloads = list(results)
    width, plot_height, left, bottom = 900, 360, 60, 60
    columns, row_height = 3, 18
    height = plot_height + row_height * -(-len(names) // columns)
    group = (width - left - 20) / len(workloads)
    bar = group / (len(names) + 1)
    scale = (plot_height - bottom - 30) / 1.1
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="18" font-size="14">Throughput as a ratio to direct (same run, higher is better)</text>']
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = plot_height - bottom - tick * scale
        svg.append(f'<line x1="{left}" x2="{width - 20}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{tick:.2f}</text>')
    for gi, workload in enumerate(workloads):
        x0 = left + gi * group + bar / 2
        for ni, name in enumerate(names):
            r = results[workload].get(name)
            if not r:
                continue
            h = min(r["ratio"], 1.1) * scale
            x = x0 + ni * bar
            svg.append(f'<rect x="{x:.1f}" y="{plot_height - bottom - h:.1f}" width="{bar * 0.9:.1f}" height="{h:.1f}" fill="{colors[ni % len(colors)]}"><title>{name}: {r["ratio"]:.2f}</title></rect>')
        svg.append(f'<text x="{left + gi * group + group / 2:.1f}" y="{plot_height - bottom + 16}" text-anchor="middle">{workload}</text>')
    column_width = (width - left) / columns
    for ni, name in enumerate(names):
        x = left + (ni % columns) * column_width
        y = plot_height - 22 + (ni // columns) * row_height
        svg.append(f'<rect x="{x:.0f}" y="{y}" width="10" height="10" fill="{colors[ni % len(colors)]}"/><text x="{x + 14:.0f}" y="{y + 9}">{name}</text>')
    svg.append("</svg>")
    path.write_text("\n".join(svg))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--idle-streams", type=int, default=10000)
    parser.add_argument("--out", default=str(ROOT / "benches" / "results"))
    parser.add_argument("--targets", default="all", help="comma-separated: direct,sluice,headers,chain,relay,haproxy,nginx "
                                                             "(relay: the bare h2 crate relaying streams, the floor of sluice's stack)")
    parser.add_argument("--workloads", default="all", help="comma-separated: unary64,unary16k,bidi,stream,idle")
    parser.add_argument("--baseline", metavar="SLUICE_BINARY",
                        help="another sluice binary (e.g. a build of an older commit): every sluice target is "
                             "also measured with it, in the same interleaved rounds, named '... [baseline]'")
    parser.add_argument("--baseline-wasm", metavar="DIR",
                        help="the folder the baseline's plugins come from (NAME.wasm as scripts/build-plugins.sh "
                             "makes them), for a baseline that speaks another plugin interface; default: this "
                             "tree's plugins")
    parser.add_argument("--proxy-threads", type=int, default=os.cpu_count() or 2,
                        help="threads for every proxy: sluice --threads, HAProxy nbthread, nginx worker_processes")
    args = parser.parse_args()
    exit_on_sigterm()
    global PROXY_THREADS
    PROXY_THREADS = args.proxy_threads
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    upstream_port, stats_port = free_port(), free_port()
    targets = []
    try:
        upstream = start_upstream(upstream_port, stats_port)
        wanted_targets = None if args.targets == "all" else set(args.targets.split(","))
        wanted_workloads = None if args.workloads == "all" else set(args.workloads.split(","))

        def want(key):
            return wanted_targets is None or key in wanted_targets

        targets.append(Target("direct", upstream_port))
        sluice_targets = []
        if want("sluice"):
            sluice_targets.append((goals.SLUICE, None))
        if want("headers"):
            sluice_targets.append(("sluice + headers plugin", HEADERS_PLUGINS))
        if want("chain"):
            sluice_targets.append((goals.CHAIN, CHAIN_PLUGINS))
        for name, plugins in sluice_targets:
            targets.append(start_sluice(work, upstream_port, name, plugins))
            if args.baseline:
                targets.append(start_sluice(work, upstream_port, f"{name} [baseline]", plugins, Path(args.baseline),
                                            Path(args.baseline_wasm) if args.baseline_wasm else None))
        if want("relay"):
            targets.append(start_relay(upstream_port))
        for key, starter, label in (("haproxy", start_haproxy, "HAProxy"), ("nginx", start_nginx, "nginx")):
            if not want(key):
                continue
            target = starter(work, upstream_port)
            if target:
                targets.append(target)
            else:
                print(f"{label} is not installed: measured without it", file=sys.stderr)
        names = [t.name for t in targets]
        workloads = {name: (unit, run) for key, (name, unit, run) in all_workloads(work, args.seconds, stats_port).items()
                     if wanted_workloads is None or key in wanted_workloads}
        runs = {w: {n: [] for n in names} for w in workloads}
        for round_ in range(args.rounds):
            for workload, (_, run) in workloads.items():
                order = targets if round_ % 2 == 0 else list(reversed(targets))
                for target in order:
                    result = measure(target, lambda: run(target))
                    runs[workload][target.name].append(result)
                    print(f"round {round_ + 1} {workload:<22} {target.name:<26} {result['rate']:>10,.0f}/s errors {result['errors']}", file=sys.stderr, flush=True)
        results = {}
        for workload, by_target in runs.items():
            results[workload] = {}
            direct_rates = [r["rate"] for r in by_target["direct"]]
            for name, rs in by_target.items():
                ok = [r for r in rs if goals.counts(r)]
                if not ok:
                    results[workload][name] = {"rate": 0, "ratio": 0, "p50_us": 0, "p99_us": 0, "errors": sum(r["errors"] for r in rs), "cpu_us_per_op": None, "peak_rss_kib": None}
                    continue
                ratios = [r["rate"] / d for r, d in zip(rs, direct_rates) if r in ok and d > 0]
                results[workload][name] = {
                    "rate": statistics.median(r["rate"] for r in ok),
                    "ratio": statistics.median(ratios) if ratios else 0,
                    "p50_us": statistics.median(r["p50_us"] for r in ok),
                    "p99_us": statistics.median(r["p99_us"] for r in ok),
                    "errors": sum(r["errors"] for r in rs),
                    "cpu_us_per_op": statistics.median(r["cpu_us_per_op"] for r in ok) if ok[0].get("cpu_us_per_op") is not None else None,
                    "peak_rss_kib": max(r["peak_rss_kib"] or 0 for r in ok) or None,
                }
        run_idle = wanted_workloads is None or "idle" in wanted_workloads
        # Every target gets the same streams. (The chain's plugins are stateless, so an open
        # stream holds no instance; a baseline from before that, whose `dedupe` held one per
        # stream, hits the instance pool's cap and shows it in the errors column.)
        idle = {t.name: idle_streams(t, args.idle_streams) for t in targets if t.process and run_idle}
        # Memory with the seven example plugins loaded, idle.
        seven_rss = None
        if run_idle:
            seven = start_sluice(work, upstream_port, "seven", [
                ("10-auth", "auth_token", (ROOT / "plugins/auth-token/config.toml").read_text()),
                ("20-acl", "method_acl", (ROOT / "plugins/method-acl/config.toml").read_text()),
                ("30-size", "size_limit", (ROOT / "plugins/size-limit/config.toml").read_text()),
                ("40-redact", "redact_fields", (ROOT / "plugins/redact-fields/config.toml").read_text()),
                ("50-dedupe", "dedupe", ""),
                ("60-hello", "hello_rewrite", (ROOT / "plugins/hello-rewrite/config.toml").read_text()),
                ("70-audit", "frame_audit", ""),
            ])
            # Idle: start-up done, and what compiling the plugins freed handed back (sluice's
            # jemalloc returns freed pages after about a second).
            time.sleep(3.0)
            seven_rss = memory_kib(seven.pids(), "VmRSS")
            seven.stop()

        units = {w: u for w, (u, _) in workloads.items()}
        report = [f"Machine: {machine()}. Load generator, proxy and upstream share the cores.",
                  f"Each workload: {args.rounds} interleaved rounds of {args.seconds} s (after a 1 s warm-up); medians; "
                  "ratio = rate through the target / rate direct in the same round. Runs with errors do not count.",
                  "Unary: h2load (nghttp2), 4 connections x 32 streams, gRPC-framed body; bidi: 128 streams ping-pong; "
                  f"server streaming: 8 streams, {1000} replies per call. sluice runs with the access log off.", ""]
        for workload, by_name in results.items():
            report.append(table(workload, units[workload], [(n, by_name[n]) for n in names]))
            report.append("")
        if idle:
            report += ["### Idle bidi streams (100 per client connection), memory per open stream", "",
                       "| target | streams | RSS before | RSS with the streams open | per stream | errors |", "|---|---|---|---|---|---|"]
            for name, r in idle.items():
                report.append(f"| {name} | {r['streams']:,} | {r['rss_before_kib'] / 1024:.1f} MiB | {r['rss_during_kib'] / 1024:.1f} MiB | {r['kib_per_stream']:.1f} KiB | {r['errors']} |")
        if seven_rss:
            report += ["", f"Idle RSS of sluice with the seven example plugins loaded (3 s after start): **{seven_rss / 1024:.1f} MiB**.", ""]
        if report[-1] != "":
            report.append("")
        report += [goals.table(runs, idle, seven_rss), ""]
        text = "\n".join(report)
        (out / "latest.md").write_text(text)
        if results:
            chart(results, names, out / "chart.svg")
        (out / "latest.json").write_text(json.dumps({"results": results, "idle": idle, "seven_plugins_rss_kib": seven_rss}, indent=1))
        print(text)
    finally:
        for target in reversed(targets):
            target.stop()
        if "upstream" in locals():
            upstream.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
