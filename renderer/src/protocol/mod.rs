//! The only channel between plugin and agent: labels, annotations and status on managed objects.
//!
//! Neither side defines a CRD; everything the plugin knows about the agent (and the reverse) is
//! written here, so a key is never spelled twice. The README's "Protocol" section documents it.

mod adoption;
mod applyset;
mod break_glass;
mod decorate;
mod digest;
mod drift_history;
mod drift_report;
mod keys;
mod members;
mod status;
mod transport;

pub use adoption::{Adoption, adoption};
pub use applyset::{GroupKind, applyset_id, format_group_kinds, parse_group_kinds};
pub use break_glass::{BreakGlass, BreakGlassError, DEFAULT_MAX_BREAK_GLASS_HOURS};
pub use decorate::decorate;
pub use digest::render_digest;
pub use drift_history::{DRIFT_HISTORY_MAX_BYTES, DriftAction, DriftEvent, DriftHistory};
pub use drift_report::ForeignEntry;
pub use keys::*;
pub use members::MemberRevisions;
pub use status::{
    BREAK_GLASS_REJECTED_MAX, BreakGlassEntry, BreakGlassRejected, HealthEntry, PruneCandidate,
    PruneHold, RECENT_DRIFT_CORRECTIONS_MAX, RECENT_DRIFT_CORRECTIONS_WINDOW_SECS, SyncResult,
    SyncStatus,
};
pub use transport::insecure_transport_warning;
