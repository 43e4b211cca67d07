//! Assignment scopes and the resolver that picks a run's skills.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::index::{name_key, rank, Skill, SkillIndex};
use super::SkillError;
use nitejar_store::store::SkillAssignmentRow;

/// Where an assignment applies.
///
/// Written `global`, `team:<id>`, `agent:<id>` or `integration_type:<type>`; stored as the
/// `scope` column (`global`, `team`, `agent`, `integration_type`) plus `scope_id`.
///
/// ```
/// use nitejar_agent::skills::Scope;
/// let scope: Scope = "team:support".parse().unwrap();
/// assert_eq!(scope, Scope::Team("support".into()));
/// assert_eq!(scope.to_string(), "team:support");
/// assert!("team:".parse::<Scope>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every run.
    Global,
    /// Runs of agents of this team (`AgentConfig.team_id`).
    Team(String),
    /// Runs of this agent.
    Agent(String),
    /// Runs of work items that came through an integration of this type (`telegram`, …).
    IntegrationType(String),
}

impl Scope {
    /// The stored `scope` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Team(_) => "team",
            Scope::Agent(_) => "agent",
            Scope::IntegrationType(_) => "integration_type",
        }
    }

    /// The stored `scope_id` column (empty for `global`).
    pub fn scope_id(&self) -> &str {
        match self {
            Scope::Global => "",
            Scope::Team(id) | Scope::Agent(id) | Scope::IntegrationType(id) => id,
        }
    }

    /// How specific the scope is: agent 3, team 2, integration type 1, global 0. Of the assignments
    /// of one skill that match a run, the most specific decides.
    pub fn specificity(&self) -> u8 {
        match self {
            Scope::Global => 0,
            Scope::IntegrationType(_) => 1,
            Scope::Team(_) => 2,
            Scope::Agent(_) => 3,
        }
    }

    /// The scope of a stored assignment.
    pub fn from_row(scope: &str, scope_id: Option<&str>) -> Result<Scope, SkillError> {
        let id = scope_id.unwrap_or("");
        if scope == "global" {
            return Ok(Scope::Global);
        }
        format!("{scope}:{id}").parse()
    }

    /// Whether the scope applies to a run.
    pub fn matches(&self, run: &RunScope) -> bool {
        match self {
            Scope::Global => true,
            Scope::Agent(id) => *id == run.agent_id,
            Scope::Team(id) => run.team_id.as_deref() == Some(id.as_str()),
            Scope::IntegrationType(t) => run.integration_type.as_deref() == Some(t.as_str()),
        }
    }
}

impl FromStr for Scope {
    type Err = SkillError;
    fn from_str(s: &str) -> Result<Scope, SkillError> {
        let invalid = |message: String| SkillError::Invalid {
            field: "scope".into(),
            message,
        };
        let s = s.trim();
        if s == "global" {
            return Ok(Scope::Global);
        }
        let Some((kind, id)) = s.split_once(':') else {
            return Err(invalid(format!(
                "`{s}` is not a scope; use global, team:<id>, agent:<id> or integration_type:<type>"
            )));
        };
        if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
            return Err(invalid(format!(
                "`{s}`: the id after `{kind}:` must be 1 to 256 characters, one line"
            )));
        }
        match kind {
            "team" => Ok(Scope::Team(id.into())),
            "agent" => Ok(Scope::Agent(id.into())),
            "integration_type" => Ok(Scope::IntegrationType(id.into())),
            _ => Err(invalid(format!(
                "`{kind}` is not a scope kind; use global, team:<id>, agent:<id> or \
                 integration_type:<type>"
            ))),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            other => write!(f, "{}:{}", other.kind(), other.scope_id()),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a run is, for skill resolution.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunScope {
    pub agent_id: String,
    /// The agent's team (`AgentConfig.team_id`).
    pub team_id: Option<String>,
    /// The work item's integration type.
    pub integration_type: Option<String>,
}

/// A skill resolved for a run, with the assignment that put it there.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedSkill {
    pub skill: Skill,
    pub priority: i64,
    /// The scope of the deciding assignment.
    pub scope: Scope,
}

/// The skills of a run: for each skill, the most specific of its assignments that match the run
/// decides whether it is in and with which priority; skills that are disabled, inactive or missing
/// from the index are left out; of skills sharing a name the one with precedence stays. Sorted by
/// priority (high first), then name, then id.
pub fn resolve(
    index: &SkillIndex,
    assignments: &[SkillAssignmentRow],
    run: &RunScope,
) -> Vec<ResolvedSkill> {
    // skill id → (deciding scope, assignment)
    let mut deciding: BTreeMap<&str, (Scope, &SkillAssignmentRow)> = BTreeMap::new();
    for a in assignments {
        let scope = match Scope::from_row(&a.scope, a.scope_id.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(assignment.id = %a.id, "skipping a skill assignment: {e}");
                continue;
            }
        };
        if !scope.matches(run) {
            continue;
        }
        let replace = match deciding.get(a.skill_id.as_str()) {
            None => true,
            Some((current, row)) => {
                (scope.specificity(), a.updated_at) > (current.specificity(), row.updated_at)
            }
        };
        if replace {
            deciding.insert(a.skill_id.as_str(), (scope, a));
        }
    }
    let mut by_name: BTreeMap<String, ResolvedSkill> = BTreeMap::new();
    for (skill_id, (scope, a)) in deciding {
        if !a.enabled {
            continue;
        }
        let Some(skill) = index.get(skill_id).filter(|s| s.is_available()) else {
            continue;
        };
        let candidate = ResolvedSkill {
            skill: skill.clone(),
            priority: a.priority,
            scope,
        };
        let key = name_key(&skill.name);
        match by_name.get(&key) {
            Some(existing) if rank(&existing.skill, skill).is_le() => {}
            _ => {
                by_name.insert(key, candidate);
            }
        }
    }
    let mut out: Vec<ResolvedSkill> = by_name.into_values().collect();
    out.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| name_key(&a.skill.name).cmp(&name_key(&b.skill.name)))
            .then_with(|| a.skill.id.cmp(&b.skill.id))
    });
    out
}
