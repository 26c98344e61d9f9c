//! A one-line progress indicator on stderr, shown only when stderr is a terminal.

use makesync::make::PageObserver;
use std::io::{IsTerminal, Write};

pub struct ProgressLine {
    enabled: bool,
}

impl ProgressLine {
    pub fn on_stderr() -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// Clears the line once the work is done.
    pub fn finish(&self) {
        if self.enabled {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }
}

impl PageObserver for ProgressLine {
    fn page_read(&self, endpoint: &str, rows_so_far: usize) {
        if self.enabled {
            eprint!("\r\x1b[2K{endpoint}: {rows_so_far} rows read…");
            let _ = std::io::stderr().flush();
        }
    }
}
