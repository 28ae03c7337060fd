//! Running plugin code at the call boundary: panics are caught, and a call
//! that overruns its deadline is abandoned (the engine stops waiting and uses
//! the fallback).
//!
//! Native code cannot be pre-empted. With [`Isolation::Thread`] (the default)
//! calls run on a worker thread and the caller waits at most the deadline; a
//! worker stuck in an overrunning call is left to finish on its own and a new
//! one takes its place. Workers are pooled: concurrent callers (the worlds of
//! the engine service) each get an idle worker, so no call waits behind
//! another's and the deadline counts only the call itself. [`Isolation::Inline`] runs the call on the caller's
//! thread (cheapest; an overrun is detected when the call returns, and its
//! result is discarded all the same).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Where plugin calls run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// On a worker thread, waited for at most the deadline.
    #[default]
    Thread,
    /// On the caller's thread.
    Inline,
}

/// How a call ended.
#[derive(Debug)]
pub enum Outcome<T> {
    Done(T, Duration),
    Panicked(String, Duration),
    Overran(Duration),
}

type Job = Box<dyn FnOnce() + Send>;

pub struct Runner {
    isolation: Isolation,
    deadline: Duration,
    /// Idle workers; a call takes one and gives it back when it returns in
    /// time.
    idle: Mutex<Vec<mpsc::Sender<Job>>>,
}

/// Idle workers kept beyond this are let go.
const MAX_IDLE_WORKERS: usize = 64;

impl Runner {
    pub fn new(isolation: Isolation, deadline: Duration) -> Self {
        quiet_worker_panics();
        Runner {
            isolation,
            deadline,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Runs `job`, catching a panic and enforcing the deadline.
    pub fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Outcome<T> {
        match self.isolation {
            Isolation::Inline => {
                let start = Instant::now();
                let outer = IN_PLUGIN_CALL.replace(true);
                let result = catch_unwind(AssertUnwindSafe(job));
                IN_PLUGIN_CALL.set(outer);
                let took = start.elapsed();
                match result {
                    Err(panic) => Outcome::Panicked(panic_message(&*panic), took),
                    Ok(_) if took > self.deadline => Outcome::Overran(took),
                    Ok(v) => Outcome::Done(v, took),
                }
            }
            Isolation::Thread => self.run_on_worker(job),
        }
    }

    /// Runs `job` on the caller's thread, catching a panic, for code whose
    /// runtime pre-empts it at its own deadline (a sandboxed plugin): it is
    /// never abandoned, so it never counts as an overrun here.
    pub fn run_preempted<T>(&self, job: impl FnOnce() -> T) -> Outcome<T> {
        let start = Instant::now();
        let outer = IN_PLUGIN_CALL.replace(true);
        let result = catch_unwind(AssertUnwindSafe(job));
        IN_PLUGIN_CALL.set(outer);
        match result {
            Err(panic) => Outcome::Panicked(panic_message(&*panic), start.elapsed()),
            Ok(v) => Outcome::Done(v, start.elapsed()),
        }
    }

    fn run_on_worker<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Outcome<T> {
        let start = Instant::now();
        let (reply, result) = mpsc::sync_channel(1);
        let mut job: Job = Box::new(move || {
            let outcome = catch_unwind(AssertUnwindSafe(job));
            let _ = reply.send(outcome);
        });
        let worker = loop {
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some(worker) = idle.or_else(spawn_worker) else {
                return Outcome::Panicked(
                    "cannot start a plugin worker thread".into(),
                    start.elapsed(),
                );
            };
            match worker.send(job) {
                Ok(()) => break worker,
                // That worker is gone: try the next one (or a new one).
                Err(mpsc::SendError(back)) => job = back,
            }
        };
        match result.recv_timeout(self.deadline) {
            Ok(outcome) => {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                if idle.len() < MAX_IDLE_WORKERS {
                    idle.push(worker);
                }
                drop(idle);
                match outcome {
                    Ok(v) => Outcome::Done(v, start.elapsed()),
                    Err(panic) => Outcome::Panicked(panic_message(&*panic), start.elapsed()),
                }
            }
            // The stuck worker is not given back: it finishes alone and
            // exits when its channel closes.
            Err(RecvTimeoutError::Timeout) => Outcome::Overran(start.elapsed()),
            Err(RecvTimeoutError::Disconnected) => {
                Outcome::Panicked("the plugin worker thread died".into(), start.elapsed())
            }
        }
    }
}

const WORKER_NAME: &str = "provenant-plugin";

thread_local! {
    /// Whether this thread is running plugin code (always, on workers).
    static IN_PLUGIN_CALL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A panic in plugin code is an event, not a crash report: in plugin calls
/// the panic hook logs one line instead of printing (and symbolizing) a
/// backtrace, which can take longer than the deadline and would make a panic
/// look like an overrun. Other code keeps the hook it had. The hook is
/// process-wide by nature; it is installed once and changes nothing else.
fn quiet_worker_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_PLUGIN_CALL.get() {
                let message = panic_message(info.payload());
                let location = info.location().map(|l| l.to_string()).unwrap_or_default();
                tracing::warn!(%location, "plugin code panicked: {message}");
            } else {
                previous(info);
            }
        }));
    });
}

fn spawn_worker() -> Option<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    let spawned = std::thread::Builder::new()
        .name(WORKER_NAME.into())
        .spawn(move || {
            IN_PLUGIN_CALL.set(true);
            while let Ok(job) = rx.recv() {
                job();
            }
        });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::error!(error = %e, "cannot start a plugin worker thread");
            None
        }
    }
}

pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_panics_and_overruns_are_told_apart_in_both_modes() {
        for isolation in [Isolation::Thread, Isolation::Inline] {
            let runner = Runner::new(isolation, Duration::from_millis(50));
            assert!(matches!(runner.run(|| 7), Outcome::Done(7, _)));
            match runner.run(|| -> u8 { panic!("boom") }) {
                Outcome::Panicked(msg, _) => assert_eq!(msg, "boom"),
                other => panic!("{isolation:?}: {other:?}"),
            }
            let slow = runner.run(|| std::thread::sleep(Duration::from_millis(200)));
            assert!(
                matches!(slow, Outcome::Overran(_)),
                "{isolation:?}: {slow:?}"
            );
            // The runner goes on after both.
            assert!(matches!(runner.run(|| 8), Outcome::Done(8, _)));
        }
    }

    #[test]
    fn concurrent_calls_do_not_wait_behind_each_other() {
        // Each call takes 60% of the deadline: run one after the other on a
        // single worker, the second would overrun.
        let runner =
            std::sync::Arc::new(Runner::new(Isolation::Thread, Duration::from_millis(100)));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let (runner, barrier) = (runner.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    runner.run(|| std::thread::sleep(Duration::from_millis(60)))
                })
            })
            .collect();
        for call in calls {
            let outcome = call.join().expect("caller thread");
            assert!(matches!(outcome, Outcome::Done(..)), "{outcome:?}");
        }
    }

    #[test]
    fn thread_isolation_stops_waiting_at_the_deadline() {
        let runner = Runner::new(Isolation::Thread, Duration::from_millis(30));
        let start = Instant::now();
        let out = runner.run(|| std::thread::sleep(Duration::from_secs(2)));
        assert!(matches!(out, Outcome::Overran(_)));
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "waited {:?}",
            start.elapsed()
        );
    }
}
