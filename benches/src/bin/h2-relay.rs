//! `h2-relay`: the floor of the HTTP/2 stack sluice is built on. It relays every stream to
//! one upstream with the `h2` crate alone and nothing else: no routing, no gRPC framing, no
//! deadlines, no metrics, no error mapping, no plugins, no TLS, no HTTP/1 refusal, no
//! limits. The benchmark measures it beside sluice and HAProxy (`--targets relay`) to show
//! what any proxy on this stack costs before it does any of a proxy's work.
//!
//! It serves as sluice does: one thread per `--threads`, each with a single-threaded tokio
//! runtime, its own HTTP/2 connection to the upstream and the client connections the
//! accepting thread hands it in turn; the same windows and stream limits as sluice's
//! defaults. A request's headers and trailers go on as they came (with the client's
//! authority), its data frames as they came, and the same for the response. It allocates
//! with jemalloc, as the `sluice` binary does.

use bytes::Bytes;
use clap::Parser;
use h2::{RecvStream, SendStream};
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// sluice's allocator (its defaults: nothing here compiles plugins at start-up).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// sluice's defaults (`[limits]`): per-stream and per-connection windows, open streams.
const STREAM_WINDOW: u32 = 1024 * 1024;
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;
const MAX_CONCURRENT_STREAMS: u32 = 4096;

#[derive(Parser)]
struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:50070")]
    listen: SocketAddr,
    /// The HTTP/2 (prior knowledge) upstream every stream goes to.
    #[arg(long)]
    upstream: SocketAddr,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = std::net::TcpListener::bind(args.listen)?;
    let mut workers = Vec::new();
    for _ in 0..args.threads.max(1) {
        let (hand, connections) = mpsc::unbounded_channel::<std::net::TcpStream>();
        let upstream = args.upstream;
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            if let Err(err) = runtime.block_on(worker(upstream, connections)) {
                eprintln!("h2-relay worker: {err}");
                std::process::exit(1);
            }
        });
        workers.push(hand);
    }
    for (turn, stream) in listener.incoming().enumerate() {
        let stream = stream?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        workers[turn % workers.len()].send(stream)?;
    }
    Ok(())
}

/// One worker: an upstream connection, then every client connection handed to it.
async fn worker(
    upstream: SocketAddr,
    mut connections: mpsc::UnboundedReceiver<std::net::TcpStream>,
) -> anyhow::Result<()> {
    let io = TcpStream::connect(upstream).await?;
    io.set_nodelay(true)?;
    let (sender, driver) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .enable_push(false)
        .handshake::<_, Bytes>(io)
        .await?;
    tokio::spawn(async move {
        if let Err(err) = driver.await {
            eprintln!("h2-relay: upstream connection ended: {err}");
            std::process::exit(1);
        }
    });
    while let Some(stream) = connections.recv().await {
        let io = TcpStream::from_std(stream)?;
        tokio::spawn(serve(io, sender.clone()));
    }
    Ok(())
}

/// One client connection: every stream relayed from a task of its own.
async fn serve(io: TcpStream, upstream: h2::client::SendRequest<Bytes>) {
    let handshake = h2::server::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .handshake::<_, Bytes>(io)
        .await;
    let Ok(mut connection) = handshake else {
        return;
    };
    while let Some(Ok((request, respond))) = connection.accept().await {
        let upstream = upstream.clone();
        tokio::spawn(async move {
            // A stream that fails is reset by dropping its halves; nothing to report.
            let _ = relay(request, respond, upstream).await;
        });
    }
}

/// One stream: the request to the upstream and its response back, both ways at once.
async fn relay(
    request: http::Request<RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    upstream: h2::client::SendRequest<Bytes>,
) -> Result<(), h2::Error> {
    let (head, mut request_body) = request.into_parts();
    let request_ends = request_body.is_end_stream();
    let mut upstream = upstream.ready().await?;
    let (response, mut request_out) =
        upstream.send_request(http::Request::from_parts(head, ()), request_ends)?;
    let up = async {
        if request_ends {
            return Ok(());
        }
        pipe(&mut request_body, &mut request_out).await
    };
    let down = async {
        let (head, mut response_body) = response.await?.into_parts();
        let response_ends = response_body.is_end_stream();
        let mut response_out =
            respond.send_response(http::Response::from_parts(head, ()), response_ends)?;
        if response_ends {
            return Ok(());
        }
        pipe(&mut response_body, &mut response_out).await
    };
    futures_util::future::try_join(up, down).await?;
    Ok(())
}

/// Every data frame of `from` on to `to`, then its trailers (or the end of the stream).
async fn pipe(from: &mut RecvStream, to: &mut SendStream<Bytes>) -> Result<(), h2::Error> {
    while let Some(data) = from.data().await {
        let data = data?;
        // An empty frame (the end of a stream comes as one) carries nothing to relay, and
        // h2 peers count empty frames that do not end a stream as abuse.
        if data.is_empty() {
            continue;
        }
        from.flow_control().release_capacity(data.len())?;
        to.send_data(data, false)?;
    }
    match from.trailers().await? {
        Some(trailers) => to.send_trailers(trailers),
        None => to.send_data(Bytes::new(), true),
    }
}
