//! `/api/admin/plugins`: the plugin lifecycle as REST — list, detail, receipts, install from an
//! upload, npm, git or a local path, enable (with explicit consent), disable, upgrade, rollback,
//! uninstall. Every operation goes through the same [`PluginManager`] as the CLI, so it leaves the
//! same receipts and refuses the same things.
//!
//! [`PluginManager`]: nitejar_core::lifecycle::PluginManager

use std::io::{self, Write};
use std::path::Path;

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use futures_util::StreamExt;
use nitejar_core::install::{GitSpec, InstallSource, NpmSpec};
use nitejar_core::lifecycle::{Acknowledge, EnableRequest, UninstallOptions};
use nitejar_core::store::PageRequest;
use serde::Deserialize;
use serde_json::json;
use tempfile::NamedTempFile;

use super::error::ApiError;
use super::receipts::{store_error, ReceiptView};
use crate::auth::Admin;
use crate::plugins;
use crate::state::AppState;

pub async fn list(_admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let items = plugins::list(&state).await.map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

pub(crate) fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "plugin_not_found",
        format!("no plugin `{id}` is installed, built in or active"),
    )
}

pub async fn get(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match plugins::detail(&state, &id)
        .await
        .map_err(ApiError::internal)?
    {
        Some(detail) => Ok(HttpResponse::Ok().json(detail)),
        None => Err(not_found(&id)),
    }
}

#[derive(Deserialize)]
pub struct PageQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn events(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    if plugins::get(&state, &id)
        .await
        .map_err(ApiError::internal)?
        .is_none()
    {
        // Receipts of an uninstalled plugin whose data was kept are still readable.
        let any = state
            .store
            .list_plugin_events(&id, PageRequest::first(1))
            .await
            .map_err(store_error)?;
        if any.items.is_empty() {
            return Err(not_found(&id));
        }
    }
    let page = PageRequest {
        limit: query.limit.unwrap_or(50),
        cursor: query.cursor.clone().filter(|c| !c.is_empty()),
    };
    let page = state
        .store
        .list_plugin_events(&id, page)
        .await
        .map_err(store_error)?;
    let items: Vec<ReceiptView> = page.items.iter().map(ReceiptView::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items, "nextCursor": page.next_cursor })))
}

async fn install(state: &AppState, source: InstallSource) -> Result<HttpResponse, ApiError> {
    let outcome = state.plugins.install(source).await?;
    let status = if outcome.already_installed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let detail = plugins::detail(state, &outcome.id)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::build(status).json(json!({
        "installed": outcome,
        "plugin": detail,
        "next": format!("POST /api/admin/plugins/{}/enable with {{\"acceptConsent\": true}} after reading consentText", outcome.id),
    })))
}

/// The multipart field an uploaded package is sent in.
pub const UPLOAD_FIELD: &str = "package";

/// An uploaded package, received into a file of its own in the staging directory
/// (`plugins/_staging/upload-<random>`, readable by the server's user only). Dropping it removes
/// the file, so keep it until the install has finished, whatever its outcome.
pub struct UploadedPackage {
    /// The file name it was uploaded as, without any directory.
    pub name: String,
    /// Small text fields sent before the file (a form's checkboxes), as name and value.
    pub fields: Vec<(String, String)>,
    file: NamedTempFile,
}

impl UploadedPackage {
    /// Whether the text field `name` was sent with value `value`.
    pub fn has_field(&self, name: &str, value: &str) -> bool {
        self.fields.iter().any(|(k, v)| k == name && v == value)
    }
}

/// Text fields longer than this are drained, not kept.
const MAX_TEXT_FIELD: usize = 256;

impl UploadedPackage {
    /// The install source for the received file; valid while `self` lives.
    pub fn source(&self) -> InstallSource {
        InstallSource::UploadFile {
            name: self.name.clone(),
            path: self.file.path().to_path_buf(),
        }
    }
}

