//! History uploads: a `multipart/form-data` body whose `file` field is streamed to a
//! temporary directory chunk by chunk (never held in memory), with a size limit checked as
//! the bytes arrive and a look at the first bytes to refuse what is neither a zip nor JSON
//! before the rest is stored.

use poem::web::Multipart;
use poem::{FromRequest, Request, RequestBody};
use poem_openapi::impl_apirequest_for_payload;
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The multipart form field that carries the file (as EchoStats names it).
pub const FILE_FIELD: &str = "file";

/// Bytes read from the upload at a time.
const CHUNK: usize = 64 * 1024;

/// Leading bytes looked at to tell a zip from JSON.
const SNIFF_BYTES: usize = 1024;

/// A `multipart/form-data` request body, read lazily: the route pulls the file from it as
/// it arrives. Documented as an object with a binary `file`.
pub struct UploadForm(pub Multipart);

impl Payload for UploadForm {
    const CONTENT_TYPE: &'static str = "multipart/form-data";

    fn check_content_type(content_type: &str) -> bool {
        content_type.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case(Self::CONTENT_TYPE))
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut file = MetaSchema::new_with_format("string", "binary");
        file.description =
            Some("A Spotify export: the `my_spotify_data.zip` as downloaded, or one streaming history `.json`.");
        let mut form = MetaSchema::new("object");
        form.required = vec![FILE_FIELD];
        form.properties = vec![(FILE_FIELD, MetaSchemaRef::Inline(Box::new(file)))];
        MetaSchemaRef::Inline(Box::new(form))
    }
}

impl ParsePayload for UploadForm {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        Multipart::from_request(request, body).await.map(UploadForm)
    }
}

impl_apirequest_for_payload!(UploadForm);

/// What the upload looks like from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    /// A zip archive.
    Zip,
    /// JSON (an array or an object; the importer decides whether it is streaming history).
    Json,
}

/// Why an upload was not accepted.
#[derive(Debug)]
pub enum UploadError {
    /// No `file` field in the form.
    Missing,
    /// More than `limit` bytes.
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The first bytes are neither a zip nor JSON (or there are none).
    NotAnExport(String),
    /// The body is not valid multipart, or the connection failed while reading it.
    Body(String),
    /// The temporary file could not be written.
    Disk(std::io::Error),
}

/// An upload stored on disk; the directory and the file are deleted when this is dropped.
pub struct SavedUpload {
    dir: tempfile::TempDir,
    path: PathBuf,
    /// Bytes stored.
    pub bytes: u64,
    /// What it looks like.
    pub kind: UploadKind,
}

