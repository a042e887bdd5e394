//! Every label, annotation, field manager and name of the protocol.

/// Our own annotation/label prefix.
pub const PREFIX: &str = "kubectl-gitops.dev/";

// ApplySet (KEP-3659). These four are fixed by the KEP; kubectl reads them too.
/// Label on the parent: the set's ID (see [`super::applyset_id`]).
pub const APPLYSET_ID_LABEL: &str = "applyset.kubernetes.io/id";
/// Label on every member: the ID of the set it belongs to.
pub const APPLYSET_PART_OF_LABEL: &str = "applyset.kubernetes.io/part-of";
/// Annotation on the parent: `<tool>/<version>`.
pub const APPLYSET_TOOLING_ANNOTATION: &str = "applyset.kubernetes.io/tooling";
/// Annotation on the parent: sorted, comma-separated `Kind.group` of all members.
pub const APPLYSET_GROUP_KINDS_ANNOTATION: &str = "applyset.kubernetes.io/contains-group-kinds";
/// Tool name written into the tooling annotation.
pub const TOOLING_NAME: &str = "kubectl-gitops";

/// The parent object is a ConfigMap with this name in the managed namespace.
pub const PARENT_NAME: &str = "kubectl-gitops";
/// Data key of the parent ConfigMap that holds the JSON-encoded [`super::SyncStatus`].
pub const STATUS_DATA_KEY: &str = "status.json";
/// Mirror of the status result on the parent, for `kubectl get cm -L`.
pub const RESULT_LABEL: &str = "kubectl-gitops.dev/result";

/// Data key of the parent ConfigMap that holds the JSON-encoded [`super::MemberRevisions`]: per
/// member, the commit that last changed it.
pub const MEMBERS_DATA_KEY: &str = "members.json";
/// Written on every managed object by agents before 0.2 (the commit it was last applied from).
/// No longer written: an upgraded agent removes it once; `explain` still reads it from objects
/// an older agent manages.
pub const REVISION_ANNOTATION: &str = "kubectl-gitops.dev/revision";
/// On a managed object: `disabled` keeps the agent from ever pruning it.
pub const PRUNE_ANNOTATION: &str = "kubectl-gitops.dev/prune";
/// The value of [`PRUNE_ANNOTATION`] that opts an object out of pruning.
pub const PRUNE_DISABLED: &str = "disabled";
/// On the parent: the commit whose mass prune `kubectl gitops prune --approve` allowed.
pub const PRUNE_APPROVED_ANNOTATION: &str = "kubectl-gitops.dev/prune-approved";
/// The ConfigMap that holds the agent's tracked revision (`--config-path`, see README).
pub const AGENT_CONFIG_NAME: &str = "gitops-agent";
/// Data key of [`AGENT_CONFIG_NAME`]: the branch, tag, commit or range to follow.
pub const AGENT_CONFIG_REVISION_KEY: &str = "revision";
/// Data key of [`AGENT_CONFIG_NAME`]: the one commit (full SHA) the agent may move to although
/// it does not descend from the last applied one. `kubectl gitops rollback` writes it; the
/// agent's flag of the same name does the same for an agent pinned in its Deployment.
pub const AGENT_CONFIG_ALLOW_ROLLBACK_KEY: &str = "allow-rollback-to";
/// The value of [`PRUNE_ANNOTATION`] that opts a PersistentVolumeClaim in to pruning: its
/// data goes with it, so it is never pruned otherwise.
pub const PRUNE_ENABLED: &str = "enabled";
/// On a managed object (in Git or live): `"true"` makes the agent remove foreign additions
/// (fields Git never sets, added by someone else), as `--remove-foreign` does for all.
pub const REMOVE_FOREIGN_ANNOTATION: &str = "kubectl-gitops.dev/remove-foreign";
/// Data key of the parent holding the drift history ring (JSON), apart from the status.
pub const DRIFT_HISTORY_DATA_KEY: &str = "drift-history.json";
/// On a managed object (in Git or live): comma-separated JSON pointers the agent leaves alone.
pub const IGNORE_FIELDS_ANNOTATION: &str = "kubectl-gitops.dev/ignore-fields";
/// On a live object that is not yet a member: `"true"` lets the agent take it over although
/// someone else owns it (see [`super::adoption`]). Read from the live object only.
pub const ADOPT_ANNOTATION: &str = "kubectl-gitops.dev/adopt";
/// The well-known label naming the tool that manages an object (Helm sets it).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The name `manifests/base` gives the agent's ServiceAccount, Role, RoleBinding, Deployment,
/// NetworkPolicy and Lease: the agent refuses to take them from Git (see the README).
pub const AGENT_NAME: &str = "gitops-agent";
/// Prefix of the credentials Secret `install` generates (`gitops-agent-credentials-<hash>`).
pub const AGENT_CREDENTIALS_PREFIX: &str = "gitops-agent-credentials";
/// On a namespace: `"true"` lets its pods reach the agent's port (the NetworkPolicy of
/// `manifests/base`): Prometheus's and the ingress controller's namespaces.
pub const AGENT_CLIENTS_LABEL: &str = "kubectl-gitops.dev/agent-clients";
/// The tooling prefix of a parent written by this project; any other tooling is refused.
pub const TOOLING_PREFIX: &str = "kubectl-gitops/";

// Break-glass: written by `kubectl gitops break-glass`, honoured by the agent.
pub const BREAK_GLASS_BY_ANNOTATION: &str = "kubectl-gitops.dev/break-glass-by";
pub const BREAK_GLASS_REASON_ANNOTATION: &str = "kubectl-gitops.dev/break-glass-reason";
pub const BREAK_GLASS_SINCE_ANNOTATION: &str = "kubectl-gitops.dev/break-glass-since";
pub const BREAK_GLASS_UNTIL_ANNOTATION: &str = "kubectl-gitops.dev/break-glass-until";

/// Field manager of the agent's server-side applies.
pub const AGENT_FIELD_MANAGER: &str = "gitops-agent";
/// Field manager of changes made under break-glass, so `explain` and `diff` can tell them apart.
pub const BREAK_GLASS_FIELD_MANAGER: &str = "kubectl-gitops-break-glass";
/// Field manager of the plugin's server-side dry-runs (`diff`).
pub const PLUGIN_FIELD_MANAGER: &str = "kubectl-gitops";

/// Event reasons the agent records.
pub mod event_reason {
    pub const SYNCED: &str = "Synced";
    pub const SYNC_FAILED: &str = "SyncFailed";
    pub const REFUSED: &str = "Refused";
    pub const DRIFT_CORRECTED: &str = "DriftCorrected";
    pub const PRUNED: &str = "Pruned";
    pub const BREAK_GLASS_STARTED: &str = "BreakGlassStarted";
    pub const BREAK_GLASS_EXPIRED: &str = "BreakGlassExpired";
    pub const BREAK_GLASS_ENDED: &str = "BreakGlassEnded";
    pub const BREAK_GLASS_REJECTED: &str = "BreakGlassRejected";
    pub const BREAK_GLASS_CLAMPED: &str = "BreakGlassClamped";
    pub const PRUNE_HELD: &str = "PruneHeld";
    pub const REVISION_SWITCHED: &str = "RevisionSwitched";
    /// A commit that does not descend from the last applied one, let through as a rollback.
    pub const ROLLED_BACK: &str = "RolledBack";
}
