//! Configuration from the environment.
//!
//! Every `NITEJAR_*` variable also answers to the earlier `SLOPBOT_*` name (the `NITEJAR_` one wins
//! when both are set). `DATABASE_URL`, `ENCRYPTION_KEY` and `PORT` keep their plain names.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use nitejar_core::skills::{SkillLimits, SkillsConfig};

/// Reads `NITEJAR_<name>`, falling back to `SLOPBOT_<name>`. Empty values count as unset.
pub fn var(name: &str) -> Option<String> {
    [format!("NITEJAR_{name}"), format!("SLOPBOT_{name}")]
        .iter()
        .find_map(|k| std::env::var(k).ok())
        .filter(|v| !v.trim().is_empty())
}

/// Reads a plain (unprefixed) variable. Empty values count as unset.
pub fn plain(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("NITEJAR_{name} must be a whole number, not `{v}`")),
    }
}

/// The server's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `NITEJAR_DATA_DIR`: where the database, plugins and logs live (default `./data`).
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: a SQLite path or `sqlite:` URL, or a `postgres://` URL
    /// (default `<data_dir>/nitejar.db`).
    pub database_url: String,
    /// `NITEJAR_PLUGINS_DIR` (default `<data_dir>/plugins`).
    pub plugins_dir: PathBuf,
    /// `ENCRYPTION_KEY`: 64 hex characters, 44 base64 characters, or 32 raw characters. When unset the
    /// key is read from (or generated into) `<data_dir>/encryption.key`.
    pub encryption_key: Option<String>,
    /// `NITEJAR_WEBHOOK_MAX_BYTES`: the largest webhook body accepted (default 1 MiB).
    pub webhook_max_bytes: usize,
    /// `NITEJAR_RUN_CONCURRENCY`: runs in parallel at most (default 4).
    pub run_concurrency: usize,
    /// `NITEJAR_MODEL_BASE_URL`: an OpenAI-compatible endpoint; unset means the offline model.
    pub model_base_url: Option<String>,
    /// `NITEJAR_MODEL_API_KEY`.
    pub model_api_key: Option<String>,
    /// `NITEJAR_MODEL`: the model name for the OpenAI-compatible endpoint.
    pub model: Option<String>,
    /// `NITEJAR_MODEL_TIMEOUT_MS` (default 120 000).
    pub model_timeout: Duration,
    /// `NITEJAR_SKILLS_DIRS`: roots of repo skills (`<root>/<dir>/SKILL.md`), separated by `:`, in
    /// order of precedence. Default: `./skills` when that directory exists, else none.
    pub skills_dirs: Vec<PathBuf>,
    /// `NITEJAR_SKILL_MAX_FILE_BYTES`: the largest skill file (default 256 KiB).
    pub skill_max_file_bytes: u64,
    /// `NITEJAR_SKILL_MAX_BYTES`: the largest skill, all its files together (default 1 MiB).
    pub skill_max_bytes: u64,
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Config> {
        let data_dir = PathBuf::from(var("DATA_DIR").unwrap_or_else(|| "./data".into()));
        let database_url = plain("DATABASE_URL")
            .unwrap_or_else(|| data_dir.join("nitejar.db").to_string_lossy().into_owned());
        let plugins_dir = var("PLUGINS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("plugins"));
        let model_base_url = var("MODEL_BASE_URL");
        let model = var("MODEL");
        if model_base_url.is_some() && model.is_none() {
            bail!("NITEJAR_MODEL_BASE_URL is set but NITEJAR_MODEL is not; name the model to use");
        }
        Ok(Config {
            data_dir,
            database_url,
            plugins_dir,
            encryption_key: plain("ENCRYPTION_KEY"),
            webhook_max_bytes: number("WEBHOOK_MAX_BYTES", 1024 * 1024)?,
            run_concurrency: number("RUN_CONCURRENCY", 4)?,
            model_base_url,
            model_api_key: var("MODEL_API_KEY"),
            model,
            model_timeout: Duration::from_millis(number("MODEL_TIMEOUT_MS", 120_000)?),
            skills_dirs: skills_dirs(),
            skill_max_file_bytes: number(
                "SKILL_MAX_FILE_BYTES",
                SkillLimits::default().max_file_bytes,
            )?,
            skill_max_bytes: number("SKILL_MAX_BYTES", SkillLimits::default().max_skill_bytes)?,
        })
    }

    /// The skill service's settings.
    pub fn skills_config(&self) -> SkillsConfig {
        SkillsConfig {
            roots: self.skills_dirs.clone(),
            limits: SkillLimits {
                max_file_bytes: self.skill_max_file_bytes,
                max_skill_bytes: self.skill_max_bytes,
                ..SkillLimits::default()
            },
        }
    }

    /// Creates the data and plugin directories.
    pub fn prepare_dirs(&self) -> anyhow::Result<()> {
        for dir in [&self.data_dir, &self.plugins_dir] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("could not create {}", dir.display()))?;
        }
        Ok(())
    }
}

/// `NITEJAR_SKILLS_DIRS` split on `:` (empty entries skipped), or `./skills` when it exists.
fn skills_dirs() -> Vec<PathBuf> {
    match var("SKILLS_DIRS") {
        Some(value) => std::env::split_paths(&value)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => {
            let default = PathBuf::from("./skills");
            if default.is_dir() {
                vec![default]
            } else {
                Vec::new()
            }
        }
    }
}
