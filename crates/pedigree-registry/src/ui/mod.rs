//! The web UI: server-rendered HTML (askama templates in `templates/ui/`, escaped by default),
//! one stylesheet, no script at all, so the Content-Security-Policy forbids every script.
//!
//! Login takes an API token and keeps **the token itself** in an `HttpOnly; SameSite=Strict`
//! cookie rather than a server-side session: every request then goes through exactly the
//! authentication the API uses (`Authenticator::authenticate`), so revoking the token ends the
//! browser session too, and any number of server processes behind a load balancer accept the
//! cookie without sharing session state. `HttpOnly` keeps it from page script (there is none,
//! and the CSP forbids any), `SameSite=Strict` keeps other sites from riding it (no CSRF on the
//! two POST forms, login and logout). What a page shows is decided by the API's own rules:
//! `server::can_see` for versions, `server::status_json` for a version's details and
//! `server::impact_of_advisory` for a cascade, so a reader sees here exactly what the API shows.

pub mod graph;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use askama::Template;
use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Principal;
use crate::server::{ApiError, AppState, can_see, impact_of_advisory, status_json};
use crate::store::{VersionFilter, VersionRow};

use graph::{GEdge, GNode, Risk};

const COOKIE: &str = "pedigree_token";
/// Versions drawn in one family graph; a larger family is cut (and the page says so).
const GRAPH_MAX_NODES: usize = 300;
/// Versions listed on the model page.
const LIST_LIMIT: i64 = 2000;
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

type St = State<Arc<AppState>>;

pub fn router(st: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(models))
        .route("/ui/style.css", get(style))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/m/{ns}/{name}/{ver}", get(version_page))
        .route("/ui/m/{ns}/{name}/{ver}/bom.json", get(bom_download))
        .route("/ui/graph/{ns}/{name}/{ver}", get(graph_page))
        .route("/ui/advisories", get(advisories_page))
        .route("/ui/advisories/{id}", get(advisory_page))
        .layer(middleware::map_response(security_headers))
        .with_state(st)
}

/// Every UI answer: no script, no framing, no sniffing, no caching of per-user pages.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("style.css"),
    )
        .into_response()
}

// ------------------------------------------------------------------------------------ errors

enum UiError {
    /// No valid token: back to the login form.
    Login,
    Page(StatusCode, String),
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> UiError {
        UiError::Page(e.status(), e.message().to_string())
    }
}

impl From<crate::store::StoreError> for UiError {
    fn from(e: crate::store::StoreError) -> UiError {
        ApiError::from(e).into()
    }
}

impl From<askama::Error> for UiError {
    fn from(e: askama::Error) -> UiError {
        UiError::Page(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering the page: {e}"),
        )
    }
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage {
    who: Option<String>,
    status: u16,
    message: String,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            UiError::Login => Redirect::to("/ui/login").into_response(),
            UiError::Page(status, message) => {
                let page = ErrorPage {
                    who: None,
                    status: status.as_u16(),
                    message,
                };
                match page.render() {
                    Ok(html) => (status, html_headers(), html).into_response(),
                    Err(e) => (status, format!("error page: {e}")).into_response(),
                }
            }
        }
    }
}

type UiResult = Result<Response, UiError>;

fn html_headers() -> [(header::HeaderName, &'static str); 1] {
    [(header::CONTENT_TYPE, "text/html; charset=utf-8")]
}

fn page(t: impl Template) -> UiResult {
    Ok((html_headers(), t.render()?).into_response())
}

fn not_found(what: String) -> UiError {
    UiError::Page(StatusCode::NOT_FOUND, format!("{what} not found"))
}

// ------------------------------------------------------------------------------------ login

/// The token from our cookie; anything that does not look like a token is ignored (bounded,
/// so a huge or odd cookie costs nothing).
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    for h in headers.get_all(header::COOKIE) {
        let Ok(s) = h.to_str() else { continue };
        for part in s.split(';') {
            if let Some(v) = part
                .trim()
                .strip_prefix(COOKIE)
                .and_then(|r| r.strip_prefix('='))
                && v.len() <= 200
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Some(v.to_string());
            }
        }
    }
    None
}

async fn viewer(st: &AppState, headers: &HeaderMap) -> Result<Principal, UiError> {
    let token = cookie_token(headers).ok_or(UiError::Login)?;
    st.auth
        .authenticate(&*st.store, &token)
        .await
        .ok_or(UiError::Login)
}

