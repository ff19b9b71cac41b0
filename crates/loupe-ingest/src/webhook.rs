//! The audit webhook receiver: `POST /audit` (or `/audit/{cluster}`) with an `EventList`,
//! exactly as kube-apiserver's webhook backend sends it. The answer comes once the batch is
//! committed, so a 2xx means durable, and an error makes the apiserver retry the batch
//! (duplicates from retries are dropped by `auditID`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::files::{adapt, Item};
use crate::metrics::{Code, IngestMetrics};
use crate::writer::{Batch, WriterHandle};

/// TLS for the receiver; with `client_ca`, clients must present a certificate it signed.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub listen: SocketAddr,
    pub default_cluster: String,
    /// Required `Authorization: Bearer` token, if set.
    pub token: Option<String>,
    pub tls: Option<TlsFiles>,
    pub max_body_bytes: usize,
}

#[derive(Clone)]
struct AppState {
    writer: WriterHandle,
    default_cluster: String,
    token: Option<Arc<str>>,
    metrics: IngestMetrics,
    registry: Arc<Mutex<Registry>>,
}

#[derive(Serialize)]
struct Accepted {
    cluster: String,
    accepted: u64,
    malformed: u64,
}

#[derive(Serialize)]
struct Problem {
    error: String,
}

fn problem(code: StatusCode, error: String) -> Response {
    (code, Json(Problem { error })).into_response()
}

pub fn router(
    writer: WriterHandle,
    config: &WebhookConfig,
    metrics: IngestMetrics,
    registry: Arc<Mutex<Registry>>,
) -> Router {
    let state = AppState {
        writer,
        default_cluster: config.default_cluster.clone(),
        token: config.token.as_deref().map(Arc::from),
        metrics,
        registry,
    };
    Router::new()
        .route("/audit", post(receive_default))
        .route("/audit/{cluster}", post(receive_for))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state)
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let mut text = String::new();
    let encoded = {
        let registry = state.registry.lock().unwrap_or_else(|e| e.into_inner());
        prometheus_client::encoding::text::encode(&mut text, &registry)
    };
    match encoded {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn receive_default(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let cluster = state.default_cluster.clone();
    receive(state, cluster, headers, body).await
}

async fn receive_for(
    State(state): State<AppState>,
    Path(cluster): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(state, cluster, headers, body).await
}

/// Compares without leaking where the first difference is.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn receive(state: AppState, cluster: String, headers: HeaderMap, body: Bytes) -> Response {
    let response = handle(&state, cluster, &headers, body).await;
    state
        .metrics
        .webhook_requests
        .get_or_create(&Code {
            code: response.status().as_u16().to_string(),
        })
        .inc();
    response
}

async fn handle(state: &AppState, cluster: String, headers: &HeaderMap, body: Bytes) -> Response {
    if let Some(token) = &state.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes())) {
            return problem(
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is required".into(),
            );
        }
    }
    if cluster.is_empty() || cluster.contains(|c: char| c.is_control()) {
        return problem(StatusCode::BAD_REQUEST, "invalid cluster name".into());
    }
    let (items, rejected) = match split_body(&body) {
        Ok(items) => (items, None),
        // Nothing usable in the body: say why, and keep the fact that it came.
        Err(error) => (
            vec![Item::Error {
                line: 0,
                error: error.clone(),
            }],
            Some(error),
        ),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let batch = Batch {
        cluster: cluster.clone(),
        source: "webhook".into(),
        items,
        checkpoint: None,
        ack: Box::new(move |r| {
            let _ = tx.send(r);
        }),
    };
    let writer = state.writer.clone();
    let sent = tokio::task::spawn_blocking(move || writer.send(batch)).await;
    if !matches!(sent, Ok(Ok(()))) {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store writer is not running".into(),
        );
    }
    match rx.await {
        Ok(Ok(report)) => match rejected {
            Some(error) => problem(StatusCode::BAD_REQUEST, error),
            None => (
                StatusCode::OK,
                Json(Accepted {
                    cluster,
                    accepted: report.records - report.malformed,
                    malformed: report.malformed,
                }),
            )
                .into_response(),
        },
        Ok(Err(e)) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not store the batch: {e}"),
        ),
        Err(_) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store writer stopped".into(),
        ),
    }
}

/// Splits an `EventList` body into items; a bad item is reported, not fatal.
fn split_body(body: &[u8]) -> Result<Vec<Item<'static>>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
    let raw = loupe_audit::decode_event_list(text)
        .map_err(|e| format!("body is not an audit.k8s.io EventList: {e}"))?;
    Ok(raw
        .iter()
        .enumerate()
        .map(|(i, r)| adapt(i as u64 + 1, r.get()).into_owned())
        .collect())
}

fn rustls_config(tls: &TlsFiles) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let read_certs = |path: &PathBuf| -> anyhow::Result<Vec<CertificateDer<'static>>> {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
        let certs = certs.with_context(|| format!("parsing certificates in {}", path.display()))?;
        anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
        Ok(certs)
    };
    let certs = read_certs(&tls.cert)?;
    let key_pem =
        std::fs::read(&tls.key).with_context(|| format!("reading {}", tls.key.display()))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())?
        .with_context(|| format!("no private key in {}", tls.key.display()))?;
    let builder = rustls::ServerConfig::builder();
    let mut config = match &tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert)?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build()?;
            builder
                .with_client_cert_verifier(verifier)
                .with_single_cert(certs, key)?
        }
        None => builder.with_no_client_auth().with_single_cert(certs, key)?,
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves on `config.listen` until `shutdown` resolves.
pub async fn serve(
    router: Router,
    config: &WebhookConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("listening on {}", config.listen))?;
    serve_on(listener, router, config, shutdown).await
}

/// Serves on an already bound listener (tests bind port 0 and read the port).
pub async fn serve_on(
    listener: std::net::TcpListener,
    router: Router,
    config: &WebhookConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    match &config.tls {
        Some(tls) => {
            let rustls =
                axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(rustls_config(tls)?));
            axum_server::from_tcp_rustls(listener, rustls)
                .handle(handle)
                .serve(router.into_make_service())
                .await?
        }
        None => {
            axum_server::from_tcp(listener)
                .handle(handle)
                .serve(router.into_make_service())
                .await?
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_bodies_and_reports_bad_ones() {
        let ok = br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[{"kind":0},{"level":"None"}]}"#;
        assert_eq!(split_body(ok).unwrap().len(), 2);
        assert!(split_body(b"hello")
            .unwrap_err()
            .contains("not an audit.k8s.io EventList"));
        assert!(split_body(b"\xff").unwrap_err().contains("UTF-8"));
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
    }
}
