//! The fence check an append, a checkpoint or a projection commit makes
//! inside its transaction, on the lease rows it read (pure).

use crate::append::Fence;
use crate::error::LogError;

/// The epochs stored for `fences` (a lease never held is absent), compared
/// with the fences: the first that does not match refuses the append.
pub(crate) fn check_fences(
    fences: &[Fence],
    stored: &[(String, String, i64)],
) -> Result<(), LogError> {
    for fence in fences {
        let current = stored.iter().find(|(name, _, _)| *name == fence.lease);
        let matches = current.is_some_and(|(_, _, epoch)| u64::try_from(*epoch) == Ok(fence.epoch));
        if !matches {
            return Err(LogError::Fenced {
                lease: fence.lease.clone(),
                epoch: fence.epoch,
                current: current.and_then(|(_, _, e)| u64::try_from(*e).ok()),
                owner: current.map(|(_, owner, _)| owner.clone()),
            });
        }
    }
    Ok(())
}
