//! Alerts and metrics on during a scenario: a loopback port for `/metrics`, scraped every
//! second by a thread of this process with each scrape timed; the textfile; and a webhook
//! channel to a sink that answers 200 to everything.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::measure::{Percentiles, result};

/// The ports of one scenario's metrics listener and webhook sink.
pub struct Alerts {
    metrics: u16,
    sink: u16,
}

impl Alerts {
    /// Picks a free port for `/metrics` and starts the webhook sink.
    pub fn start() -> Alerts {
        let metrics = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let sink = TcpListener::bind("127.0.0.1:0").expect("bind the webhook sink");
        let port = sink.local_addr().expect("its port").port();
        std::thread::spawn(move || {
            for stream in sink.incoming().flatten() {
                std::thread::spawn(move || answer_ok(stream));
            }
        });
        Alerts {
            metrics,
            sink: port,
        }
    }

    /// Adds `metrics`, `metrics_textfile` and a webhook channel to the `service:` of `file`.
    pub fn add_to(&self, file: &Path) {
        let text = std::fs::read_to_string(file).expect("read jobs.yaml");
        let service = format!(
            "service:\n  metrics: 127.0.0.1:{}\n  metrics_textfile: jobtop.prom\n  notify:\n    \
             - webhook: http://127.0.0.1:{}/hook\n      on: [failed, recovered, deactivated, skipped]\n",
            self.metrics, self.sink
        );
        let text = text.replacen("service:\n", &service, 1);
        std::fs::write(file, text).expect("write jobs.yaml");
    }

    /// Scrapes `/metrics` every second on a thread until the report.
    pub fn scrape_every_second(&self) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let port = self.metrics;
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let clock = Instant::now();
                if let Some(bytes) = scrape(port) {
                    samples.push((clock.elapsed().as_secs_f64() * 1e3, bytes));
                }
                std::thread::sleep(Duration::from_secs(1).saturating_sub(clock.elapsed()));
            }
            samples
        });
        Scraper { stop, thread }
    }
}

/// The scraping thread.
pub struct Scraper {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(f64, usize)>>,
}

impl Scraper {
    /// Stops scraping and prints the scrape times.
    pub fn report(self, key: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.join().expect("the scraper");
        let bytes = samples.last().map_or(0, |s| s.1);
        let mut ms: Vec<f64> = samples.iter().map(|s| s.0).collect();
        Percentiles::of(&mut ms).report("GET /metrics (whole response)", &format!("{key}_scrape"));
        #[allow(clippy::cast_precision_loss)]
        let kib = bytes as f64 / 1024.0;
        println!("  /metrics body: {kib:.0} KiB");
        result(&format!("{key}_scrape_kib"), kib);
    }
}

/// One `GET /metrics`: the body's size, or `None` when it failed.
fn scrape(port: u16) -> Option<usize> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    response
        .starts_with(b"HTTP/1.1 200")
        .then_some(response.len() - head_end - 4)
}

fn answer_ok(mut stream: TcpStream) {
    let mut buf = [0u8; 8192];
    let _ = stream.read(&mut buf);
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}
