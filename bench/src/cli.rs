//! The CLI on SQLite: a first sync and an unchanged one, per organization size.

use crate::process::{binary, run as run_to_end};
use crate::{mb, print_table, secs, Organization};
use makesync_simulator::{Simulator, DEMO_TOKEN};

pub async fn run(simulator: &Simulator, organizations: &[Organization]) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for organization in organizations {
        let dir = std::env::temp_dir().join(format!("makesync-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let db = dir.join(format!("cli-{}.db", organization.id));
        let _ = std::fs::remove_file(&db);
        for pass in ["first", "unchanged"] {
            let args = [
                "--db".to_string(),
                db.display().to_string(),
                "sync".into(),
                "--host".into(),
                "eu1.make.com".into(),
                "--org".into(),
                organization.id.to_string(),
                "--json".into(),
            ];
            let env = [
                ("MAKESYNC_API_BASE_URL".to_string(), simulator.base_url()),
                ("MAKE_API_TOKEN".to_string(), DEMO_TOKEN.to_string()),
            ];
            let ended = run_to_end(&binary("makesync"), &args, &env).await?;
            let document: serde_json::Value = serde_json::from_str(&ended.stdout)
                .map_err(|e| anyhow::anyhow!("sync --json printed no document: {e}"))?;
            let run = &document["run"];
            anyhow::ensure!(
                ended.success && run["outcome"] == "succeeded",
                "the {pass} sync of {} users failed: {}",
                organization.members,
                run["error"]
            );
            let writes = ["added", "updated", "removed"]
                .iter()
                .map(|k| run[k].as_u64().unwrap_or(0))
                .sum::<u64>();
            rows.push(vec![
                organization.members.to_string(),
                pass.to_string(),
                run["makeRequests"].to_string(),
                secs(ended.wall),
                mb(ended.peak_rss_kib),
                writes.to_string(),
            ]);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    print_table(
        "CLI `makesync sync --json` on SQLite",
        &[
            "users",
            "run",
            "Make requests",
            "wall time",
            "peak RSS",
            "store writes",
        ],
        &rows,
    );
    Ok(())
}
