//! The bytes of one client connection: request lines read with a cap, and how a subscriber's
//! progress in reading is tracked, so that one that stops reading is dropped and one that is
//! only busy is not.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::mpsc;

use crate::control::protocol::MAX_LINE;

/// What reading one line gave.
pub(super) enum Line {
    Text(String),
    TooLong,
    End,
}

/// Reads a line of at most [`MAX_LINE`] bytes; a longer one is consumed to its end and
/// reported, so one huge line costs memory only up to the cap.
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() && !too_long {
                Line::End
            } else if too_long {
                Line::TooLong
            } else {
                Line::Text(String::from_utf8_lossy(&line).into_owned())
            });
        }
        let (chunk, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + chunk.len() > MAX_LINE {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = found.unwrap_or(buf.len());
        reader.consume(used);
        if found.is_some() {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Text(String::from_utf8_lossy(&line).into_owned())
            });
        }
    }
}

/// How long a subscriber with a full queue may read nothing before it counts as not reading
/// and is dropped. A client that reads, even one busy parsing a big snapshot, makes progress
/// well within this; a burst of events alone never gets it dropped.
const STALLED: Duration = Duration::from_secs(2);

/// When the writer of a client last got bytes out to it.
#[derive(Clone)]
pub(super) struct Progress {
    base: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Progress {
    pub(super) fn new() -> Progress {
        Progress {
            base: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Notes that bytes got out just now.
    pub(super) fn made(&self) {
        let now = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// How long since the last progress.
    fn idle(&self) -> Duration {
        let last = self.last_ms.load(Ordering::Relaxed);
        self.base
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }
}

/// Queues `line` for a subscriber whose queue is full, waiting while the client still reads;
/// false when it has read nothing for [`STALLED`] (or is gone).
pub(super) async fn queue_when_room(
    out: &mpsc::Sender<String>,
    line: String,
    progress: &Progress,
) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_millis(100), out.reserve()).await {
            Ok(Ok(place)) => {
                place.send(line);
                return true;
            }
            Ok(Err(_)) => return false,
            Err(_) if progress.idle() >= STALLED => return false,
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    #[tokio::test]
    async fn lines_are_capped() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.extend_from_slice(b"\n{\"op\":\"ping\"}\n");
        let mut reader = BufReader::new(&input[..]);
        assert!(matches!(
            read_line(&mut reader).await.unwrap(),
            Line::TooLong
        ));
        match read_line(&mut reader).await.unwrap() {
            Line::Text(t) => assert_eq!(t, "{\"op\":\"ping\"}"),
            _ => panic!("expected the next line"),
        }
        assert!(matches!(read_line(&mut reader).await.unwrap(), Line::End));
    }
}
