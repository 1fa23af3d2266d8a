//! The sessions of one worker, addressed by [`SessionRef`] slot and
//! generation so that a stale reference (a packet or an authentication
//! answer for a session that has since closed) never reaches a newer session
//! that reuses the slot.

use std::rc::Rc;

use crate::routing::session_table::SessionRef;

#[derive(Debug)]
struct Entry<T> {
    generation: u32,
    value: Option<Rc<T>>,
}

/// A slab of sessions with generation-checked access.
#[derive(Debug)]
pub struct Slots<T> {
    worker: u16,
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    live: usize,
}

impl<T> Slots<T> {
    pub fn new(worker: u16) -> Self {
        Slots {
            worker,
            entries: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }

    /// Reserves a slot and builds its value with the reference it will have.
    /// `None` when the slot space is exhausted.
    pub fn insert_with(
        &mut self,
        make: impl FnOnce(SessionRef) -> T,
    ) -> Option<(SessionRef, Rc<T>)> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.entries.len())
                    .ok()
                    .filter(|s| *s <= SessionRef::MAX_SLOT)?;
                self.entries.push(Entry {
                    generation: 0,
                    value: None,
                });
                slot
            }
        };
        let entry = &mut self.entries[slot as usize];
        let reference = SessionRef {
            worker: self.worker,
            slot,
            generation: entry.generation,
        };
        let value = Rc::new(make(reference));
        entry.value = Some(value.clone());
        self.live += 1;
        Some((reference, value))
    }

    /// The session `reference` names, if it is still alive.
    pub fn get(&self, reference: SessionRef) -> Option<&Rc<T>> {
        let entry = self.entries.get(reference.slot as usize)?;
        if entry.generation != reference.generation {
            return None;
        }
        entry.value.as_ref()
    }

    /// Frees the slot of `reference` (if it is still the same session) and
    /// bumps its generation.
    pub fn remove(&mut self, reference: SessionRef) -> Option<Rc<T>> {
        let entry = self.entries.get_mut(reference.slot as usize)?;
        if entry.generation != reference.generation {
            return None;
        }
        let value = entry.value.take()?;
        entry.generation = SessionRef::next_generation(entry.generation);
        self.free.push(reference.slot);
        self.live -= 1;
        Some(value)
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// All live sessions.
    pub fn values(&self) -> impl Iterator<Item = &Rc<T>> {
        self.entries.iter().filter_map(|e| e.value.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_references_do_not_reach_a_reused_slot() {
        let mut slots = Slots::new(3);
        let (a, _) = slots.insert_with(|r| r.slot).unwrap();
        assert_eq!(a.worker, 3);
        assert_eq!(slots.get(a).map(|v| **v), Some(a.slot));
        assert!(slots.remove(a).is_some());
        assert!(slots.get(a).is_none());
        let (b, _) = slots.insert_with(|r| r.slot).unwrap();
        assert_eq!(b.slot, a.slot, "slot is reused");
        assert_ne!(b.generation, a.generation);
        assert!(
            slots.get(a).is_none(),
            "old reference must not see the new session"
        );
        assert!(
            slots.remove(a).is_none(),
            "old reference must not free the new session"
        );
        assert_eq!(slots.len(), 1);
        assert_eq!(slots.values().count(), 1);
    }
}