#[derive(Template)]
#[template(path = "ui/login.html")]
struct LoginPage {
    who: Option<String>,
    error: Option<String>,
}

async fn login_form() -> UiResult {
    page(LoginPage {
        who: None,
        error: None,
    })
}

#[derive(Deserialize)]
struct LoginReq {
    token: String,
}

async fn login(State(st): St, Form(req): Form<LoginReq>) -> UiResult {
    let token = req.token.trim();
    let valid = token.len() <= 200
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let p = if valid {
        st.auth.authenticate(&*st.store, token).await
    } else {
        None
    };
    if p.is_none() {
        let html = LoginPage {
            who: None,
            error: Some("invalid or revoked token".into()),
        }
        .render()?;
        return Ok((StatusCode::UNAUTHORIZED, html_headers(), html).into_response());
    }
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
    let mut r = Redirect::to("/ui/").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| {
            UiError::Page(StatusCode::BAD_REQUEST, format!("token as a cookie: {e}"))
        })?,
    );
    Ok(r)
}

async fn logout() -> Response {
    let mut r = Redirect::to("/ui/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "pedigree_token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        ),
    );
    r
}

fn who(p: &Principal) -> Option<String> {
    let roles: Vec<String> = p
        .grants
        .iter()
        .map(|g| format!("{}:{}", g.role.as_str(), g.namespace))
        .collect();
    Some(format!("{} ({})", p.name, roles.join(", ")))
}

// ------------------------------------------------------------------------------------ model list

/// One row of the model list.
pub struct Row {
    pub label: String,
    pub path: String,
    pub state: String,
    pub flagged: bool,
    pub at_risk: bool,
    pub identity: String,
}