impl SavedUpload {
    /// The file (named as uploaded, in a directory of its own).
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The temporary directory holding it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Tells a zip from JSON by the first bytes: `None` while more are needed.
fn sniff(head: &[u8], complete: bool) -> Option<Result<UploadKind, String>> {
    const ZIP_MAGIC: [&[u8]; 2] = [b"PK\x03\x04", b"PK\x05\x06"];
    if head.is_empty() && complete {
        return Some(Err("the uploaded file is empty".into()));
    }
    if ZIP_MAGIC.iter().any(|m| head.starts_with(m)) {
        return Some(Ok(UploadKind::Zip));
    }
    if head.len() < 4 && !complete && ZIP_MAGIC.iter().any(|m| m.starts_with(head)) {
        return None;
    }
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    match text.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[' | b'{') => Some(Ok(UploadKind::Json)),
        Some(_) => {
            let shown: String = head.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
            Some(Err(format!(
                "the uploaded file is neither a zip nor JSON (it starts with the bytes {shown}): upload the \
                 my_spotify_data.zip from Spotify or one of its streaming history .json files"
            )))
        }
        None if complete || head.len() >= SNIFF_BYTES => {
            Some(Err("the uploaded file holds no JSON or zip data".into()))
        }
        None => None,
    }
}

/// A file name safe to create: the last path component of what the client sent, with
/// anything unusual replaced, and an extension that matches the content (the importer
/// reads files named `.zip` as zips).
fn stored_name(client_name: Option<&str>, kind: UploadKind) -> String {
    let base = client_name.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let mut name: String =
        base.chars().map(|c| if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' ') { c } else { '_' }).collect();
    name = name.trim_start_matches('.').trim().to_string();
    let ext = match kind {
        UploadKind::Zip => ".zip",
        UploadKind::Json => ".json",
    };
    if name.is_empty() {
        name = "upload".into();
    }
    if !name.to_ascii_lowercase().ends_with(ext) {
        name.push_str(ext);
    }
    name
}

/// Stores the form's `file` field in a new temporary directory (in `parent`, or the
/// system's temporary directory), at most `limit` bytes:
/// [`UploadError::TooLarge`] as soon as one byte more arrives, and
/// [`UploadError::NotAnExport`] as soon as the first bytes show it is neither zip nor
/// JSON. Other fields are skipped.
pub async fn save_file_field(
    mut form: Multipart,
    limit: u64,
    parent: Option<&Path>,
) -> Result<SavedUpload, UploadError> {
    let body_error = |e: &dyn std::fmt::Display| UploadError::Body(format!("cannot read the upload: {e}"));
    while let Some(field) = form.next_field().await.map_err(|e| body_error(&e))? {
        if field.name() != Some(FILE_FIELD) {
            continue;
        }
        let client_name = field.file_name().map(String::from);
        let mut dir = tempfile::Builder::new();
        dir.prefix("echostats-upload-");
        let dir = match parent {
            Some(parent) => dir.tempdir_in(parent),
            None => dir.tempdir(),
        }
        .map_err(UploadError::Disk)?;
        let partial = dir.path().join(".upload.part");
        let mut out = tokio::fs::File::create(&partial).await.map_err(UploadError::Disk)?;
        let mut reader = field.into_async_read();
        let mut buf = vec![0u8; CHUNK];
        let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
        let mut kind = None;
        let mut bytes = 0u64;
        loop {
            let n = reader.read(&mut buf).await.map_err(|e| body_error(&e))?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            if bytes > limit {
                return Err(UploadError::TooLarge { limit });
            }
            if kind.is_none() {
                let take = (SNIFF_BYTES - head.len()).min(n);
                head.extend_from_slice(&buf[..take]);
                kind = sniff(&head, false).transpose().map_err(UploadError::NotAnExport)?;
            }
            out.write_all(&buf[..n]).await.map_err(UploadError::Disk)?;
        }
        let kind = match kind {
            Some(k) => k,
            None => sniff(&head, true).expect("decided at the end").map_err(UploadError::NotAnExport)?,
        };
        out.flush().await.map_err(UploadError::Disk)?;
        drop(out);
        let path = dir.path().join(stored_name(client_name.as_deref(), kind));
        tokio::fs::rename(&partial, &path).await.map_err(UploadError::Disk)?;
        return Ok(SavedUpload { dir, path, bytes, kind });
    }
    Err(UploadError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zips_and_json_are_told_apart_by_their_first_bytes() {
        assert_eq!(sniff(b"PK\x03\x04rest", false), Some(Ok(UploadKind::Zip)));
        assert_eq!(sniff(b"PK", false), None, "needs more bytes");
        assert_eq!(sniff(b"\xEF\xBB\xBF  \n[{", false), Some(Ok(UploadKind::Json)));
        assert_eq!(sniff(b"{\"a\": 1}", true), Some(Ok(UploadKind::Json)));
        assert_eq!(sniff(b"   ", false), None);
        assert!(matches!(sniff(b"%PDF-1.4", false), Some(Err(m)) if m.contains("25 50 44 46")));
        assert!(matches!(sniff(b"", true), Some(Err(m)) if m.contains("empty")));
        assert!(matches!(sniff(b"PK", true), Some(Err(_))));
    }

    #[test]
    fn stored_names_are_safe_and_match_the_content() {
        assert_eq!(stored_name(Some("my_spotify_data.zip"), UploadKind::Zip), "my_spotify_data.zip");
        assert_eq!(stored_name(Some("../../etc/passwd"), UploadKind::Json), "passwd.json");
        assert_eq!(stored_name(Some("C:\\x\\endsong_0.json"), UploadKind::Json), "endsong_0.json");
        assert_eq!(stored_name(Some(".hidden.zip"), UploadKind::Json), "hidden.zip.json");
        assert_eq!(stored_name(None, UploadKind::Zip), "upload.zip");
        assert_eq!(stored_name(Some("a/b:c*.json"), UploadKind::Json), "b_c_.json");
    }
}
