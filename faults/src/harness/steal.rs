//! How much CPU time the hypervisor took from this machine: a virtual machine's neighbours can
//! take its CPUs for seconds at a time, and a measurement taken meanwhile is not comparable
//! with one taken without. Benchmarks print it beside their numbers.

/// Seconds of CPU time the hypervisor has taken from this machine since boot, all CPUs
/// together (the `steal` column of `/proc/stat`); `None` where there is no such file (not
/// Linux). Take the difference over a run.
///
/// ```
/// let before = litekeep_faults::harness::steal_seconds();
/// // … the run …
/// if let (Some(before), Some(after)) = (before, litekeep_faults::harness::steal_seconds()) {
///     assert!(after >= before);
/// }
/// ```
pub fn steal_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse(&stat, clock_ticks_per_second()?)
}

/// The `steal` column of the first (all CPUs) line of a `/proc/stat` text, in seconds.
fn parse(stat: &str, ticks_per_second: f64) -> Option<f64> {
    let line = stat.lines().next()?;
    let mut columns = line.split_whitespace();
    if columns.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal
    let ticks: f64 = columns.nth(7)?.parse().ok()?;
    Some(ticks / ticks_per_second)
}

/// The unit of `/proc/stat`'s columns.
fn clock_ticks_per_second() -> Option<f64> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then_some(ticks as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eighth_column_of_the_cpu_line_in_seconds() {
        let stat =
            "cpu  4705 150 1120 16250 520 0 30 250 0 0\ncpu0 2352 75 560 8125 260 0 15 125 0 0\n";
        assert_eq!(parse(stat, 100.0), Some(2.5));
        assert_eq!(parse("cpu0 1 2 3 4 5 6 7 8\n", 100.0), None);
        assert_eq!(parse("cpu  1 2 3\n", 100.0), None);
    }

    #[test]
    fn this_machine_reports_a_steal_time_that_does_not_go_back() {
        if let (Some(before), Some(after)) = (steal_seconds(), steal_seconds()) {
            assert!(before >= 0.0 && after >= before);
        }
    }
}
