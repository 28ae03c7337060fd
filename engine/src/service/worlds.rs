//! One worker per world in play: ticks of a world are evaluated in the order
//! they arrive, worlds proceed concurrently. A worker loads its world's
//! state (its snapshot and the world's events after it, [`world_state`]),
//! takes what has queued for its world, recognises ticks already in the
//! log, evaluates the rest on a blocking thread, hands all their events to
//! the group committer, and answers each job only when its events are
//! durable. A world idle for [`WorldsConfig::idle`] is saved and leaves
//! memory; its next job loads it again.
//!
//! [`world_state`]: super::world_state

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use provenant_events::{NewEvent, Position, StreamName, TickAck, WorldId};
use provenant_host::plugin_host::PluginHost;
use provenant_host::state::GameState;
use provenant_host::tick::{Tick, evaluate_tick, marker_event, tick_marker_id};
use provenant_host::world::describe;
use provenant_log::{EventLog, ExpectedVersion, Fence, LogError};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::commit::Committer;
use super::health::Health;
use super::ownership::{NotHeld, Ownership, Ticket};
use super::world_state;

/// Why a job was not done. The tick is not in the log; sending it again is
/// safe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobFailure {
    #[error("the engine is shutting down; the tick was not processed")]
    ShuttingDown,
    #[error("the log refused the events: {0}")]
    Refused(String),
    /// This instance does not work the world's partition now.
    #[error(transparent)]
    NotHeld(#[from] NotHeld),
    /// The world changed behind this instance's back, or its partition
    /// moved, while the job was done: nothing of it was written.
    #[error("not processed, send it again: {0}")]
    Retry(String),
}