#[derive(Template)]
#[template(path = "ui/models.html")]
pub struct ModelsPage {
    pub who: Option<String>,
    pub rows: Vec<Row>,
    pub namespace: String,
    pub state: String,
    pub q: String,
    /// `(state, selected)` for the filter's options.
    pub states: Vec<(&'static str, bool)>,
}

const STATES: &[&str] = &[
    "approved",
    "quarantined",
    "held",
    "rejected",
    "flagged",
    "at_risk",
];

#[derive(Deserialize, Default)]
struct ModelsQuery {
    namespace: Option<String>,
    state: Option<String>,
    q: Option<String>,
}

async fn models(State(st): St, headers: HeaderMap, Query(q): Query<ModelsQuery>) -> UiResult {
    let p = viewer(&st, &headers).await?;
    let clip = |s: Option<String>| {
        s.map(|s| s.trim().chars().take(200).collect::<String>())
            .filter(|s| !s.is_empty())
    };
    let (namespace, state, text) = (clip(q.namespace), clip(q.state), clip(q.q));
    let review_state = state
        .as_deref()
        .filter(|s| !matches!(*s, "flagged" | "at_risk"))
        .map(str::to_string);
    // The same query and the same visibility rule as `GET /v1/models`.
    let rows: Vec<VersionRow> = st
        .store
        .list_versions(&VersionFilter {
            namespace: namespace.clone(),
            state: review_state,
            limit: Some(LIST_LIMIT),
        })
        .await?
        .into_iter()
        .filter(|v| can_see(&p, v))
        .filter(|v| {
            text.as_deref()
                .is_none_or(|t| v.label().to_lowercase().contains(&t.to_lowercase()))
        })
        .collect();
    let ids: Vec<i64> = rows.iter().map(|v| v.id).collect();
    let mut kinds: HashMap<i64, HashSet<String>> = HashMap::new();
    for f in st.store.flags_of(&ids).await? {
        kinds.entry(f.version_id).or_default().insert(f.kind);
    }
    let mut out = Vec::new();
    for v in rows.iter().rev() {
        let k = kinds.get(&v.id);
        let flagged = k.is_some_and(|k| k.contains("flagged"));
        let at_risk = k.is_some_and(|k| k.contains("at_risk"));
        match state.as_deref() {
            Some("flagged") if !flagged => continue,
            Some("at_risk") if !at_risk => continue,
            _ => {}
        }
        out.push(Row {
            label: v.label(),
            path: graph::version_path(&v.label()),
            state: v.state.clone(),
            flagged,
            at_risk,
            identity: v
                .identity
                .as_deref()
                .map(|i| i.chars().take(19).collect())
                .unwrap_or_default(),
        });
    }
    page(ModelsPage {
        who: who(&p),
        rows: out,
        namespace: namespace.unwrap_or_default(),
        q: text.unwrap_or_default(),
        states: STATES
            .iter()
            .map(|s| (*s, Some(*s) == state.as_deref()))
            .collect(),
        state: state.unwrap_or_default(),
    })
}

// ------------------------------------------------------------------------------------ version

pub struct Finding {
    pub severity: String,
    pub rule: String,
    pub name: String,
    pub message: String,
    pub location: String,
}

pub struct EdgeView {
    pub parent: String,
    pub parent_path: String,
    pub child: String,
    pub child_path: String,
    pub source: String,
    pub relation: String,
    pub confidence: String,
    pub evidence: String,
}

pub struct Reason {
    pub rule: String,
    pub level: String,
    pub message: String,
}

pub struct FlagView {
    pub advisory: String,
    pub kind: String,
    pub depth: i64,
}

pub struct BomSummary {
    pub format: String,
    pub components: usize,
    pub names: Vec<String>,
}

#[derive(Template)]
#[template(path = "ui/version.html")]
pub struct VersionPage {
    pub who: Option<String>,
    pub label: String,
    pub path: String,
    pub state: String,
    pub identity: String,
    pub downloadable: bool,
    pub flags: Vec<FlagView>,
    pub reasons: Vec<Reason>,
    pub findings: Vec<Finding>,
    pub signature: String,
    pub signer: String,
    pub signer_key: String,
    pub signature_problem: String,
    pub declared_bases: Vec<String>,
    pub license: String,
    pub declared: Vec<EdgeView>,
    pub proven: Vec<EdgeView>,
    pub bom: Option<BomSummary>,
    pub deployments: Vec<String>,
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Long attacker-supplied text is cut for display (the full text stays in the API).
fn clip(s: String, n: usize) -> String {
    if s.chars().count() <= n {
        s
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

async fn visible_version(
    st: &AppState,
    p: &Principal,
    ns: &str,
    name: &str,
    ver: &str,
) -> Result<VersionRow, UiError> {
    // Invisible and missing read the same, as in the API: no probing other teams' names.
    match st.store.find_version(ns, name, ver).await? {
        Some(v) if can_see(p, &v) => Ok(v),
        _ => Err(not_found(format!("{ns}/{name}:{ver}"))),
    }
}

async fn version_page(
    State(st): St,
    headers: HeaderMap,
    UrlPath((ns, name, ver)): UrlPath<(String, String, String)>,
) -> UiResult {
    let p = viewer(&st, &headers).await?;
    let v = visible_version(&st, &p, &ns, &name, &ver).await?;
    let j = status_json(&st, &v).await?;
    let arr = |k: &str| {
        j.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let findings = arr("findings")
        .iter()
        .map(|f| Finding {
            severity: s(f, "severity"),
            rule: s(f, "rule"),
            name: s(f, "name"),
            message: clip(s(f, "message"), 2000),
            location: clip(s(f, "location"), 500),
        })
        .collect();
    let (mut declared, mut proven) = (Vec::new(), Vec::new());
    for e in arr("lineage") {
        let view = EdgeView {
            parent: s(&e, "parent"),
            parent_path: graph::version_path(&s(&e, "parent")),
            child: s(&e, "child"),
            child_path: graph::version_path(&s(&e, "child")),
            source: s(&e, "source"),
            relation: s(&e, "relation"),
            confidence: e
                .get("confidence")
                .and_then(Value::as_f64)
                .map(|c| format!("{c:.3}"))
                .unwrap_or_default(),
            evidence: clip(
                e.get("evidence").map(Value::to_string).unwrap_or_default(),
                1500,
            ),
        };
        if view.source == "declared" {
            declared.push(view);
        } else {
            proven.push(view);
        }
    }
    let sig = j.get("signature").cloned().unwrap_or(Value::Null);
    let card = j.get("card").cloned().unwrap_or(Value::Null);
    let reasons = j
        .pointer("/decision/reasons")
        .and_then(Value::as_array)
        .map(|rs| {
            rs.iter()
                .map(|r| Reason {
                    rule: s(r, "rule"),
                    level: s(r, "level"),
                    message: clip(s(r, "message"), 2000),
                })
                .collect()
        })
        .unwrap_or_default();
    let flags = arr("flags")
        .iter()
        .map(|f| FlagView {
            advisory: s(f, "advisory_id"),
            kind: s(f, "kind"),
            depth: f.get("depth").and_then(Value::as_i64).unwrap_or(0),
        })
        .collect();
    let deployments = arr("deployments")
        .iter()
        .map(|d| format!("{}/{}", s(d, "name"), s(d, "environment")))
        .collect();
    let bom = match st.store.report(v.id, "bom").await? {
        Some(text) => serde_json::from_str::<Value>(&text).ok().map(|b| {
            let comps = b
                .get("components")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            BomSummary {
                format: format!("{} {}", s(&b, "bomFormat"), s(&b, "specVersion")),
                components: comps.len(),
                names: comps
                    .iter()
                    .take(20)
                    .map(|c| clip(format!("{} ({})", s(c, "name"), s(c, "type")), 200))
                    .collect(),
            }
        }),
        None => None,
    };
    page(VersionPage {
        who: who(&p),
        label: v.label(),
        path: graph::version_path(&v.label()),
        state: v.state.clone(),
        identity: v.identity.clone().unwrap_or_default(),
        downloadable: j.get("downloadable") == Some(&Value::Bool(true)),
        flags,
        reasons,
        findings,
        signature: s(&sig, "status"),
        signer: s(&sig, "signer"),
        signer_key: s(&sig, "key"),
        signature_problem: s(&sig, "reason"),
        declared_bases: card
            .get("base_model")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .take(50)
                    .map(|b| clip(b.as_str().unwrap_or_default().to_string(), 200))
                    .collect()
            })
            .unwrap_or_default(),
        license: clip(s(&card, "license"), 200),
        declared,
        proven,
        bom,
        deployments,
    })
}

async fn bom_download(
    State(st): St,
    headers: HeaderMap,
    UrlPath((ns, name, ver)): UrlPath<(String, String, String)>,
) -> UiResult {
    let p = viewer(&st, &headers).await?;
    let v = visible_version(&st, &p, &ns, &name, &ver).await?;
    let body = st
        .store
        .report(v.id, "bom")
        .await?
        .ok_or_else(|| not_found(format!("the BOM of {}", v.label())))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{ns}-{name}-{ver}.cdx.json\""),
            ),
        ],
        body,
    )
        .into_response())
}

