//! What the multi-process benchmark examples share: numbers as a table shows them, and the
//! children's start signal.

#![allow(dead_code)]

/// The median of `v` (0 when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The `p` quantile of `sorted` (0 when empty).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

/// Microseconds as a human reads them: "48 µs", "3.2 ms", "0.81 s".
pub fn us(v: u64) -> String {
    match v {
        0..1_000 => format!("{v} µs"),
        1_000..1_000_000 => format!("{:.1} ms", v as f64 / 1e3),
        _ => format!("{:.2} s", v as f64 / 1e6),
    }
}

/// Waits for every child's `ready`, says `go` to all, then reads each child's `done <failed>
/// <latency>…` line; closes their stdin and waits for them. Gives the time from `go` to the
/// last `done`, every latency and the failures.
pub fn go_and_collect(kids: Vec<std::process::Child>) -> (std::time::Duration, Vec<u64>, u64) {
    let (elapsed, lat, failed, _) = go_and_collect_tail(kids);
    (elapsed, lat, failed)
}

/// [`go_and_collect`], and the lines the children printed after their `done` line, until they
/// ended (an owner's figures, which it has only once the others are done).
pub fn go_and_collect_tail(
    mut kids: Vec<std::process::Child>,
) -> (std::time::Duration, Vec<u64>, u64, Vec<String>) {
    use std::io::{BufRead, BufReader, Write};
    let mut outs: Vec<_> = kids
        .iter_mut()
        .map(|k| BufReader::new(k.stdout.take().expect("stdout")).lines())
        .collect();
    for out in &mut outs {
        assert_eq!(out.next().expect("ready").expect("read"), "ready");
    }
    let start = std::time::Instant::now();
    for k in &mut kids {
        writeln!(k.stdin.as_mut().expect("stdin"), "go").expect("go");
    }
    let (mut lat, mut failed) = (Vec::new(), 0);
    for out in &mut outs {
        let line = out.next().expect("done").expect("read");
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("done"), "a child failed: {line}");
        failed += words
            .next()
            .and_then(|w| w.parse::<u64>().ok())
            .unwrap_or(0);
        lat.extend(words.filter_map(|w| w.parse::<u64>().ok()));
    }
    let elapsed = start.elapsed();
    // A child that serves the others (an owner) leaves once its stdin closes.
    for k in &mut kids {
        drop(k.stdin.take());
    }
    let tail = outs
        .into_iter()
        .flat_map(|out| out.map_while(Result::ok))
        .collect();
    for mut k in kids {
        let _ = k.wait();
    }
    (elapsed, lat, failed, tail)
}

/// Says `ready` and waits for the parent's `go`.
pub fn go() {
    println!("ready");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("go");
}

/// What users do today: a plain rusqlite connection in WAL mode with `busy_timeout` 10 s and
/// `synchronous` as given ("FULL", "NORMAL").
pub fn plain_connection(db: &std::path::Path, synchronous: &str) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .expect("busy");
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};"
    ))
    .expect("pragmas");
    conn
}
