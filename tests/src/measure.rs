//! Measuring a test's peak memory in a process of its own: memory one measurement freed is
//! not there for the next to reuse unseen, and other tests' threads add nothing.
//!
//! A test binary runs itself again with `--exact <test> --ignored` and an environment
//! variable naming the case; that run measures with [`measure_peak`] and prints one line,
//! which [`run_measured`] reads back.

use std::future::Future;

/// A line of `/proc/self/status`, in bytes (Linux).
pub fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|kb| kb.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    kb * 1024
}

/// Runs `work` with the process's peak reset first: what it returned, and how far the peak
/// rose above what the process held when it started.
pub async fn measure_peak<F: Future>(work: F) -> (F::Output, u64) {
    std::fs::write("/proc/self/clear_refs", "5").expect("the peak RSS can be reset");
    let before = status_bytes("VmRSS:");
    let output = work.await;
    (output, status_bytes("VmHWM:").saturating_sub(before))
}

/// Runs the ignored test `test` of this binary in a process of its own, with `variable` set
/// to `case`; returns what it printed after `growth ` on its measurement line.
pub fn run_measured(test: &str, variable: &str, case: &str) -> String {
    let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(variable, case)
        .output()
        .expect("the test binary runs");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|l| l.split_once("growth ").map(|(_, rest)| rest.to_string()))
        .unwrap_or_else(|| {
            panic!(
                "{case}: {text}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}
