//! The dashboard's script and stylesheet, embedded in the binary
//! (`include_str!`): no build step, nothing fetched from elsewhere.

use axum::http::header;
use axum::response::IntoResponse;

const SCRIPT: &str = include_str!("assets/ui.js");
const STYLE: &str = include_str!("assets/ui.css");

/// `GET /assets/ui.js`.
pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        SCRIPT,
    )
}

/// `GET /assets/ui.css`.
pub async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        STYLE,
    )
}
