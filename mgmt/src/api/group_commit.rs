//! Group commit: many clients' changes share one crash-safe save.
//!
//! A save is a write, an fsync and a rename (10-20 ms on a virtual disk), so saving
//! every change on its own caps the API at a few dozen changes a second. Instead each
//! request is applied to the engine's config under the engine lock (all-or-nothing,
//! validated against everything applied before it) and numbered; its answer is held
//! back until a save that includes it is durable. Whoever finds no save running
//! becomes the committer: it snapshots the engine's config, saves it outside the
//! engine lock (others keep applying changes meanwhile), publishes the saved config
//! to the workers, and releases every answer up to the snapshot's number. If the save
//! fails, the engine goes back to the last durable config and every request applied
//! since is answered with an error: nothing unsaved is ever acknowledged, published
//! or shown as the state of the appliance.

use std::sync::{Condvar, Mutex};
use std::time::Instant;

use super::Engine;
use crate::error::Ec2Error;
use crate::store::Store;
use crate::validate::Checked;

/// Publishes a durable config to the workers; the instant is when it became durable.
pub type DurablePublish = Box<dyn FnMut(&Checked, Instant) + Send>;

struct State {
    /// Requests up to this number are saved and published.
    durable: u64,
    /// Requests up to this number were rolled back.
    failed: u64,
    committing: bool,
}

pub struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
    store: Option<Store>,
    publish: Mutex<DurablePublish>,
    /// The config as last saved (what a failed save goes back to).
    saved: Mutex<Checked>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl GroupCommit {
    /// `saved`: the config the engine starts from, already saved and published.
    pub fn new(saved: Checked, store: Option<Store>, publish: DurablePublish) -> GroupCommit {
        GroupCommit {
            state: Mutex::new(State { durable: 0, failed: 0, committing: false }),
            done: Condvar::new(),
            store,
            publish: Mutex::new(publish),
            saved: Mutex::new(saved),
        }
    }

    /// Returns once everything up to request `seq` (the engine's count when the
    /// request was answered) is durable, or with the error that undid it.
    pub fn settle(&self, engine: &Mutex<Engine>, seq: u64) -> Result<(), Ec2Error> {
        let mut st = lock(&self.state);
        loop {
            if st.durable >= seq {
                return Ok(());
            }
            if st.failed >= seq {
                return Err(Ec2Error::new(
                    "InternalError",
                    "The change was not saved, so it was not applied (the appliance could not write its state)",
                ));
            }
            if st.committing {
                st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.committing = true;
            drop(st);
            self.commit_once(engine);
            st = lock(&self.state);
        }
    }

    /// One save of everything applied so far, then publish; or a rollback.
    fn commit_once(&self, engine: &Mutex<Engine>) {
        let (target, snapshot) = {
            let e = lock(engine);
            (e.staged(), e.current().clone())
        };
        let saved = match &self.store {
            Some(store) => store.save(&snapshot.config),
            None => Ok(()),
        };
        let durable_at = Instant::now();
        let mut outcome = State { durable: target, failed: 0, committing: false };
        match saved {
            Ok(()) => {
                (lock(&self.publish))(&snapshot, durable_at);
                *lock(&self.saved) = snapshot;
            }
            Err(err) => {
                log::error!("saving the config failed, changes since the last save are undone: {err}");
                let mut e = lock(engine);
                e.reset(lock(&self.saved).clone());
                outcome.failed = e.staged();
            }
        }
        let mut st = lock(&self.state);
        st.committing = false;
        st.durable = st.durable.max(if outcome.failed == 0 { outcome.durable } else { 0 });
        st.failed = st.failed.max(outcome.failed);
        drop(st);
        self.done.notify_all();
    }
}
