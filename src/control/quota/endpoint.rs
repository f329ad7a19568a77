//! The admission endpoint (`POST /v1/admission`): bearer token checked before the body is
//! read, a concurrency cap, answers from the cached view, every answer recorded.

use super::*;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, tok) = v.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| tok.trim())
}

/// Compares in time independent of where the strings first differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The admission endpoint's state: the quotas, the cached view, the concurrency cap.
pub struct Endpoint {
    pub q: Arc<Quotas>,
    pub view: Arc<ViewCache>,
    pub permits: tokio::sync::Semaphore,
}

/// `[admission]` settings of the endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointConfig {
    /// How long a view of the hub and the lake answers requests (`view_refresh`).
    pub view_refresh: std::time::Duration,
    /// Requests answered at once (`max_concurrent`); the others wait.
    pub max_concurrent: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            view_refresh: std::time::Duration::from_secs(30),
            max_concurrent: 16,
        }
    }
}

/// A spawn request's body is a few hundred bytes.
const MAX_BODY: usize = 64 << 10;

fn refuse(status: StatusCode, why: String) -> (StatusCode, HeaderMap, Json<serde_json::Value>) {
    (
        status,
        HeaderMap::new(),
        Json(serde_json::json!({ "error": why })),
    )
}

async fn admission(
    State(ep): State<Arc<Endpoint>>,
    http: axum::extract::Request,
) -> (StatusCode, HeaderMap, Json<serde_json::Value>) {
    let arrived = Instant::now();
    let q = &ep.q;
    // The token before the body: an unauthenticated caller learns nothing and costs nothing.
    if !bearer(http.headers()).is_some_and(|t| same(t, &q.token)) {
        return refuse(StatusCode::UNAUTHORIZED, "missing or invalid token".into());
    }
    let Ok(body) = axum::body::to_bytes(http.into_body(), MAX_BODY).await else {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("request body unreadable or over {MAX_BODY} bytes"),
        );
    };
    let req: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("bad request body: {e}")),
    };
    q.stats.admission_waiting.fetch_add(1, Ordering::Relaxed);
    let permit = ep.permits.acquire().await;
    q.stats.admission_waiting.fetch_sub(1, Ordering::Relaxed);
    let Ok(_permit) = permit else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
    };
    let mut out = HeaderMap::new();
    let (mut a, err, view) = q.answer(&req, &ep.view, arrived).await;
    let running: &[Running] = match &view.data {
        Ok((r, _)) => r,
        Err(_) => &[],
    };
    let wait = if a.allow && err.is_none() {
        q.capacity_wait(Utc::now(), &req, &a.profile, running)
    } else {
        None
    };
    let action = match &wait {
        Some((_, message)) => {
            a.allow = false;
            a.reason = Reason::NoCapacity;
            a.message = message.clone();
            Action::Wait
        }
        None if a.allow => Action::Allow,
        None => Action::Deny,
    };
    q.stats.admission(action.label(), a.reason.label());
    // No user name in the log (the `decisions` row has it).
    tracing::info!(
        answer = action.label(),
        reason = a.reason.label(),
        "admission"
    );
    let row = Row {
        ts: Utc::now(),
        pass: "admission",
        decision: AdmissionDecision {
            user: req.user.clone(),
            server: req.server_name.clone(),
            profile: a.profile.clone(),
            action,
            reason: a.reason,
        },
        dry_run: false,
        outcome: None,
        message: Some(err.map_or(a.message.clone(), |e| format!("{}: {e}", a.message))),
    };
    if let Err(e) = q.sink.write(&[row]) {
        tracing::error!(error = %e, "admission: cannot record the decision");
    }
    let mut body = serde_json::json!({
        "allow": a.allow,
        "decision": action.label(),
        "reason": a.message,
        "code": a.reason.label(),
        "profile": a.profile,
        "on_error": q.policy.on_error.label(),
    });
    if let Some((secs, message)) = wait {
        body["retry_after_seconds"] = secs.into();
        body["message"] = message.into();
        out.insert(axum::http::header::RETRY_AFTER, secs.into());
    }
    (StatusCode::OK, out, Json(body))
}

/// `POST /v1/admission`, with the default [`EndpointConfig`] (views are read on demand).
pub fn router(q: Arc<Quotas>) -> Router {
    router_with(q, EndpointConfig::default()).0
}

/// `POST /v1/admission`, and its view cache (run [`ViewCache::run`] to refresh it in the
/// background).
pub fn router_with(q: Arc<Quotas>, cfg: EndpointConfig) -> (Router, Arc<ViewCache>) {
    let view = Arc::new(ViewCache::new(cfg.view_refresh));
    let ep = Arc::new(Endpoint {
        q,
        view: view.clone(),
        permits: tokio::sync::Semaphore::new(cfg.max_concurrent.max(1)),
    });
    (
        Router::new()
            .route("/v1/admission", post(admission))
            .with_state(ep),
        view,
    )
}
