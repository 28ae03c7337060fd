//! Sending at a steady rate: the ticks due every few milliseconds, never a
//! burst to catch up a backlog.

use std::time::{Duration, Instant};

use super::config::SimConfig;
use super::schedule::Schedule;
use super::sender::Sender;

/// How often the sender wakes to send the ticks that are due.
const STEP: Duration = Duration::from_millis(5);
/// The most sending may catch up after a stall, in time at the target rate:
/// a longer stall lowers the achieved rate instead of causing a burst.
const MAX_CATCH_UP: Duration = Duration::from_millis(50);

/// Sends the ticks due every [`STEP`] until `config.duration` has passed;
/// returns when the last send returned.
pub async fn send_paced(
    config: &SimConfig,
    schedule: &mut Schedule,
    sender: &mut Sender,
) -> Instant {
    let mut interval = tokio::time::interval(STEP);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let max_credit = (config.rate * MAX_CATCH_UP.as_secs_f64()).max(1.0);
    let start = Instant::now();
    let mut credit = 0.0_f64;
    let mut accounted = Duration::ZERO;
    loop {
        interval.tick().await;
        let elapsed = start.elapsed().min(config.duration);
        credit = (credit + config.rate * (elapsed - accounted).as_secs_f64()).min(max_credit);
        accounted = elapsed;
        // The epsilon absorbs rounding, so that rate x duration ticks go out.
        while credit >= 1.0 - 1e-6 {
            credit -= 1.0;
            let (world, tick_id, body) = schedule.next();
            sender.send(world, tick_id, body).await;
        }
        sender.reap();
        if elapsed >= config.duration {
            return Instant::now();
        }
    }
}
