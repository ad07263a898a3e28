//! `gaze serve`: the web demo on 127.0.0.1, as plain static files (nothing is uploaded: the
//! page runs the model in the browser).

use std::path::{Component, Path, PathBuf};

use clap::Args;

use crate::error::Error;
use crate::Result;

#[derive(Args)]
pub struct ServeArgs {
    /// The page's directory (built by `bash web/build.sh`).
    #[arg(long, default_value = "web")]
    dir: String,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// 0 picks a free port (the URL printed says which).
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

/// The module web/build.sh writes; without it the page cannot start.
const WASM: &str = "pkg/gaze_bg.wasm";

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "wasm" => "application/wasm",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file a URL path names inside `root`, or `None` for anything that would leave it.
fn resolve(root: &Path, url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let relative = Path::new(path.trim_start_matches('/'));
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let file = root.join(relative);
    Some(if file.is_dir() {
        file.join("index.html")
    } else {
        file
    })
}

fn header(name: &str, value: &str) -> Result<tiny_http::Header> {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
        .map_err(|_| Error::Invalid(format!("bad HTTP header {name}: {value}")))
}

/// A strong validator of a file's bytes: a reload sends it back (`If-None-Match`) and gets a
/// 304 without the body while the file is unchanged.
fn etag(data: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    // Fixed keys: the same bytes give the same tag across restarts of the server.
    let mut h = std::hash::DefaultHasher::new();
    data.hash(&mut h);
    format!("\"{:016x}-{:x}\"", h.finish(), data.len())
}

fn respond(root: &Path, request: tiny_http::Request) -> Result<()> {
    let found = match request.method() {
        tiny_http::Method::Get | tiny_http::Method::Head => {
            resolve(root, request.url()).and_then(|f| std::fs::read(&f).ok().map(|data| (f, data)))
        }
        _ => None,
    };
    let response = match found {
        Some((file, data)) => {
            let tag = etag(&data);
            let unchanged = request.headers().iter().any(|h| {
                h.field.equiv("If-None-Match")
                    && h.value.as_str().split(',').any(|t| t.trim() == tag)
            });
            let response = if unchanged {
                tiny_http::Response::from_data(Vec::new()).with_status_code(304)
            } else {
                tiny_http::Response::from_data(data)
                    .with_header(header("Content-Type", content_type(&file))?)
            };
            // no-cache: the browser keeps the file but asks each time whether it changed.
            response
                .with_header(header("Cache-Control", "no-cache")?)
                .with_header(header("ETag", &tag)?)
        }
        None => tiny_http::Response::from_data(b"not found".to_vec()).with_status_code(404),
    };
    // A browser that closes the connection early is not the server's failure.
    let _ = request.respond(response);
    Ok(())
}

pub fn run(args: &ServeArgs) -> Result<()> {
    let root = PathBuf::from(&args.dir);
    if !root.join(WASM).is_file() {
        return Err(Error::Invalid(format!(
            "{}: the page is not built ({WASM} is missing): run `bash web/build.sh` first",
            root.display()
        )));
    }
    let server = tiny_http::Server::http((args.host.as_str(), args.port)).map_err(|e| {
        Error::Invalid(format!("cannot listen on {}:{}: {e}", args.host, args.port))
    })?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| Error::Invalid("the server has no IP address".into()))?;
    super::say(format!(
        "serving {} at http://{addr}/ (Ctrl-C stops)",
        root.display()
    ))?;
    for request in server.incoming_requests() {
        respond(&root, request)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_stay_inside_the_root() {
        let root = Path::new("/srv/web");
        assert_eq!(resolve(root, "/app.js?v=1"), Some(root.join("app.js")));
        for bad in ["/../etc/passwd", "/pkg/../../x", "/./a"] {
            assert_eq!(resolve(root, bad), None, "{bad}");
        }
    }
}
