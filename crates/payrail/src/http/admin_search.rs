//! Operator search over every transaction and one timeline per
//! transaction (see `services::search`):
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/admin/v1/transactions` | filters, `cursor`, `limit`, `format=json\|csv` |
//! | GET | `/admin/v1/dmt/{ackno}/timeline` | the transfer and its timeline |
//! | GET | `/admin/v1/bbps/{txnid}/timeline` | the bill payment and its timeline |

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::Router;
use hyper::body::Frame;
use tokio::sync::mpsc;

use super::admin::Operator;
use super::error::{json_response, ApiError};
use super::extract::{Path, Query};
use super::AppState;
use crate::domain::TxnKind;
use crate::services::search::{self, Format, PageView, SearchParams};

/// The search and timeline routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/transactions", get(search_transactions))
        .route("/admin/v1/dmt/{ackno}/timeline", get(dmt_timeline))
        .route("/admin/v1/bbps/{txnid}/timeline", get(bill_timeline))
}

#[tracing::instrument(skip_all)]
async fn search_transactions(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = SearchParams::parse(&pairs).map_err(|e| ApiError::Validation(e.to_string()))?;
    match params.format {
        Format::Json => {
            let page = search::search_page(state.store.as_ref(), &params.filter, params.cursor, params.limit).await?;
            Ok(json_response(StatusCode::OK, &PageView::new(&page)))
        }
        Format::Csv => Ok(csv_export(state, params)),
    }
}

/// How many CSV chunks may wait for a slow reader: what the export holds in memory.
const CSV_CHUNKS_BUFFERED: usize = 2;

/// Streams every matching row as CSV: a task reads the store a chunk at a
/// time and hands each chunk to the body through a small channel, so it
/// waits while the client reads. A store failure midway ends the body with
/// an error (the client sees a cut-off answer, never a short "complete" one).
fn csv_export(state: Arc<AppState>, params: SearchParams) -> Response {
    let (sender, receiver) = mpsc::channel::<io::Result<Bytes>>(CSV_CHUNKS_BUFFERED);
    tokio::spawn(async move {
        let chunks = sender.clone();
        let done = search::export_csv(state.store.as_ref(), &params.filter, params.cursor, |chunk| {
            let chunks = chunks.clone();
            async move { chunks.send(Ok(Bytes::from(chunk))).await.is_ok() }
        })
        .await;
        if let Err(error) = done {
            tracing::warn!(error = %error, "CSV export stopped by a store failure");
            let _ = sender.send(Err(io::Error::other("the store failed during the export"))).await;
        }
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"transactions.csv\""),
        ],
        Body::new(ChunkBody(receiver)),
    )
        .into_response()
}

/// A response body fed chunk by chunk through a channel.
struct ChunkBody(mpsc::Receiver<io::Result<Bytes>>);

impl hyper::body::Body for ChunkBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|c| c.map(Frame::data)))
    }
}

#[tracing::instrument(skip_all)]
async fn dmt_timeline(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Path(ackno): Path<i64>,
) -> Result<Response, ApiError> {
    timeline(&state, TxnKind::Dmt, ackno).await
}

#[tracing::instrument(skip_all)]
async fn bill_timeline(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Path(txnid): Path<i64>,
) -> Result<Response, ApiError> {
    timeline(&state, TxnKind::Bbps, txnid).await
}

async fn timeline(state: &AppState, kind: TxnKind, id: i64) -> Result<Response, ApiError> {
    let detail = search::txn_detail(state.store.as_ref(), kind, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such transaction".into()))?;
    Ok(json_response(StatusCode::OK, &detail))
}

/// This module's bodies, for the OpenAPI document ([`super::openapi`]).
pub(crate) fn schemas(out: &mut super::openapi::Schemas) {
    super::openapi::collect!(out; PageView, search::TxnDetail);
}
