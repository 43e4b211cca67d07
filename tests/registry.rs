//! Registries with the built-ins linked through `linkme`: what is registered, who may claim which
//! integration type, and that a refused activation changes nothing.

use nitejar_core::builtin::builtins;
use nitejar_core::builtin::BuiltinExt;
use nitejar_core::registry::{ActivePlugin, PluginMeta, PluginOrigin, RegistryError};
use nitejar_core::runtime::Runtime;
use nitejar_sdk::integration::{PostResponseOptions, PostResponseResult};
use nitejar_sdk::{
    Host, Integration, IntegrationDescriptor, IntegrationError, IntegrationInstance, Plugin,
    SkillContribution, WebhookParseResult, WebhookRequest,
};
use serde_json::Value;

struct Named(&'static str);

impl Integration for Named {
    fn descriptor(&self) -> IntegrationDescriptor {
        IntegrationDescriptor::new(self.0, self.0, "test integration")
    }
    fn parse_webhook(
        &self,
        _: &WebhookRequest,
        _: &IntegrationInstance,
        _: &dyn Host,
    ) -> Result<WebhookParseResult, IntegrationError> {
        Ok(WebhookParseResult::ignore("test"))
    }
    fn post_response(
        &self,
        _: &IntegrationInstance,
        _: &str,
        _: &str,
        _: Option<&Value>,
        _: &PostResponseOptions,
        _: &dyn Host,
    ) -> Result<PostResponseResult, IntegrationError> {
        Ok(PostResponseResult::sent(None))
    }
}

fn third_party(id: &str, kind: &'static str) -> ActivePlugin {
    ActivePlugin::from_plugin(
        PluginMeta::new(id, "1.0.0", PluginOrigin::ThirdParty),
        &Plugin::builder().integration(Named(kind)).build(),
    )
}

#[test]
fn built_ins_register_through_linkme() {
    assert!(nitejar_builtins::link() >= 1);
    let ids: Vec<String> = builtins()
        .iter()
        .map(|b| b.meta().unwrap().id.to_string())
        .collect();
    assert!(ids.contains(&"builtin.echo".to_string()), "{ids:?}");

    let rt = Runtime::builder().build();
    assert!(rt.activate_builtins().is_empty());
    let registry = rt.registry();
    let echo = registry.integration("echo").expect("echo registered");
    assert_eq!(&*echo.plugin.id, "builtin.echo");
    assert_eq!(echo.plugin.origin, PluginOrigin::Builtin);
    assert_eq!(echo.descriptor.display_name, "Echo (test channel)");
}

#[test]
fn a_third_party_plugin_can_never_claim_a_built_in_type() {
    nitejar_builtins::link();
    // Not even while the built-in is inactive.
    let rt = Runtime::builder().build();
    let err = rt
        .activate(third_party("com.evil.echo", "echo"))
        .unwrap_err();
    assert_eq!(
        err,
        RegistryError::BuiltinTypeClaimed {
            plugin: "com.evil.echo".into(),
            kind: "echo".into(),
            builtin: "builtin.echo".into()
        }
    );
    assert!(err.to_string().contains("rename the type"));
    assert!(rt.registry().plugin("com.evil.echo").is_none());
    assert_eq!(
        rt.reserved_types().get("echo").map(String::as_str),
        Some("builtin.echo")
    );
}

#[test]
fn two_plugins_cannot_share_a_type_and_a_refused_activation_changes_nothing() {
    let rt = Runtime::builder().build();
    rt.activate(third_party("com.acme.jira", "jira")).unwrap();
    let before = rt.registry();
    let err = rt
        .activate(third_party("com.other.jira", "jira"))
        .unwrap_err();
    assert!(matches!(err, RegistryError::DuplicateType { .. }), "{err}");
    let after = rt.registry();
    assert!(
        std::sync::Arc::ptr_eq(&before, &after),
        "registry untouched"
    );
    assert_eq!(
        &*after.integration("jira").unwrap().plugin.id,
        "com.acme.jira"
    );
    assert!(after.plugin("com.other.jira").is_none());
}

#[test]
fn activating_a_new_version_replaces_the_old_one() {
    let rt = Runtime::builder().build();
    rt.activate(third_party("com.acme.jira", "jira")).unwrap();
    let v2 = ActivePlugin::from_plugin(
        PluginMeta::new("com.acme.jira", "2.0.0", PluginOrigin::ThirdParty),
        &Plugin::builder().integration(Named("jira")).build(),
    );
    rt.activate(v2).unwrap();
    let registry = rt.registry();
    assert_eq!(registry.plugins().count(), 1);
    assert_eq!(
        &*registry.integration("jira").unwrap().plugin.version,
        "2.0.0"
    );
}

#[test]
fn skills_are_registered_and_unregistered_with_their_plugin() {
    let rt = Runtime::builder().build();
    let plugin = Plugin::builder()
        .skill(SkillContribution::inline(
            "triage",
            "Triage",
            "Sort issues.",
        ))
        .build();
    rt.activate(ActivePlugin::from_plugin(
        PluginMeta::new("com.acme.skills", "1.0.0", PluginOrigin::ThirdParty),
        &plugin,
    ))
    .unwrap();
    assert_eq!(rt.registry().skills().len(), 1);
    assert_eq!(rt.registry().skills()[0].skill.name, "Triage");
    rt.deactivate("com.acme.skills");
    assert!(rt.registry().skills().is_empty());

    let twice = Plugin::builder()
        .skill(SkillContribution::inline("a", "A", "x"))
        .skill(SkillContribution::inline("a", "A again", "y"))
        .build();
    let err = rt
        .activate(ActivePlugin::from_plugin(
            PluginMeta::new("com.acme.twice", "1.0.0", PluginOrigin::ThirdParty),
            &twice,
        ))
        .unwrap_err();
    assert!(matches!(err, RegistryError::DuplicateSkill { .. }));
}