/// Receives the `package` file of a multipart upload into the staging directory, refusing more
/// than the install limit before writing the chunk past it: an upload is never held in memory.
pub async fn read_upload(
    state: &AppState,
    mut multipart: Multipart,
) -> Result<UploadedPackage, ApiError> {
    let limit = state.plugins.options().limits.max_archive_bytes;
    let unreadable = |e: actix_multipart::MultipartError| {
        ApiError::bad_request(
            "invalid_upload",
            format!("the upload could not be read: {e}"),
        )
    };
    let mut fields = Vec::new();
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(unreadable)?;
        if field.name() != Some(UPLOAD_FIELD) {
            // Keep short text fields (checkboxes), drain the rest (a CSRF token, a button).
            let name = field.name().unwrap_or_default().to_owned();
            let mut value = Vec::new();
            let mut too_long = false;
            while let Some(chunk) = field.next().await {
                let chunk = chunk.map_err(unreadable)?;
                too_long |= value.len() + chunk.len() > MAX_TEXT_FIELD;
                if !too_long {
                    value.extend_from_slice(&chunk);
                }
            }
            if !too_long && fields.len() < 16 {
                if let Ok(value) = String::from_utf8(value) {
                    fields.push((name, value));
                }
            }
            continue;
        }
        let name = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n).to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "upload.tgz".to_owned());
        let staging = state.plugins.layout().staging_dir();
        std::fs::create_dir_all(&staging)
            .map_err(|e| staging_failed(&staging, "create the staging directory", e))?;
        let mut file = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(&staging)
            .map_err(|e| staging_failed(&staging, "create a file for the upload in", e))?;
        let mut received: u64 = 0;
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(unreadable)?;
            received += chunk.len() as u64;
            if received > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the package is larger than the limit of {limit} bytes (NITEJAR_PLUGIN_MAX_BYTES)"),
                ));
            }
            // A plain blocking write on the server thread, on purpose: it lands in the page cache
            // and takes microseconds for a chunk, where a hop to a blocking thread per chunk would
            // cost more than the write. Nothing is fsynced: the file only lives for this install.
            file.write_all(&chunk)
                .map_err(|e| staging_failed(&staging, "write the upload to", e))?;
        }
        if received == 0 {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "empty_upload",
                "the uploaded file is empty; choose a plugin package (.tgz)",
            ));
        }
        return Ok(UploadedPackage { name, fields, file });
    }
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing_package",
        format!("no `{UPLOAD_FIELD}` file in the upload; send the .tgz as multipart field `{UPLOAD_FIELD}`"),
    ))
}

/// Why an upload could not be received into `staging`: a full disk is the operator's to fix and
/// says so (507); anything else is a server failure naming the directory (500).
fn staging_failed(staging: &Path, action: &str, e: io::Error) -> ApiError {
    if e.kind() == io::ErrorKind::StorageFull {
        tracing::error!(
            "plugin upload: could not {action} {}: {e}",
            staging.display()
        );
        return ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            format!(
                "the disk holding {} is full, so the upload could not be received; free space there (or point NITEJAR_PLUGINS_DIR at a larger disk) and upload again",
                staging.display()
            ),
        );
    }
    ApiError::internal(format!("could not {action} {}: {e}", staging.display()))
}

pub async fn upload(
    _admin: Admin,
    state: web::Data<AppState>,
    multipart: Multipart,
) -> Result<HttpResponse, ApiError> {
    let upload = read_upload(&state, multipart).await?;
    let answer = install(&state, upload.source()).await;
    // Only now, the install finished either way, may the received file go.
    drop(upload);
    answer
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpmBody {
    /// `name`, `name@version`, `@scope/name@range`.
    spec: String,
}

pub async fn install_npm(
    _admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<NpmBody>,
) -> Result<HttpResponse, ApiError> {
    let spec = NpmSpec::parse(body.spec.trim()).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_source",
            e.to_string(),
        )
    })?;
    install(&state, InstallSource::Npm(spec)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitBody {
    /// `https://…`, `file://…`, optionally with `#ref`.
    url: String,
    /// A branch, tag or commit (instead of `#ref` in the URL).
    #[serde(rename = "ref")]
    reference: Option<String>,
}

pub async fn install_git(
    _admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<GitBody>,
) -> Result<HttpResponse, ApiError> {
    let mut spec = GitSpec::parse(body.url.trim()).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_source",
            e.to_string(),
        )
    })?;
    if let Some(reference) = body.reference.as_deref().map(str::trim) {
        if !reference.is_empty() {
            spec.reference = Some(reference.to_owned());
        }
    }
    install(&state, InstallSource::Git(spec)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalBody {
    /// A package directory or `.tgz` file on the server's machine.
    path: String,
}

/// A path on the server's machine as an install source: a directory or a `.tgz` file.
pub fn local_source(path: &str) -> Result<InstallSource, ApiError> {
    let path = path.trim();
    let refuse = |message: String| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_source", message)
    };
    if path.is_empty() {
        return Err(refuse(
            "give the path of a package directory or .tgz file on the server".into(),
        ));
    }
    let p = std::path::Path::new(path);
    if !p.is_absolute() {
        return Err(refuse(format!(
            "`{path}` is not an absolute path; the server resolves paths on its own machine, so give the full path"
        )));
    }
    if p.is_dir() {
        Ok(InstallSource::Path(p.to_owned()))
    } else if p.is_file() {
        Ok(InstallSource::Archive(p.to_owned()))
    } else {
        Err(refuse(format!("nothing exists at `{path}` on the server")))
    }
}