// ------------------------------------------------------------------------------------ graph

#[derive(Template)]
#[template(path = "ui/graph.html")]
pub struct GraphPage {
    pub who: Option<String>,
    pub label: String,
    pub path: String,
    pub svg: String,
    pub nodes: usize,
    pub edges: usize,
    pub hidden: usize,
    pub truncated: bool,
}

/// The family of a version: everything reachable over lineage edges (both ways) and over
/// "another version of the same model", bounded. Hidden versions are walked through (they may
/// link two visible ones) but never drawn; the page says how many there were.
async fn graph_page(
    State(st): St,
    headers: HeaderMap,
    UrlPath((ns, name, ver)): UrlPath<(String, String, String)>,
) -> UiResult {
    let p = viewer(&st, &headers).await?;
    let start = visible_version(&st, &p, &ns, &name, &ver).await?;
    let mut rows: HashMap<i64, VersionRow> = HashMap::new();
    let mut edges = Vec::new();
    let mut seen_edges = HashSet::new();
    let mut models_done = HashSet::new();
    let mut queue = VecDeque::from([start.clone()]);
    rows.insert(start.id, start.clone());
    let mut truncated = false;
    while let Some(v) = queue.pop_front() {
        let mut next: Vec<i64> = Vec::new();
        for e in st.store.edges_of(v.id).await? {
            next.push(if e.parent == v.id { e.child } else { e.parent });
            if seen_edges.insert(e.rowid) {
                edges.push(e);
            }
        }
        let mut found: Vec<VersionRow> = Vec::new();
        if models_done.insert(v.model_id) {
            found.extend(st.store.versions_of_model(v.model_id).await?);
        }
        next.retain(|id| !rows.contains_key(id));
        if !next.is_empty() {
            found.extend(st.store.versions_by_ids(&next).await?);
        }
        for r in found {
            if rows.contains_key(&r.id) {
                continue;
            }
            if rows.len() >= GRAPH_MAX_NODES {
                truncated = true;
                break;
            }
            rows.insert(r.id, r.clone());
            queue.push_back(r);
        }
    }
    let ids: Vec<i64> = rows.keys().copied().collect();
    let mut kinds: HashMap<i64, BTreeSet<String>> = HashMap::new();
    for f in st.store.flags_of(&ids).await? {
        kinds.entry(f.version_id).or_default().insert(f.kind);
    }
    let mut deps: HashMap<i64, Vec<String>> = HashMap::new();
    for d in st.store.deployments_of(&ids).await? {
        deps.entry(d.version_id)
            .or_default()
            .push(format!("{}/{}", d.name, d.environment));
    }
    let visible: Vec<&VersionRow> = rows.values().filter(|v| can_see(&p, v)).collect();
    let hidden = rows.len() - visible.len();
    let nodes: Vec<GNode> = visible
        .iter()
        .map(|v| {
            let k = kinds.get(&v.id);
            let risk = if k.is_some_and(|k| k.contains("flagged")) {
                Risk::Flagged
            } else if k.is_some_and(|k| k.contains("at_risk")) {
                Risk::AtRisk
            } else {
                Risk::Clean
            };
            let mut d = deps.remove(&v.id).unwrap_or_default();
            d.sort();
            GNode {
                id: v.id,
                label: v.label(),
                review: v.state.clone(),
                risk,
                deployments: d,
            }
        })
        .collect();
    let shown: HashSet<i64> = nodes.iter().map(|n| n.id).collect();
    let gedges: Vec<GEdge> = edges
        .iter()
        .filter(|e| shown.contains(&e.parent) && shown.contains(&e.child))
        .map(|e| GEdge {
            parent: e.parent,
            child: e.child,
            source: e.source.clone(),
            relation: e.relation.clone(),
            confidence: e.confidence,
        })
        .collect();
    page(GraphPage {
        who: who(&p),
        label: start.label(),
        path: graph::version_path(&start.label()),
        svg: graph::render_svg(&nodes, &gedges),
        nodes: nodes.len(),
        edges: gedges.len(),
        hidden,
        truncated,
    })
}

