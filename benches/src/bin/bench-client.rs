//! `bench-client`: load for the workloads `h2load` cannot drive, printing one JSON line of
//! results. `bidi`: ping-pong on many streams (one message out, its echo back, again);
//! `stream`: server-streaming calls back to back on many streams, counting messages;
//! `idle`: opens many streams, proves each works, prints `ready`, holds them until stdin
//! closes, then ends them and checks each still works.

use bytes::Bytes;
use clap::{Parser, Subcommand};
use sluice_bench::{RawCodec, STREAM_REPLIES, message};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    /// Where to send (host:port).
    #[arg(long)]
    addr: String,
    /// Concurrent streams.
    #[arg(long, default_value_t = 64)]
    streams: usize,
    /// Streams per HTTP/2 connection.
    #[arg(long, default_value_t = 100)]
    streams_per_connection: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Measured seconds (after one warm-up second).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand, Clone, Copy)]
enum Workload {
    Bidi,
    Stream,
    Idle,
}

#[derive(Default)]
struct Tally {
    ops: u64,
    messages: u64,
    /// Ops with the warm-up's: what the proxy's CPU (read around the whole run) served.
    all_ops: u64,
    errors: u64,
    latencies_us: Vec<u32>,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.ops += other.ops;
        self.all_ops += other.all_ops;
        self.messages += other.messages;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn fail(&mut self, error: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
    }
}

async fn channels(args: &Args) -> anyhow::Result<Vec<Channel>> {
    let count = args.streams.div_ceil(args.streams_per_connection).max(1);
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        channels.push(
            Channel::from_shared(format!("http://{}", args.addr))?
                .initial_stream_window_size(1 << 20)
                .initial_connection_window_size(8 << 20)
                .connect()
                .await?,
        );
    }
    Ok(channels)
}

/// One bidi stream: a sender and the replies.
async fn open_bidi(
    channel: Channel,
) -> Result<(mpsc::Sender<Bytes>, tonic::Streaming<Bytes>), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let (tx, rx) = mpsc::channel(1);
    let replies = grpc
        .streaming(
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
            http::uri::PathAndQuery::from_static("/bench.Echo/Bidi"),
            RawCodec,
        )
        .await?
        .into_inner();
    Ok((tx, replies))
}

async fn ping(
    tx: &mpsc::Sender<Bytes>,
    replies: &mut tonic::Streaming<Bytes>,
    out: Bytes,
) -> Result<(), String> {
    tx.send(out.clone()).await.map_err(|e| e.to_string())?;
    match replies.message().await {
        Ok(Some(reply)) if reply == out => Ok(()),
        Ok(Some(_)) => Err("echo differs".into()),
        Ok(None) => Err("stream ended".into()),
        Err(status) => Err(status.to_string()),
    }
}

async fn bidi_stream(
    channel: Channel,
    id: u64,
    size: usize,
    until: Instant,
    measure_from: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let (tx, mut replies) = match open_bidi(channel).await {
        Ok(opened) => opened,
        Err(status) => {
            tally.fail(status);
            return tally;
        }
    };
    let mut n = id << 32;
    while Instant::now() < until {
        n += 1;
        let started = Instant::now();
        match ping(&tx, &mut replies, message(size, n)).await {
            Ok(()) => {
                tally.all_ops += 1;
                if started >= measure_from {
                    tally.ops += 1;
                    tally.messages += 1;
                    tally
                        .latencies_us
                        .push(started.elapsed().as_micros() as u32);
                }
            }
            Err(error) => {
                tally.fail(error);
                return tally;
            }
        }
    }
    drop(tx);
    match replies.message().await {
        Ok(None) => {}
        Ok(Some(_)) => tally.fail("unexpected reply after the end"),
        Err(status) => tally.fail(status),
    }
    tally
}

