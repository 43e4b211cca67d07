//! Consent per version: what the operator accepted for one exact version of a plugin, on record.
//!
//! A third-party version runs only with its consent on record, whatever made it current: enable
//! records the consent it was given; an upgrade whose version adds nothing to the consented set
//! carries the consent over, and one that adds anything (a permission, a hook, an integration type,
//! a skill) is refused — before anything of it is registered — until the operator consents to the
//! difference; a rollback to a version without consent asks for it. Only an install, and an upgrade
//! of a plugin never enabled, leave a version current without consent: it cannot run until it is
//! enabled, which asks for consent.

use std::collections::BTreeSet;

use super::{LifecycleError, PluginManager};
use crate::receipts::now_ms;
use crate::store::{ConsentRow, PluginVersionRow};
use crate::trust::consent::{consent_digest, consent_set};

/// Why a consent is on record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConsentBasis {
    /// The operator accepted the consent text.
    Accepted,
    /// An upgrade whose version adds nothing to what was consented before.
    CarriedOver,
    /// A plugin enabled before consents were recorded per version.
    Existing,
}

impl ConsentBasis {
    fn as_str(self) -> &'static str {
        match self {
            ConsentBasis::Accepted => "accepted",
            ConsentBasis::CarriedOver => "carried_over",
            ConsentBasis::Existing => "existing",
        }
    }
}

pub(crate) fn manifest_of(
    id: &str,
    version: &PluginVersionRow,
) -> Result<nitejar_sdk::manifest::Manifest, LifecycleError> {
    serde_json::from_str(&version.manifest_json).map_err(|e| LifecycleError::Corrupt {
        id: id.to_string(),
        what: "manifest",
        reason: e.to_string(),
    })
}

impl PluginManager {
    /// The consent on record for exactly this version (same checksum), if any.
    pub(crate) async fn consent_of(
        &self,
        version: &PluginVersionRow,
    ) -> Result<Option<ConsentRow>, LifecycleError> {
        Ok(self
            .store
            .get_consent(&version.plugin_id, &version.version)
            .await?
            .filter(|c| c.checksum == version.checksum))
    }

    /// The consented set of a consent on record, or the empty set.
    pub(crate) fn consented_set(consent: Option<&ConsentRow>) -> BTreeSet<String> {
        consent
            .map(|c| c.consented.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Records the consent to `version` (`text`: the consent text accepted, if one was).
    pub(crate) async fn record_consent(
        &self,
        version: &PluginVersionRow,
        basis: ConsentBasis,
        text: Option<&str>,
    ) -> Result<(), LifecycleError> {
        let manifest = manifest_of(&version.plugin_id, version)?;
        self.store
            .put_consent(&ConsentRow {
                plugin_id: version.plugin_id.clone(),
                version: version.version.clone(),
                checksum: version.checksum.clone(),
                consented: consent_set(&manifest).into_iter().collect(),
                consent_digest: text.map(consent_digest).unwrap_or_default(),
                basis: basis.as_str().to_string(),
                accepted_at: now_ms(),
            })
            .await?;
        Ok(())
    }

    /// A plugin enabled before consents were recorded per version (it has none at all) keeps running
    /// its current version: the consent it was enabled with is recorded for that version, as
    /// `existing`. A plugin with consents on record gets nothing here: a version without its own is
    /// refused.
    pub(crate) async fn consent_existing(&self, version: &PluginVersionRow) {
        match self.store.list_consents(&version.plugin_id).await {
            Ok(consents) if consents.is_empty() => {
                if let Err(e) = self
                    .record_consent(version, ConsentBasis::Existing, None)
                    .await
                {
                    tracing::warn!(plugin.id = %version.plugin_id, "could not record the consent it was enabled with: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(plugin.id = %version.plugin_id, "could not read its consents: {e}")
            }
        }
    }

    /// Refuses to run `version` of a third-party plugin without its consent on record.
    pub(crate) async fn require_consent(
        &self,
        version: &PluginVersionRow,
    ) -> Result<(), LifecycleError> {
        if self.consent_of(version).await?.is_some() {
            return Ok(());
        }
        let manifest = manifest_of(&version.plugin_id, version)?;
        let execution = match self.store.get_plugin(&version.plugin_id).await {
            Ok(Some(row)) => self.execution_of(&row),
            _ => self.options.execution,
        };
        Err(LifecycleError::ConsentRequired {
            id: version.plugin_id.clone(),
            text: crate::trust::consent_text_for(&manifest, self.options.policy.mode(), execution),
            diff: None,
        })
    }
}