// ------------------------------------------------------------------------------------ advisories

pub struct AdvisoryRow {
    pub id: String,
    pub severity: String,
    pub summary: String,
    pub withdrawn: bool,
}

#[derive(Template)]
#[template(path = "ui/advisories.html")]
pub struct AdvisoriesPage {
    pub who: Option<String>,
    pub list: Vec<AdvisoryRow>,
}

async fn advisories_page(State(st): St, headers: HeaderMap) -> UiResult {
    let p = viewer(&st, &headers).await?;
    // As `GET /v1/advisories`: id, severity and summary are broadcast to every token.
    let list = st
        .store
        .advisories()
        .await?
        .into_iter()
        .rev()
        .map(|a| AdvisoryRow {
            id: a.id,
            severity: a.severity,
            summary: clip(a.summary, 300),
            withdrawn: a.withdrawn_at.is_some(),
        })
        .collect();
    page(AdvisoriesPage { who: who(&p), list })
}

pub struct AffectedView {
    pub model: String,
    pub path: String,
    pub kind: String,
    pub depth: i64,
    pub via: String,
    pub deployments: String,
}

pub struct GoodView {
    pub model: String,
    pub good: Option<String>,
    pub path: String,
}

#[derive(Template)]
#[template(path = "ui/advisory.html")]
pub struct AdvisoryPage {
    pub who: Option<String>,
    pub id: String,
    pub severity: String,
    pub summary: String,
    pub withdrawn: String,
    pub hidden: i64,
    pub affected: Vec<AffectedView>,
    pub last_known_good: Vec<GoodView>,
}

