//! Running plugin code at the call boundary: panics are caught, and a call
//! that overruns its deadline is abandoned (the engine stops waiting and uses
//! the fallback).
//!
//! Native code cannot be pre-empted. With [`Isolation::Thread`] (the default)
//! calls run on a worker thread and the caller waits at most the deadline; a
//! worker stuck in an overrunning call is left to finish on its own and a new
//! one takes its place. [`Isolation::Inline`] runs the call on the caller's
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
    worker: Mutex<Option<mpsc::Sender<Job>>>,
}

impl Runner {
    pub fn new(isolation: Isolation, deadline: Duration) -> Self {
        quiet_worker_panics();
        Runner {
            isolation,
            deadline,
            worker: Mutex::new(None),
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

    fn run_on_worker<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Outcome<T> {
        let start = Instant::now();
        let (reply, result) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let outcome = catch_unwind(AssertUnwindSafe(job));
            let _ = reply.send(outcome);
        });
        {
            let mut worker = self.worker.lock().unwrap_or_else(|p| p.into_inner());
            let sender = worker.get_or_insert_with(spawn_worker);
            if let Err(mpsc::SendError(job)) = sender.send(job) {
                // The worker is gone: start another.
                let fresh = spawn_worker();
                let _ = fresh.send(job);
                *worker = Some(fresh);
            }
        }
        match result.recv_timeout(self.deadline) {
            Ok(Ok(v)) => Outcome::Done(v, start.elapsed()),
            Ok(Err(panic)) => Outcome::Panicked(panic_message(&*panic), start.elapsed()),
            Err(RecvTimeoutError::Timeout) => {
                // Leave the stuck worker to finish alone; later calls get a
                // new one.
                *self.worker.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Outcome::Overran(start.elapsed())
            }
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

fn spawn_worker() -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let spawned = std::thread::Builder::new()
        .name(WORKER_NAME.into())
        .spawn(move || {
            IN_PLUGIN_CALL.set(true);
            while let Ok(job) = rx.recv() {
                job();
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a plugin worker thread");
    }
    tx
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
