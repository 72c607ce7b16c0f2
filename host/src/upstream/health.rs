//! Active health checks: `grpc.health.v1.Health/Check` on a connection of its own per
//! endpoint, every interval; `unhealthy_threshold` failed probes in a row take the endpoint
//! out of rotation, `healthy_threshold` good ones put it back. A probe fails on a connect
//! error, a timeout, a non-OK `grpc-status` or a status other than `SERVING`.

use super::Endpoint;
use crate::config::HealthCheck;
use crate::grpc::{Deframer, Encoding, encode_message};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use std::sync::Arc;

const METHOD: &str = "/grpc.health.v1.Health/Check";
/// `HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: u64 = 1;

/// Probes `endpoint` forever (the task is aborted to stop).
pub(super) async fn probe_loop(endpoint: Arc<Endpoint>, check: HealthCheck) {
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut ticker = tokio::time::interval(check.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let result = tokio::time::timeout(check.timeout, probe(&endpoint, &mut sender, &check))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", check.timeout)));
        if result.is_err() {
            // A fresh connection for the next probe: this one may be stuck.
            sender = None;
        }
        record(&endpoint, &check, result);
    }
}

fn record(endpoint: &Endpoint, check: &HealthCheck, result: Result<(), String>) {
    let mut health = endpoint.health.lock().expect("health lock");
    match result {
        Ok(()) => {
            health.probe_failures = 0;
            health.probe_successes = health.probe_successes.saturating_add(1);
            if health.unhealthy && health.probe_successes >= check.healthy_threshold {
                health.unhealthy = false;
                tracing::info!(endpoint = %endpoint.address, "health check passed: endpoint back in rotation");
            }
        }
        Err(reason) => {
            health.probe_successes = 0;
            health.probe_failures = health.probe_failures.saturating_add(1);
            if !health.unhealthy && health.probe_failures >= check.unhealthy_threshold {
                health.unhealthy = true;
                tracing::warn!(endpoint = %endpoint.address, failures = health.probe_failures, "health check failed: endpoint out of rotation: {reason}");
            } else {
                tracing::debug!(endpoint = %endpoint.address, "health check failed: {reason}");
            }
            health.last_probe_error = reason;
        }
    }
}

async fn probe(
    endpoint: &Endpoint,
    sender: &mut Option<SendRequest<Full<Bytes>>>,
    check: &HealthCheck,
) -> Result<(), String> {
    let live = match sender.take() {
        Some(s) if !s.is_closed() => s,
        _ => endpoint.connect_hyper::<Full<Bytes>>().await?,
    };
    let mut request_sender = live.clone();
    *sender = Some(live);
    request_sender
        .ready()
        .await
        .map_err(|e| format!("connection not ready: {e}"))?;
    let scheme = if endpoint.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let request = http::Request::post(format!("{scheme}://{}{METHOD}", endpoint.address))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(Full::new(request_body(&check.service)))
        .map_err(|e| e.to_string())?;
    let response = request_sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("HTTP status {}", response.status()));
    }
    let headers_status = grpc_status(response.headers());
    let collected = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("response failed: {e}"))?;
    let trailer_status = collected.trailers().and_then(grpc_status);
    match trailer_status.or(headers_status) {
        Some(0) => {}
        Some(code) => return Err(format!("grpc-status {code}")),
        None => return Err("no grpc-status".into()),
    }
    match serving_status(collected.to_bytes()) {
        Some(SERVING) => Ok(()),
        Some(other) => Err(format!("serving status {other} (not SERVING)")),
        None => Err("malformed HealthCheckResponse".into()),
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// A framed `HealthCheckRequest { service }`.
fn request_body(service: &str) -> Bytes {
    let mut message = Vec::with_capacity(service.len() + 8);
    if !service.is_empty() {
        message.push(0x0a); // field 1, length-delimited
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut framed = BytesMut::new();
    encode_message(&message, &mut framed);
    framed.freeze()
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(buf: &mut Bytes) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        if !buf.has_remaining() {
            return None;
        }
        let byte = buf.get_u8();
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Largest `HealthCheckResponse` accepted (it holds one enum field).
const MAX_RESPONSE_BYTES: usize = 1024;

/// The `status` (field 1) of the one framed `HealthCheckResponse` in `body`; an absent
/// field means 0 (`UNKNOWN`).
fn serving_status(body: Bytes) -> Option<u64> {
    let mut deframer = Deframer::new(Encoding::Identity, MAX_RESPONSE_BYTES);
    deframer.push(body);
    let mut body = deframer.next_message().ok()??;
    if deframer.next_message().ok()?.is_some() || deframer.finish().is_err() {
        return None;
    }
    let mut status = 0;
    while body.has_remaining() {
        let key = get_varint(&mut body)?;
        match key & 7 {
            0 => {
                let value = get_varint(&mut body)?;
                if key >> 3 == 1 {
                    status = value;
                }
            }
            1 => body.advance(8.min(body.len())),
            2 => {
                let len = usize::try_from(get_varint(&mut body)?).ok()?;
                if len > body.len() {
                    return None;
                }
                body.advance(len);
            }
            5 => body.advance(4.min(body.len())),
            _ => return None,
        }
    }
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_body_frames_the_service_name() {
        assert_eq!(&request_body("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &request_body("a.B")[..],
            &[0, 0, 0, 0, 5, 0x0a, 3, b'a', b'.', b'B']
        );
    }

    #[test]
    fn serving_status_reads_field_one() {
        assert_eq!(
            serving_status(Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 1])),
            Some(1)
        );
        assert_eq!(
            serving_status(Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 2])),
            Some(2)
        );
        assert_eq!(
            serving_status(Bytes::from_static(&[0, 0, 0, 0, 0])),
            Some(0)
        );
        assert_eq!(
            serving_status(Bytes::from_static(&[0, 0, 0, 0, 3, 0x08, 1])),
            None
        );
        assert_eq!(serving_status(Bytes::from_static(&[1, 0, 0, 0, 0])), None);
    }
}
