//! Running a release binary as a child and reading its peak memory.
//!
//! The peak resident set is `wait4`'s `ru_maxrss` for that one process, as the kernel counted
//! it. It is not read on a direct child of the benchmark: a child started by `posix_spawn`
//! (vfork) or fork is charged its parent's resident pages until it execs, and the benchmark
//! holds the simulator's hundreds of thousands of users. So each program runs under a
//! launcher — this binary again, small: `makesync-bench --launch FILE PROGRAM [ARGS]` — which
//! starts the program, forwards SIGTERM to it, waits for it and writes its `ru_maxrss` to FILE.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The argument that makes this binary a launcher.
pub const LAUNCH: &str = "--launch";

static LAUNCHED: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_sigterm(_: libc::c_int) {
    let pid = LAUNCHED.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

/// The launcher: `args` are FILE, PROGRAM and its arguments. Never returns.
pub fn launch(args: &[String]) -> ! {
    let [file, program, rest @ ..] = args else {
        eprintln!("usage: makesync-bench {LAUNCH} FILE PROGRAM [ARGS]");
        std::process::exit(2);
    };
    // SAFETY: installs a handler that only calls kill(2).
    unsafe {
        libc::signal(
            libc::SIGTERM,
            forward_sigterm as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    let child = match Command::new(program).args(rest).spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("cannot start {program}: {e}");
            std::process::exit(2);
        }
    };
    LAUNCHED.store(child.id() as i32, Ordering::SeqCst);
    let (code, peak_kib) = loop {
        match wait(child.id() as libc::pid_t) {
            Ok(result) => break result,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("cannot wait for {program}: {e}");
                std::process::exit(2);
            }
        }
    };
    let _ = std::fs::write(file, peak_kib.to_string());
    std::process::exit(code);
}

/// `program` under the launcher, its peak memory written to `rusage`.
fn launched(program: &Path, rusage: &Path) -> anyhow::Result<Command> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg(LAUNCH).arg(rusage).arg(program);
    Ok(command)
}

fn rusage_file() -> PathBuf {
    static NEXT: AtomicI32 = AtomicI32::new(0);
    std::env::temp_dir().join(format!(
        "makesync-bench-{}-{}.rss",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ))
}

fn read_peak(rusage: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(rusage)?;
    let _ = std::fs::remove_file(rusage);
    Ok(text.trim().parse()?)
}

/// A built binary of this workspace, in `target/release` — or in `MAKESYNC_BENCH_BIN_DIR`,
/// to measure another build (an earlier commit's) with the same benchmark.
pub fn binary(name: &str) -> PathBuf {
    let path = binary_path(name);
    assert!(
        path.exists(),
        "{} is not built — run `bash bench/run.sh`, which builds it",
        path.display()
    );
    path
}

/// Where [`binary`] looks for `name`; an earlier build may not have every function.
pub fn binary_path(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::var_os("MAKESYNC_BENCH_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release"));
    dir.join(name)
}

/// How a child ended.
#[derive(Debug, Clone)]
pub struct Ended {
    pub success: bool,
    /// Peak resident set, KiB.
    pub peak_rss_kib: u64,
    pub wall: Duration,
    pub stdout: String,
}

/// Runs `program` with `args` and `env` (and nothing else of this process's environment) to
/// its end, capturing stdout.
pub async fn run(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
) -> anyhow::Result<Ended> {
    let rusage = rusage_file();
    let mut command = launched(program, &rusage)?;
    command
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn()?;
    tokio::task::spawn_blocking(move || {
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .expect("piped")
            .read_to_string(&mut stdout)?;
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("piped")
            .read_to_string(&mut stderr)?;
        let status = child.wait()?;
        if !status.success() && !stderr.is_empty() {
            eprintln!("{}", stderr.trim_end());
        }
        Ok(Ended {
            success: status.success(),
            peak_rss_kib: read_peak(&rusage)?,
            wall: started.elapsed(),
            stdout,
        })
    })
    .await?
}

/// A function started by [`start_function`]: the launcher and the file its peak goes to.
pub struct Function {
    launcher: Child,
    rusage: PathBuf,
}

/// Stops a function (it polls for events until then) and reads its peak memory.
pub async fn stop(mut function: Function) -> anyhow::Result<u64> {
    tokio::task::spawn_blocking(move || {
        // SAFETY: kill(2) on the pid of the launcher this process spawned and has not reaped.
        unsafe {
            libc::kill(function.launcher.id() as libc::pid_t, libc::SIGTERM);
        }
        function.launcher.wait()?;
        read_peak(&function.rusage)
    })
    .await?
}

/// Waits for `pid`: its exit code (1 if it did not exit normally) and `ru_maxrss` in KiB.
fn wait(pid: libc::pid_t) -> std::io::Result<(i32, u64)> {
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4(2) to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4(2) on a child of this process, with pointers to live locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if reaped < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        1
    };
    Ok((code, usage.ru_maxrss.max(0) as u64))
}

/// Starts `name` (a function's release binary) as Lambda would: under the Runtime API at
/// `runtime_api`, with `memory_mb` and `env`; its output goes to `target/bench-<name>.log`.
pub fn start_function(
    name: &str,
    runtime_api: &str,
    memory_mb: u32,
    env: &[(String, String)],
) -> anyhow::Result<Function> {
    let log_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(format!("bench-{name}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)?;
    let rusage = rusage_file();
    let launcher = launched(&binary(name), &rusage)?
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    Ok(Function { launcher, rusage })
}
