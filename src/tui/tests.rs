//! Tests of the dashboard without a terminal: `App::update` for every action, and snapshots of
//! what is drawn, on a fixed clock and fixture jobs.

mod events;
mod fixtures;
mod render;
mod update;
