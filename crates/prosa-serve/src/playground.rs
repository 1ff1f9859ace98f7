//! The web playground at `/`: one static page, embedded in the binary (no build step, no CDN),
//! that talks to the server's own endpoints.

/// The page.
pub const PAGE: &str = include_str!("playground.html");