pub async fn install_local(
    _admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<LocalBody>,
) -> Result<HttpResponse, ApiError> {
    install(&state, local_source(&body.path)?).await
}

/// A JSON body that may be left out (an empty body is the type's default); a body that is there
/// must parse.
pub(crate) fn json_or_default<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    super::body::json(body)
}

/// What the operator says when enabling or upgrading.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsentBody {
    /// The operator read `consentText` and accepts it.
    #[serde(default)]
    accept_consent: bool,
    /// Acknowledge every declared permission.
    #[serde(default)]
    acknowledge_all: bool,
    /// Acknowledge these (`network:api.example.com`, `secret:TOKEN`, …).
    #[serde(default)]
    acknowledge: Vec<String>,
}

impl ConsentBody {
    pub(crate) fn request(&self) -> EnableRequest {
        EnableRequest {
            accept_consent: self.accept_consent,
            acknowledge: if self.acknowledge_all {
                Acknowledge::All
            } else if self.acknowledge.is_empty() {
                Acknowledge::None
            } else {
                Acknowledge::These(self.acknowledge.clone())
            },
        }
    }
}

pub async fn enable(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request = json_or_default::<ConsentBody>(&body)?.request();
    let outcome = state.plugins.enable(&id, request).await?;
    Ok(HttpResponse::Ok().json(json!({ "enabled": outcome })))
}

pub async fn disable(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.plugins.disable(&id).await?;
    Ok(HttpResponse::Ok().json(json!({ "disabled": id.as_str() })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpgradeBody {
    /// Where the new version comes from, written as on the command line (npm spec, git URL, an
    /// absolute path); absent: the plugin's own source again.
    source: Option<String>,
    /// As for enable: asked again only for permissions the old version did not declare.
    #[serde(default)]
    accept_consent: bool,
    #[serde(default)]
    acknowledge_all: bool,
    #[serde(default)]
    acknowledge: Vec<String>,
}

pub async fn upgrade(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: UpgradeBody = json_or_default(&body)?;
    let source = match body
        .source
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(text) => Some(InstallSource::detect(text).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_source",
                e.to_string(),
            )
        })?),
    };
    let request = ConsentBody {
        accept_consent: body.accept_consent,
        acknowledge_all: body.acknowledge_all,
        acknowledge: body.acknowledge,
    }
    .request();
    let outcome = state.plugins.upgrade(&id, source, request).await?;
    Ok(HttpResponse::Ok().json(json!({ "upgraded": outcome })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct RollbackBody {
    /// The installed version to make current.
    version: String,
    /// Consent to that version, when none is on record for it (428 `consent_required` otherwise,
    /// with the consent text and what the version adds).
    #[serde(default)]
    accept_consent: bool,
}

pub async fn rollback(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<RollbackBody>,
) -> Result<HttpResponse, ApiError> {
    let version = body.version.trim();
    if version.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_version",
            "give the installed version to roll back to",
        ));
    }
    state
        .plugins
        .rollback(&id, version, body.accept_consent)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "id": id.as_str(), "version": version })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UninstallQuery {
    #[serde(default)]
    purge_files: bool,
    #[serde(default)]
    purge_data: bool,
}

pub async fn uninstall(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<UninstallQuery>,
) -> Result<HttpResponse, ApiError> {
    let options = UninstallOptions {
        purge_files: query.purge_files,
        purge_data: query.purge_data,
    };
    let outcome = state.plugins.uninstall(&id, options).await?;
    Ok(HttpResponse::Ok().json(json!({ "uninstalled": outcome })))
}