async fn advisory_page(
    State(st): St,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> UiResult {
    let p = viewer(&st, &headers).await?;
    if st.store.advisory(&id).await?.is_none() {
        return Err(not_found(format!("advisory {id}")));
    }
    let j = impact_of_advisory(&st, &id, &p).await?;
    let a = j.get("advisory").cloned().unwrap_or(Value::Null);
    let mut affected: Vec<AffectedView> = j
        .get("affected")
        .and_then(Value::as_array)
        .map(|xs| {
            xs.iter()
                .map(|x| AffectedView {
                    model: s(x, "model"),
                    path: graph::version_path(&s(x, "model")),
                    kind: s(x, "kind"),
                    depth: x.get("depth").and_then(Value::as_i64).unwrap_or(0),
                    via: s(x, "via"),
                    deployments: x
                        .get("deployments")
                        .and_then(Value::as_array)
                        .map(|ds| {
                            ds.iter()
                                .map(|d| format!("{}/{}", s(d, "name"), s(d, "environment")))
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    affected.sort_by(|a, b| (a.depth, &a.model).cmp(&(b.depth, &b.model)));
    let last_known_good = j
        .get("last_known_good")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(model, good)| {
                    let good = good.as_str().map(str::to_string);
                    GoodView {
                        model: model.clone(),
                        path: good.as_deref().map(graph::version_path).unwrap_or_default(),
                        good,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    page(AdvisoryPage {
        who: who(&p),
        id: s(&a, "id"),
        severity: s(&a, "severity"),
        summary: clip(s(&a, "summary"), 2000),
        withdrawn: s(&a, "withdrawn_reason"),
        hidden: j.get("hidden").and_then(Value::as_i64).unwrap_or(0),
        affected,
        last_known_good,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_named_script_renders_inert() {
        let evil = "<script>alert(1)</script>";
        let html = ModelsPage {
            who: Some(format!("{evil} (reader:*)")),
            rows: vec![Row {
                label: format!("ns/{evil}:1"),
                path: format!("ns/{evil}/1"),
                state: "approved\"><script>alert(2)</script>".into(),
                flagged: true,
                at_risk: false,
                identity: String::new(),
            }],
            namespace: evil.into(),
            state: String::new(),
            q: "\"><script>alert(3)</script>".into(),
            states: STATES.iter().map(|s| (*s, false)).collect(),
        }
        .render()
        .unwrap();
        assert!(!html.to_lowercase().contains("<script"), "{html}");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{html}"
        );
        assert!(html.contains("badge flagged"));
    }

    #[test]
    fn version_page_escapes_findings_and_card_text() {
        let evil = "<img src=x onerror=alert(1)>";
        let html = VersionPage {
            who: None,
            label: "a/b:1".into(),
            path: "a/b/1".into(),
            state: "held".into(),
            identity: String::new(),
            downloadable: false,
            flags: vec![],
            reasons: vec![Reason {
                rule: "POL001".into(),
                level: "hold".into(),
                message: evil.into(),
            }],
            findings: vec![Finding {
                severity: "critical".into(),
                rule: "PDG101".into(),
                name: evil.into(),
                message: format!("</td><script>x</script>{evil}"),
                location: evil.into(),
            }],
            signature: "invalid".into(),
            signer: String::new(),
            signer_key: String::new(),
            signature_problem: evil.into(),
            declared_bases: vec![evil.into()],
            license: evil.into(),
            declared: vec![],
            proven: vec![EdgeView {
                parent: evil.into(),
                parent_path: evil.into(),
                child: "a/b:1".into(),
                child_path: "a/b/1".into(),
                source: "inferred".into(),
                relation: evil.into(),
                confidence: "0.9".into(),
                evidence: format!("{{\"x\":\"{evil}\"}}"),
            }],
            bom: Some(BomSummary {
                format: "CycloneDX 1.6".into(),
                components: 1,
                names: vec![evil.into()],
            }),
            deployments: vec![evil.into()],
        }
        .render()
        .unwrap();
        let lower = html.to_lowercase();
        assert!(
            !lower.contains("<img") && !lower.contains("<script"),
            "{html}"
        );
        assert!(
            html.contains("&#60;img src=x onerror=alert(1)&#62;"),
            "{html}"
        );
    }

    #[test]
    fn cookie_parsing_is_strict_and_bounded() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; pedigree_token=pdg_0123456789abcdef_xyz; c=d"),
        );
        assert_eq!(
            cookie_token(&h).as_deref(),
            Some("pdg_0123456789abcdef_xyz")
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("pedigree_token=pdg_x;evil=1; pedigree_tokenx=y"),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("pdg_x"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("pedigree_token=a b\"c"),
        );
        assert_eq!(cookie_token(&h), None);
        let long = format!("pedigree_token={}", "a".repeat(5000));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&long).unwrap());
        assert_eq!(cookie_token(&h), None);
    }
}