/// The worlds of the engine and their workers.
pub struct Worlds {
    shared: Arc<Shared>,
    workers: Arc<Registry>,
    next_id: std::sync::atomic::AtomicU64,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The running workers by world; None once the engine stops taking jobs.
/// A job is sent through a clone of its world's sender taken under this
/// lock, and a worker leaves only under it while no clone is out (see
/// [`Worker::retire`]), so no job is ever sent to a worker that has left.
/// Each worker has a number of its own, so one that was evicted never
/// removes its successor.
type Registry = Mutex<Option<HashMap<WorldId, (u64, mpsc::Sender<Job>)>>>;

/// When worlds are saved and leave memory.
#[derive(Debug, Clone, Copy)]
pub struct WorldsConfig {
    /// A world without a job for this long is saved and leaves memory.
    pub idle: Duration,
    /// A world's snapshot is saved again after this many of its events.
    pub snapshot_every: u64,
}

impl Default for WorldsConfig {
    fn default() -> Self {
        WorldsConfig {
            idle: Duration::from_secs(300),
            snapshot_every: 10_000,
        }
    }
}

/// What the workers share.
pub struct Shared {
    pub host: Arc<PluginHost>,
    /// The partitions this instance works, and their fences.
    pub ownership: Arc<Ownership>,
    pub committer: Committer,
    pub log: EventLog,
    pub health: Arc<Health>,
    /// Turns true when the engine stops: a worker retrying an append gives up.
    pub shutdown: watch::Receiver<bool>,
    pub config: WorldsConfig,
}

/// A pending answer.
pub type Answer<T> = oneshot::Receiver<Result<T, JobFailure>>;

enum Job {
    Tick {
        tick: Box<Tick>,
        source: Arc<str>,
        ticket: Ticket,
        done: oneshot::Sender<Result<TickAck, JobFailure>>,
    },
    Configure {
        event: Box<NewEvent>,
        ticket: Ticket,
        done: oneshot::Sender<Result<Position, JobFailure>>,
    },
    Describe {
        done: oneshot::Sender<Result<Option<Value>, JobFailure>>,
    },
}

/// Jobs a worker takes at once.
const MAX_JOBS: usize = 128;
/// Jobs queued per world before senders wait.
const QUEUE: usize = 256;

impl Worlds {
    /// Workers start on a world's first job, and load its state then.
    pub fn new(shared: Shared) -> Self {
        Worlds {
            shared: Arc::new(shared),
            workers: Arc::new(Mutex::new(Some(HashMap::new()))),
            next_id: Default::default(),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// The partitions this instance works.
    pub fn ownership(&self) -> &Arc<Ownership> {
        &self.shared.ownership
    }

    /// Worlds whose state is in memory now.
    pub fn loaded(&self) -> usize {
        lock(&self.workers).as_ref().map_or(0, HashMap::len)
    }

    /// Queues a tick behind the others of its world; the answer comes when
    /// its events are durable. Waits while the world's queue is full.
    /// `ticket`: the admission its partition's consumer took it under;
    /// None: one is taken now (a tick sent over HTTP).
    pub async fn enqueue_tick(
        &self,
        tick: Tick,
        source: Arc<str>,
        ticket: Option<Ticket>,
    ) -> Result<Answer<TickAck>, JobFailure> {
        let (done, answer) = oneshot::channel();
        let world = tick.world_id.clone();
        let ticket = match ticket {
            Some(t) => t,
            None => self.shared.ownership.ticket(&world)?,
        };
        self.send(
            &world,
            Job::Tick {
                tick: Box::new(tick),
                source,
                ticket,
                done,
            },
        )
        .await?;
        Ok(answer)
    }

    /// Records a world's configuration (a validated `WorldConfigured`):
    /// through the world's worker when this instance works its partition,
    /// else appended as is (the instance that works it finds it when it
    /// appends next: the world's version moved, and it reads the world
    /// again).
    pub async fn configure(
        &self,
        world: &WorldId,
        event: NewEvent,
    ) -> Result<Position, JobFailure> {
        let ticket = match self.shared.ownership.ticket(world) {
            Ok(t) => t,
            Err(NotHeld::Elsewhere { .. }) => {
                let positions = self
                    .shared
                    .committer
                    .append(vec![event], None, None)
                    .await
                    .map_err(|e| failure_of(&e))?;
                return Ok(positions.first().copied().unwrap_or_default());
            }
            Err(e) => return Err(e.into()),
        };
        let (done, answer) = oneshot::channel();
        self.send(
            world,
            Job::Configure {
                event: Box::new(event),
                ticket,
                done,
            },
        )
        .await?;
        answer.await.map_err(|_| JobFailure::ShuttingDown)?
    }

    /// The world's configuration and effective simulation config; None for
    /// a world never configured. A world of a partition another instance
    /// works is read from the log.
    pub async fn describe(&self, world: &WorldId) -> Result<Option<Value>, JobFailure> {
        if let Err(NotHeld::Elsewhere { .. }) = self.shared.ownership.ticket(world) {
            let (state, _) = world_state::load(&self.shared.log, world)
                .await
                .map_err(|e| failure_of(&e))?;
            return Ok(describe(&self.shared.host, &Arc::new(state), world));
        }
        let (done, answer) = oneshot::channel();
        self.send(world, Job::Describe { done }).await?;
        answer.await.map_err(|_| JobFailure::ShuttingDown)?
    }

    /// The workers of partition `k`'s worlds leave (the partition is no
    /// longer held): each answers what is queued (refused: the gate is
    /// gone) and is dropped; a job that comes later starts a new worker,
    /// which reads its world again.
    pub fn evict(&self, k: u32) {
        let mut workers = lock(&self.workers);
        if let Some(workers) = workers.as_mut() {
            let ownership = &self.shared.ownership;
            workers.retain(|world, _| ownership.partition_of(world) != k);
        }
    }

    async fn send(&self, world: &WorldId, job: Job) -> Result<(), JobFailure> {
        let sender = self.sender(world)?;
        sender.send(job).await.map_err(|_| JobFailure::ShuttingDown)
    }

    fn sender(&self, world: &WorldId) -> Result<mpsc::Sender<Job>, JobFailure> {
        let mut workers = lock(&self.workers);
        let workers = workers.as_mut().ok_or(JobFailure::ShuttingDown)?;
        if let Some((_, s)) = workers.get(world) {
            return Ok(s.clone());
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE);
        let worker = Worker {
            world: world.clone(),
            stream: StreamName::world(world),
            state: Arc::default(),
            version: 0,
            covered: 0,
            unsaved: 0,
            shared: self.shared.clone(),
            registry: self.workers.clone(),
            id,
        };
        let task = tokio::spawn(worker.run(rx));
        let mut tasks = lock(&self.tasks);
        // Workers that left (idle worlds) are done with.
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
        workers.insert(world.clone(), (id, tx.clone()));
        Ok(tx)
    }

    /// Takes no more jobs, lets every worker finish what is queued, and
    /// waits for them.
    pub async fn close(&self) {
        drop(lock(&self.workers).take());
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a world worker ended abnormally");
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Worker {
    world: WorldId,
    /// `world:<id>`: the stream of the world's configuration.
    stream: StreamName,
    state: Arc<GameState>,
    /// The version of [`Self::stream`] the state includes: each append
    /// expects it, so a configuration written by someone else (another
    /// instance, `provenant world set`) makes the append fail and the world
    /// be read again.
    version: u64,
    /// The state includes every event of the world up to this position.
    covered: Position,
    /// Events of the world appended since its snapshot was saved.
    unsaved: u64,
    shared: Arc<Shared>,
    registry: Arc<Registry>,
    /// Its number in the registry.
    id: u64,
}

/// What a job became once evaluated: its events are `events[range]`.
enum Planned {
    Tick {
        tick_id: Uuid,
        done: oneshot::Sender<Result<TickAck, JobFailure>>,
        range: std::ops::Range<usize>,
        /// Already in the log, or earlier in this batch or the one before.
        duplicate: Option<Duplicate>,
    },
    Configure {
        done: oneshot::Sender<Result<Position, JobFailure>>,
        index: usize,
    },
    Describe {
        done: oneshot::Sender<Result<Option<Value>, JobFailure>>,
        answer: Option<Value>,
    },
}

#[allow(clippy::enum_variant_names)] // where the first of the tick is
enum Duplicate {
    InLog(Position),
    /// The marker at this index of this batch.
    InBatch(usize),
    /// The marker at this index of the batch before (committing while this
    /// one was evaluated).
    InPrevious(usize),
}

/// A batch whose events are being appended.
struct InFlight {
    commit: tokio::task::JoinHandle<Result<Vec<Position>, JobFailure>>,
    /// The tick markers of the batch, by index in its events.
    markers: HashMap<Uuid, usize>,
    done: InFlightDone,
}

/// What answering a batch needs once its append ended.
struct InFlightDone {
    planned: Vec<Planned>,
    started: std::time::Instant,
    ticket: Option<Ticket>,
}

/// A batch evaluated: its events, how to answer its jobs, the markers of
/// its ticks by index, the admission it is appended under, and the version
/// of the world's stream it expects.
struct Evaluated {
    events: Vec<NewEvent>,
    planned: Vec<Planned>,
    markers: HashMap<Uuid, usize>,
    admission: Option<(Ticket, Fence)>,
    expect: u64,
}

impl Worker {
    /// Batches are pipelined: while one batch's events are appended, the
    /// next is looked up and evaluated (on the state that includes the
    /// first); its append starts only when the first is durable, so a
    /// world's events reach the log in order.
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        if !self.load().await {
            // The engine stops before the world could be read: every job
            // queued is answered as a stop.
            rx.close();
            while let Some(job) = rx.recv().await {
                fail_all(vec![job], JobFailure::ShuttingDown);
            }
            return;
        }
        let idle = self.shared.config.idle;
        let mut in_flight: Option<InFlight> = None;
        // The positions of the last batch made durable, for duplicates that
        // pointed into it.
        let mut previous: Vec<Position> = Vec::new();
        loop {
            let first = match &mut in_flight {
                Some(f) => tokio::select! {
                    result = &mut f.commit => {
                        let Some(f) = in_flight.take() else { continue };
                        previous = self.finish(f.done, joined(result), &previous).await;
                        continue;
                    }
                    job = rx.recv() => job,
                },
                None => tokio::select! {
                    job = rx.recv() => job,
                    _ = tokio::time::sleep(idle) => {
                        if self.retire(&rx).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            let Some(first) = first else { break };
            let mut jobs = vec![first];
            while jobs.len() < MAX_JOBS {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            if self.unsaved >= self.shared.config.snapshot_every {
                // A snapshot holds only durable events: the batch in flight
                // first.
                if let Some(f) = in_flight.take() {
                    let result = joined(f.commit.await);
                    previous = self.finish(f.done, result, &previous).await;
                }
                self.save().await;
            }
            let pending = in_flight.as_ref().map(|f| &f.markers);
            let Some(batch) = self.evaluate(jobs, pending).await else {
                continue;
            };
            // One append at a time per world, in order.
            if let Some(f) = in_flight.take() {
                let result = joined(f.commit.await);
                let failed = result.as_ref().err().cloned();
                previous = self.finish(f.done, result, &previous).await;
                if let Some(failure) = failed {
                    // This batch was evaluated on events that are not in
                    // the log: it fails too (finish folded the state again).
                    answer_failed(batch.planned, failure);
                    continue;
                }
            }
            in_flight = Some(self.commit(batch));
        }
        if let Some(f) = in_flight.take() {
            let result = joined(f.commit.await);
            self.finish(f.done, result, &previous).await;
        }
        // The engine stops: the world is saved as it leaves.
        self.save().await;
    }

    /// Loads the world's state (retrying while the log is unreachable);
    /// false when the engine stopped first.
    async fn load(&mut self) -> bool {
        let log = self.shared.log.clone();
        let world = self.world.clone();
        let stream = self.stream.clone();
        // The version is read before the state: a configuration appended in
        // between is then in the state but not in the version, and the next
        // append, expecting too low a version, reads the world again (the
        // other way round, it would be missed).
        match retry(&self.shared, &self.world, || async {
            let version = log.stream_version(&stream).await?;
            let (state, covered) = world_state::load(&log, &world).await?;
            Ok::<_, LogError>((state, covered, version))
        })
        .await
        {
            Ok((state, covered, version)) => {
                self.state = Arc::new(state);
                self.version = version;
                self.covered = covered;
                self.unsaved = 0;
                true
            }
            Err(failure) => {
                tracing::warn!(world = %self.world, %failure, "cannot load the world's state");
                false
            }
        }
    }

    /// Saves the world's snapshot if events were appended since the last;
    /// a failure is logged (the snapshot is only a shortcut: the log is the
    /// truth, and the next save tries again).
    async fn save(&mut self) {
        if self.unsaved == 0 {
            return;
        }
        match world_state::save(&self.shared.log, &self.world, self.covered, &self.state).await {
            Ok(()) => self.unsaved = 0,
            Err(e) => {
                tracing::warn!(world = %self.world, error = %e, "cannot save the world's snapshot")
            }
        }
    }

    /// The world has been idle: saves it and leaves, unless a job came or
    /// is being sent (a sender holds a clone of its sender). True when it
    /// left.
    async fn retire(&mut self, rx: &mpsc::Receiver<Job>) -> bool {
        self.save().await;
        let mut workers = lock(&self.registry);
        let Some(workers) = workers.as_mut() else {
            // Stopping: the loop ends when the queue is closed and drained.
            return false;
        };
        let alone = workers
            .get(&self.world)
            .is_some_and(|(id, tx)| *id == self.id && tx.strong_count() == 1);
        if !alone || !rx.is_empty() {
            return false;
        }
        workers.remove(&self.world);
        tracing::debug!(world = %self.world, "idle world saved and unloaded");
        true
    }

    /// Lets in the jobs whose partition's gate is still the one that
    /// admitted them (the others are refused: their ticks are taken again
    /// in order); the fence of those let in.
    fn admit(&self, jobs: Vec<Job>) -> (Vec<Job>, Option<(Ticket, Fence)>) {
        let ownership = &self.shared.ownership;
        let mut admitted = None;
        let mut kept = Vec::with_capacity(jobs.len());
        for job in jobs {
            let ticket = match &job {
                Job::Tick { ticket, .. } | Job::Configure { ticket, .. } => *ticket,
                Job::Describe { .. } => {
                    kept.push(job);
                    continue;
                }
            };
            match ownership.fence(ticket) {
                Some(fence) => {
                    admitted.get_or_insert((ticket, fence));
                    kept.push(job);
                }
                None => fail_all(
                    vec![job],
                    JobFailure::NotHeld(NotHeld::Restarting {
                        partition: ticket.partition,
                    }),
                ),
            }
        }
        (kept, admitted)
    }

    /// Looks up which ticks are already in the log and evaluates the jobs on
    /// a blocking thread; None when they were answered already (failed).
    async fn evaluate(
        &mut self,
        jobs: Vec<Job>,
        pending: Option<&HashMap<Uuid, usize>>,
    ) -> Option<Evaluated> {
        let (jobs, admission) = self.admit(jobs);
        if jobs.is_empty() {
            return None;
        }
        // A question about the world, with nothing of it in flight: a
        // configuration written elsewhere since it was read (another engine,
        // `provenant world set`) is read first. (Appends find it by
        // themselves: they expect the version the state includes.)
        if pending.is_none() && jobs.iter().any(|j| matches!(j, Job::Describe { .. })) {
            match self.shared.log.stream_version(&self.stream).await {
                Ok(v) if v != self.version => self.reload().await,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(world = %self.world, error = %e, "cannot read the world's version; answering from the state in memory")
                }
            }
        }
        let markers: Vec<Uuid> = jobs
            .iter()
            .filter_map(|j| match j {
                Job::Tick { tick, .. } => Some(tick_marker_id(tick.tick_id)),
                _ => None,
            })
            .collect();
        let known = match retry(&self.shared, &self.world, || {
            self.shared.log.positions_of(&markers)
        })
        .await
        {
            Ok(known) => known,
            Err(failure) => {
                fail_all(jobs, failure);
                return None;
            }
        };
        let pending = pending.cloned().unwrap_or_default();
        let host = self.shared.host.clone();
        // Moved, not shared: a shared Arc would be deep-copied by the first write.
        let state = std::mem::take(&mut self.state);
        let world = self.world.clone();
        let evaluated =
            tokio::task::spawn_blocking(move || plan(&host, state, &world, jobs, &known, &pending))
                .await;
        match evaluated {
            Ok((state, events, planned, markers)) => {
                self.state = state;
                let expect = self.version;
                self.version += events.iter().filter(|e| e.stream == self.stream).count() as u64;
                Some(Evaluated {
                    events,
                    planned,
                    markers,
                    admission,
                    expect,
                })
            }
            Err(e) => {
                // Only a bug can get here (plugin panics are caught inside);
                // the jobs' answers are dropped, which callers see as a stop.
                tracing::error!(world = %self.world, error = %e, "evaluating ticks failed");
                self.reload().await;
                None
            }
        }
    }

    /// Starts appending a batch's events (retrying while the log is
    /// unreachable).
    fn commit(&self, batch: Evaluated) -> InFlight {
        let Evaluated {
            events,
            planned,
            markers,
            admission,
            expect,
        } = batch;
        let shared = self.shared.clone();
        let world = self.world.clone();
        let (ticket, fence) = admission.unzip();
        let expect = Some((
            self.stream.clone(),
            match expect {
                0 => ExpectedVersion::NoStream,
                v => ExpectedVersion::Exact(v),
            },
        ));
        let commit = tokio::spawn(async move {
            if events.is_empty() {
                return Ok(Vec::new());
            }
            let committer = shared.committer.clone();
            retry(&shared, &world, || {
                committer.append(events.clone(), fence.clone(), expect.clone())
            })
            .await
        });
        InFlight {
            commit,
            markers,
            done: InFlightDone {
                planned,
                ticket,
                started: std::time::Instant::now(),
            },
        }
    }

    /// Answers a batch whose append ended; the positions of its events (empty
    /// when it failed, after the state was folded again from the log).
    async fn finish(
        &mut self,
        f: InFlightDone,
        result: Result<Vec<Position>, JobFailure>,
        previous: &[Position],
    ) -> Vec<Position> {
        let InFlightDone {
            planned,
            started,
            ticket,
        } = f;
        let positions = match result {
            Ok(p) => p,
            Err(failure) => {
                answer_failed(planned, failure);
                // The ticks after these in the partition must not be done
                // before these are taken again: its consumer restarts.
                if let Some(t) = ticket {
                    self.shared.ownership.close(t);
                }
                // The state holds events that are not in the log.
                self.reload().await;
                return Vec::new();
            }
        };
        tracing::debug!(
            world = %self.world,
            jobs = planned.len(),
            events = positions.len(),
            append_ms = started.elapsed().as_secs_f64() * 1e3,
            "batch durable"
        );
        if let Some(&last) = positions.iter().max() {
            self.covered = self.covered.max(last);
            self.unsaved += positions.len() as u64;
        }
        for p in planned {
            match p {
                Planned::Tick {
                    tick_id,
                    done,
                    range,
                    duplicate,
                } => {
                    let position = match duplicate {
                        Some(Duplicate::InLog(pos)) => Some(pos),
                        Some(Duplicate::InBatch(i)) => positions.get(i).copied(),
                        Some(Duplicate::InPrevious(i)) => previous.get(i).copied(),
                        None => range
                            .end
                            .checked_sub(1)
                            .and_then(|i| positions.get(i).copied()),
                    };
                    let _ = done.send(Ok(TickAck {
                        tick_id,
                        world_id: self.world.clone(),
                        duplicate: duplicate.is_some(),
                        events: range.len() as u64,
                        position: position.unwrap_or_default(),
                    }));
                }
                Planned::Configure { done, index } => {
                    let _ = done.send(Ok(positions.get(index).copied().unwrap_or_default()));
                }
                Planned::Describe { done, answer } => {
                    let _ = done.send(Ok(answer));
                }
            }
        }
        positions
    }

    /// Loads the world's state again from the log, after events it holds
    /// could not be appended.
    async fn reload(&mut self) {
        if !self.load().await {
            tracing::warn!(world = %self.world, "the engine stopped before the world's state was read again");
        }
    }
}

/// A commit task's result (a task that died is a refusal).
fn joined(
    result: Result<Result<Vec<Position>, JobFailure>, tokio::task::JoinError>,
) -> Result<Vec<Position>, JobFailure> {
    result.unwrap_or_else(|e| Err(JobFailure::Refused(format!("the append task failed: {e}"))))
}

/// Runs `op` until it works, the error is not one that waiting cures, or the
/// engine stops.
async fn retry<T, E, F, Fut>(shared: &Shared, world: &WorldId, mut op: F) -> Result<T, JobFailure>
where
    E: std::borrow::Borrow<LogError>,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut wait = Duration::from_millis(50);
    let mut shutdown = shared.shutdown.clone();
    loop {
        let e = match op().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let e: &LogError = e.borrow();
        if !transient(e) {
            return Err(failure_of(e));
        }
        shared.health.log_failed(&e);
        tracing::warn!(%world, error = %e, retry_in = ?wait, "log unreachable; the world's ticks wait");
        if *shutdown.borrow() {
            return Err(JobFailure::ShuttingDown);
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = super::signals::stopped(&mut shutdown) => return Err(JobFailure::ShuttingDown),
        }
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// Evaluates `jobs` in order against `state`: the new state, the events to
/// append, and how to answer each job from their positions.
fn plan(
    host: &PluginHost,
    mut state: Arc<GameState>,
    world: &WorldId,
    jobs: Vec<Job>,
    known: &HashMap<Uuid, Position>,
    pending: &HashMap<Uuid, usize>,
) -> (
    Arc<GameState>,
    Vec<NewEvent>,
    Vec<Planned>,
    HashMap<Uuid, usize>,
) {
    let mut events: Vec<NewEvent> = Vec::new();
    let mut planned = Vec::with_capacity(jobs.len());
    let mut in_batch: HashMap<Uuid, usize> = HashMap::new();
    for job in jobs {
        match job {
            Job::Tick {
                tick, source, done, ..
            } => {
                let marker = tick_marker_id(tick.tick_id);
                let duplicate = known
                    .get(&marker)
                    .map(|&p| Duplicate::InLog(p))
                    .or_else(|| in_batch.get(&marker).map(|&i| Duplicate::InBatch(i)))
                    .or_else(|| pending.get(&marker).map(|&i| Duplicate::InPrevious(i)));
                let start = events.len();
                if duplicate.is_none() {
                    let produced = evaluate_tick(host, &mut state, &tick);
                    events.extend(produced);
                    let count = events.len() - start + 1;
                    events.push(marker_event(host, &tick, count, &source));
                    in_batch.insert(marker, events.len() - 1);
                }
                planned.push(Planned::Tick {
                    tick_id: tick.tick_id,
                    done,
                    range: start..events.len(),
                    duplicate,
                });
            }
            Job::Configure { event, done, .. } => {
                Arc::make_mut(&mut state).apply(&*event);
                events.push(*event);
                planned.push(Planned::Configure {
                    done,
                    index: events.len() - 1,
                });
            }
            Job::Describe { done } => {
                let answer = describe(host, &state, world);
                planned.push(Planned::Describe { done, answer });
            }
        }
    }
    (state, events, planned, in_batch)
}

/// What a job's caller is told of a log error that waiting does not cure.
fn failure_of(e: &LogError) -> JobFailure {
    match e {
        LogError::Fenced { .. } | LogError::Conflict { .. } => JobFailure::Retry(e.to_string()),
        _ => JobFailure::Refused(e.to_string()),
    }
}

/// Errors that waiting cures: the database is unreachable or failing.
fn transient(e: &LogError) -> bool {
    matches!(e, LogError::Database(_))
}

fn fail_all(jobs: Vec<Job>, failure: JobFailure) {
    for job in jobs {
        match job {
            Job::Tick { done, .. } => drop(done.send(Err(failure.clone()))),
            Job::Configure { done, .. } => drop(done.send(Err(failure.clone()))),
            Job::Describe { done } => drop(done.send(Err(failure.clone()))),
        }
    }
}

fn answer_failed(planned: Vec<Planned>, failure: JobFailure) {
    for p in planned {
        match p {
            Planned::Tick { done, .. } => drop(done.send(Err(failure.clone()))),
            Planned::Configure { done, .. } => drop(done.send(Err(failure.clone()))),
            Planned::Describe { done, .. } => drop(done.send(Err(failure.clone()))),
        }
    }
}