async fn stream_calls(
    channel: Channel,
    size: usize,
    until: Instant,
    measure_from: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut grpc = tonic::client::Grpc::new(channel);
    while Instant::now() < until {
        let started = Instant::now();
        if let Err(e) = grpc.ready().await {
            tally.fail(e);
            return tally;
        }
        let result = grpc
            .server_streaming(
                tonic::Request::new(message(size, 1)),
                http::uri::PathAndQuery::from_static("/bench.Echo/Stream"),
                RawCodec,
            )
            .await;
        let mut replies = match result {
            Ok(response) => response.into_inner(),
            Err(status) => {
                tally.fail(status);
                return tally;
            }
        };
        let mut count = 0;
        loop {
            match replies.message().await {
                Ok(Some(reply)) if reply.len() == size => count += 1,
                Ok(Some(_)) => {
                    tally.fail("reply of the wrong size");
                    return tally;
                }
                Ok(None) => break,
                Err(status) => {
                    tally.fail(status);
                    return tally;
                }
            }
        }
        if count != STREAM_REPLIES {
            tally.fail(format!("{count} replies instead of {STREAM_REPLIES}"));
            return tally;
        }
        tally.all_ops += 1;
        if started >= measure_from {
            tally.ops += 1;
            tally.messages += count as u64;
            tally
                .latencies_us
                .push(started.elapsed().as_micros() as u32);
        }
    }
    tally
}

async fn idle(args: &Args, channels: Vec<Channel>) -> Tally {
    let mut tally = Tally::default();
    let mut open = Vec::with_capacity(args.streams);
    for i in 0..args.streams {
        let channel = channels[i / args.streams_per_connection].clone();
        match open_bidi(channel).await {
            Ok((tx, mut replies)) => {
                match ping(&tx, &mut replies, message(args.size, i as u64)).await {
                    Ok(()) => open.push((tx, replies)),
                    Err(e) => tally.fail(e),
                }
            }
            Err(status) => tally.fail(status),
        }
    }
    println!("ready {}", open.len());
    // Hold until stdin closes.
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            line.clear();
        }
    })
    .await;
    for (i, (tx, mut replies)) in open.into_iter().enumerate() {
        // A tag unlike the first message's, or a dedupe plugin would rightly drop it.
        let last = message(args.size, (1 << 40) + i as u64);
        match tokio::time::timeout(Duration::from_secs(10), ping(&tx, &mut replies, last)).await {
            Ok(Ok(())) => tally.ops += 1,
            Ok(Err(e)) => tally.fail(e),
            Err(_) => tally.fail("no echo within 10 s after the idle period"),
        }
    }
    tally
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let channels = channels(&args).await?;
    let warm_up = Duration::from_secs(1);
    let measure_from = Instant::now() + warm_up;
    let until = measure_from + Duration::from_secs_f64(args.seconds);
    let mut tally = Tally::default();
    match args.workload {
        Workload::Idle => tally = idle(&args, channels).await,
        workload => {
            let tasks: Vec<_> = (0..args.streams)
                .map(|i| {
                    let channel = channels[i / args.streams_per_connection].clone();
                    match workload {
                        Workload::Bidi => tokio::spawn(bidi_stream(
                            channel,
                            i as u64,
                            args.size,
                            until,
                            measure_from,
                        )),
                        _ => tokio::spawn(stream_calls(channel, args.size, until, measure_from)),
                    }
                })
                .collect();
            for task in tasks {
                match task.await {
                    Ok(t) => tally.merge(t),
                    Err(e) => tally.fail(e),
                }
            }
        }
    }
    tally.latencies_us.sort_unstable();
    println!(
        "{{\"ops\":{},\"all_ops\":{},\"messages\":{},\"errors\":{},\"seconds\":{},\"p50_us\":{},\"p99_us\":{},\"first_error\":{:?}}}",
        tally.ops,
        tally.all_ops,
        tally.messages,
        tally.errors,
        args.seconds,
        percentile(&tally.latencies_us, 0.50),
        percentile(&tally.latencies_us, 0.99),
        tally.first_error.unwrap_or_default()
    );
    Ok(())
}
