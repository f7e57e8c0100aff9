//! The files pages load, embedded in the binary. Each is served under a name carrying a hash of
//! its content (`/static/htmx.min.<hash>.js`), so a response may be cached for good: a changed
//! file is a new URL. Third-party files are vendored by `scripts/vendor-ui.sh` and pinned by
//! `assets/VENDOR.lock`; the tests below check that lock offline.

use std::io::Write;
use std::sync::{LazyLock, OnceLock};

use sha2::{Digest, Sha256};

/// Where assets are served; the server routes `{PREFIX}{file}` to [`lookup`].
pub const PREFIX: &str = "/static/";

/// (name, content type, bytes). Names are what pages ask [`href`] for.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/ui.css"),
    ),
    (
        "hash-routes.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/hash-routes.js"),
    ),
    (
        "ui-lib.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/ui-lib.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/chart.js"),
    ),
    (
        "compare.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/compare.js"),
    ),
    (
        "vtable.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vtable.js"),
    ),
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/htmx.min.js"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/vendor/uPlot.min.css"),
    ),
];

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
    /// The served file name: `name` with a content hash before its extension.
    pub file: String,
    gzip: OnceLock<Option<Vec<u8>>>,
}

impl Asset {
    /// The path a page links to.
    pub fn href(&self) -> String {
        format!("{PREFIX}{}", self.file)
    }

    /// The bytes gzipped, compressed once on first use; `None` if compression failed, in which
    /// case the caller serves them as they are.
    pub fn gzipped(&self) -> Option<&[u8]> {
        self.gzip
            .get_or_init(|| {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                encoder.write_all(self.bytes).ok()?;
                encoder.finish().ok()
            })
            .as_deref()
    }
}

static TABLE: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, content_type, bytes)| {
            let digest = Sha256::digest(bytes);
            let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
            let file = match name.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
                None => format!("{name}.{hash}"),
            };
            Asset {
                name,
                content_type,
                bytes,
                file,
                gzip: OnceLock::new(),
            }
        })
        .collect()
});

/// Every embedded asset.
pub fn all() -> &'static [Asset] {
    &TABLE
}

/// The asset served as `file` (the part of the path after [`PREFIX`]); only the current
/// content-hashed name matches, so a stale URL is a 404 rather than different bytes.
pub fn lookup(file: &str) -> Option<&'static Asset> {
    TABLE.iter().find(|a| a.file == file)
}

/// The URL of the asset called `name`. Every name pages use is one of [`FILES`] (a test renders
/// each page and resolves every `/static/` link).
pub(crate) fn href(name: &str) -> String {
    TABLE
        .iter()
        .find(|a| a.name == name)
        .map_or_else(|| format!("{PREFIX}{name}"), Asset::href)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::path::Path;

    use super::*;

    #[test]
    fn vendored_files_match_the_lock() {
        let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let lock = std::fs::read_to_string(assets.join("VENDOR.lock")).unwrap();
        let mut checked = 0;
        for line in lock
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (want, path) = line.split_once("  ").expect("sha256sum format");
            let bytes = std::fs::read(assets.join(path)).unwrap();
            let got: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(got, want, "{path} differs from VENDOR.lock");
            checked += 1;
        }
        // Every embedded vendored file is pinned by the lock.
        for &(name, ..) in FILES {
            let vendored = assets.join("vendor").join(name);
            if vendored.exists() {
                assert!(
                    lock.contains(&format!("vendor/{name}")),
                    "{name} not in lock"
                );
            }
        }
        assert!(checked >= 3, "{checked} entries");
    }

    #[test]
    fn all_assets_fit_the_budget() {
        let total: usize = all().iter().map(|a| a.bytes.len()).sum();
        assert!(total <= 250_000, "{total} bytes of UI assets");
    }

    #[test]
    fn names_carry_the_content_hash_and_resolve() {
        let htmx = all().iter().find(|a| a.name == "htmx.min.js").unwrap();
        assert!(htmx.file.starts_with("htmx.min.") && htmx.file.ends_with(".js"));
        assert_eq!(htmx.file.len(), "htmx.min.".len() + 12 + ".js".len());
        assert_eq!(href("htmx.min.js"), format!("/static/{}", htmx.file));
        assert!(std::ptr::eq(lookup(&htmx.file).unwrap(), htmx));
        assert!(lookup("htmx.min.js").is_none());
        assert!(lookup("../Cargo.toml").is_none());
    }

    #[test]
    fn gzip_round_trips() {
        for asset in all() {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(asset.gzipped().unwrap())
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, asset.bytes, "{}", asset.name);
        }
    }
}
