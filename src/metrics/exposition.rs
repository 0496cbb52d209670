//! The text a scrape gets: prometheus-client writes `OpenMetrics`, which names a counter's
//! family without `_total` and ends with `# EOF`. Prometheus' classic text format (0.0.4),
//! which `node_exporter`'s textfile collector and every Prometheus parser read, names the
//! family as its samples and has no `# EOF`; this turns the one into the other.

use super::families::Families;

/// The content type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric in Prometheus' text format: the per-job families, then the service-wide
/// ones of the registry.
pub fn encode(families: &Families) -> String {
    let mut out = String::with_capacity(1 << 20);
    families.encode_jobs(&mut out);
    let mut open = String::new();
    // Writing to a String cannot fail; an encoder error would be a bug in a metric.
    if prometheus_client::encoding::text::encode(&mut open, &families.registry).is_ok() {
        out.push_str(&to_classic(&open));
    }
    out
}

/// `OpenMetrics` text as Prometheus 0.0.4 text.
fn to_classic(open: &str) -> String {
    let mut out = String::with_capacity(open.len());
    // `# HELP` comes before `# TYPE`: find the counters first.
    let counters: Vec<&str> = open
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_classic;

    #[test]
    fn counters_are_named_as_their_samples_and_eof_goes() {
        let open = "# HELP a_runs Runs.\n# TYPE a_runs counter\na_runs_total{job=\"x\"} 1\n\
                    # HELP g A gauge.\n# TYPE g gauge\ng 2\n# EOF\n";
        assert_eq!(
            to_classic(open),
            "# HELP a_runs_total Runs.\n# TYPE a_runs_total counter\na_runs_total{job=\"x\"} 1\n\
             # HELP g A gauge.\n# TYPE g gauge\ng 2\n"
        );
    }
}
