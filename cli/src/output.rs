//! What the CLI prints: tables for people, one JSON document for programs.

use crate::exit::CliError;
use chrono::{DateTime, Utc};
use makesync::connection::ConnectionId;
use makesync::error::ErrorReport;
use makesync::ports::UserStore;
use makesync::run::SyncRun;
use makesync::sync::{ChangeKind, UserChange};
use makesync::user::{TeamRole, UserRecord};
use serde::Serialize;
use std::io::Write;
use unicode_width::UnicodeWidthStr;

#[derive(Debug, Serialize)]
pub struct OrganizationJson {
    pub id: u64,
    pub name: Option<String>,
    pub host: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserJson {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub role_id: u32,
    pub role: String,
    /// A built-in role's identifier (`admin`), where Make gives one.
    pub role_identifier: Option<String>,
    /// `system_locked`, `admin_managed` or `custom_managed`, where Make says.
    pub role_management_type: Option<String>,
    pub status: String,
    pub last_login: Option<DateTime<Utc>>,
    pub removed_at: Option<DateTime<Utc>>,
    /// `[{teamId, teamName, roleId, roleName}]`; `null` when team access was not read.
    pub teams: Option<Vec<TeamRole>>,
}

impl From<&UserRecord> for UserJson {
    fn from(user: &UserRecord) -> Self {
        Self {
            id: user.user_id,
            name: user.name.clone(),
            email: user.email.clone(),
            role_id: user.role_id,
            role: user.role_name.clone(),
            role_identifier: user.role_identifier.clone(),
            role_management_type: user.role_management_type.clone(),
            status: user.status.as_str().to_string(),
            last_login: user.last_login,
            removed_at: user.removed_at,
            teams: user.teams.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ErrorJson {
    pub kind: String,
    pub message: String,
}

impl From<&ErrorReport> for ErrorJson {
    fn from(error: &ErrorReport) -> Self {
        Self {
            kind: error.kind.as_str().to_string(),
            message: error.message.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunJson {
    pub id: String,
    pub reason: String,
    pub outcome: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub fetched: u32,
    pub added: u32,
    pub updated: u32,
    pub removed: u32,
    pub unchanged: u32,
    pub make_requests: u32,
    pub retries: u32,
    pub error: Option<ErrorJson>,
    /// Why team access was not read, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teams_not_read: Option<String>,
}

impl From<&SyncRun> for RunJson {
    fn from(run: &SyncRun) -> Self {
        Self {
            id: run.run_id.to_string(),
            reason: run.reason.as_str().to_string(),
            outcome: run.outcome.as_str().to_string(),
            started_at: run.started_at,
            finished_at: run.finished_at,
            fetched: run.counts.fetched,
            added: run.counts.added,
            updated: run.counts.updated,
            removed: run.counts.removed,
            unchanged: run.counts.unchanged,
            make_requests: run.make_requests,
            retries: run.retries,
            error: run.error.as_ref().map(ErrorJson::from),
            teams_not_read: run.teams_not_read.clone(),
        }
    }
}

/// Writes `text` and a newline to stdout. When the reader has gone (`makesync users … | head
/// -1`), the error says to end quietly with success: see [`CliError::output`].
pub fn print(text: impl std::fmt::Display) -> Result<(), CliError> {
    writeln!(std::io::stdout().lock(), "{text}").map_err(CliError::output)
}

/// Users read from the store a page at a time, so that printing an organization of any size
/// holds one page of it.
const PAGE: usize = 1000;

/// Prints one JSON object: `fields` first (pretty), then `"users"`, every stored user of the
/// connection by id, one per line, read a page at a time.
pub async fn print_users_document(
    fields: &[(&str, serde_json::Value)],
    store: &dyn UserStore,
    connection: &ConnectionId,
) -> Result<(), CliError> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let io = CliError::output;
    writeln!(out, "{{").map_err(io)?;
    for (name, value) in fields {
        let pretty = serde_json::to_string_pretty(value)
            .map_err(CliError::internal)?
            .replace('\n', "\n  ");
        writeln!(out, "  {}: {pretty},", serde_json::Value::from(*name)).map_err(io)?;
    }
    write!(out, "  \"users\": [").map_err(io)?;
    let mut after = None;
    let mut first = true;
    loop {
        let page = store
            .list_users_page(connection, after, PAGE)
            .await
            .map_err(CliError::internal)?;
        let Some(last) = page.last() else { break };
        after = Some(last.user_id);
        for user in &page {
            let line = serde_json::to_string(&UserJson::from(user)).map_err(CliError::internal)?;
            write!(out, "{}\n    {line}", if first { "" } else { "," }).map_err(io)?;
            first = false;
        }
    }
    writeln!(out, "{}]\n}}", if first { "" } else { "\n  " }).map_err(io)?;
    out.flush().map_err(io)
}

/// Prints the users table of a connection: one pass over the store's pages for the column
/// widths, one to print.
pub async fn print_users_table(
    store: &dyn UserStore,
    connection: &ConnectionId,
) -> Result<(), CliError> {
    let mut widths: Vec<usize> = USER_HEADERS.iter().map(|h| h.width()).collect();
    let mut any = false;
    for_each_user_page(store, connection, |page| {
        for row in page.iter().map(user_row) {
            any = true;
            for (width, cell) in widths.iter_mut().zip(&row) {
                *width = (*width).max(cell.width());
            }
        }
        Ok(())
    })
    .await?;
    if !any {
        return Ok(());
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let headers: Vec<String> = USER_HEADERS.iter().map(|h| h.to_string()).collect();
    writeln!(out, "{}", aligned(&widths, &headers)).map_err(CliError::output)?;
    for_each_user_page(store, connection, |page| {
        for row in page.iter().map(user_row) {
            writeln!(out, "{}", aligned(&widths, &row)).map_err(CliError::output)?;
        }
        Ok(())
    })
    .await?;
    out.flush().map_err(CliError::output)
}

async fn for_each_user_page(
    store: &dyn UserStore,
    connection: &ConnectionId,
    mut each: impl FnMut(&[UserRecord]) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let mut after = None;
    loop {
        let page = store
            .list_users_page(connection, after, PAGE)
            .await
            .map_err(CliError::internal)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.user_id);
        each(&page)?;
    }
}

const USER_HEADERS: [&str; 7] = [
    "ID",
    "NAME",
    "EMAIL",
    "ROLE",
    "STATUS",
    "LAST LOGIN",
    "TEAMS",
];

fn user_row(u: &UserRecord) -> Vec<String> {
    vec![
        u.user_id.to_string(),
        terminal_safe(&u.name),
        terminal_safe(&u.email),
        terminal_safe(&format!("{} ({})", u.role_name, u.role_id)),
        u.status.as_str().to_string(),
        timestamp(u.last_login),
        terminal_safe(&team_roles(u.teams.as_deref())),
    ]
}

/// `Finance: Team Admin; Marketing: Team Member`; `-` in no team; `not read` when team
/// access was not read.
fn team_roles(teams: Option<&[TeamRole]>) -> String {
    match teams {
        None => "not read".to_string(),
        Some([]) => "-".to_string(),
        Some(teams) => teams
            .iter()
            .map(|t| format!("{}: {}", t.team_name, t.role_name))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

fn timestamp(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "never".to_string(),
        |at| at.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// A plain text table whose columns line up for wide (CJK) characters too.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.width()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.width());
        }
    }
    let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let mut out = vec![aligned(&widths, &headers)];
    for row in rows {
        out.push(aligned(&widths, row));
    }
    out.join("\n")
}

/// Text from Make (a member's name, an organization's name, an error message) as a terminal
/// may show it: control characters — escape sequences that could move the cursor, clear the
/// screen or retitle the window — and the invisible bidirectional overrides are written as
/// `\u{…}` escapes. JSON output needs none of this: serde escapes control characters.
pub fn terminal_safe(text: &str) -> String {
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            safe.extend(c.escape_unicode());
        } else {
            safe.push(c);
        }
    }
    safe
}

/// One table line: each cell padded to its column's width, two spaces between columns.
fn aligned(widths: &[usize], cells: &[String]) -> String {
    let mut text = String::new();
    for (i, cell) in cells.iter().enumerate() {
        text.push_str(cell);
        if i + 1 < cells.len() {
            text.push_str(&" ".repeat(widths[i].saturating_sub(cell.width()) + 2));
        }
    }
    text.trim_end().to_string()
}

pub fn runs_table(runs: &[SyncRun]) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                r.reason.as_str().to_string(),
                r.outcome.as_str().to_string(),
                format!(
                    "{}/{}/{}/{}/{}",
                    r.counts.fetched,
                    r.counts.added,
                    r.counts.updated,
                    r.counts.removed,
                    r.counts.unchanged
                ),
                format!("{} ({} retries)", r.make_requests, r.retries),
                r.error.as_ref().map_or(String::new(), |e| {
                    terminal_safe(&format!("{}: {}", e.kind, e.message))
                }),
            ]
        })
        .collect();
    table(
        &[
            "STARTED (UTC)",
            "REASON",
            "OUTCOME",
            "FETCHED/ADDED/UPDATED/REMOVED/UNCHANGED",
            "REQUESTS",
            "ERROR",
        ],
        &rows,
    )
}

/// One line: what a run did, or why it failed.
pub fn run_summary(run: &SyncRun) -> String {
    match &run.error {
        None => format!(
            "run {} succeeded: {} fetched, {} added, {} updated, {} removed, {} unchanged ({} Make requests, {} retries)",
            run.run_id,
            run.counts.fetched,
            run.counts.added,
            run.counts.updated,
            run.counts.removed,
            run.counts.unchanged,
            run.make_requests,
            run.retries
        ) + &run
            .teams_not_read
            .as_deref()
            .map(|why| format!("\n{}", terminal_safe(why)))
            .unwrap_or_default(),
        Some(error) => format!(
            "run {} failed ({}): {}",
            run.run_id,
            error.kind,
            terminal_safe(&error.message)
        ),
    }
}

/// One line per written user: what changed, in words, safe for a terminal.
pub fn describe_change(change: &UserChange) -> String {
    terminal_safe(&describe_change_raw(change))
}

fn describe_change_raw(change: &UserChange) -> String {
    let after = &change.after;
    let who = format!("{} <{}> (#{})", after.name, after.email, after.user_id);
    match (change.kind, &change.before) {
        (ChangeKind::Added, _) => {
            format!("+ {who} joined as {} ({})", after.role_name, after.status)
        }
        (ChangeKind::Restored, _) => {
            format!("+ {who} is back as {} ({})", after.role_name, after.status)
        }
        (ChangeKind::Removed, _) => format!("- {who} was removed"),
        (ChangeKind::Updated, Some(before)) => {
            let mut what = Vec::new();
            if before.role_id != after.role_id {
                what.push(format!("role {} → {}", before.role_name, after.role_name));
            }
            if before.status != after.status {
                what.push(format!("status {} → {}", before.status, after.status));
            }
            if before.last_login != after.last_login {
                what.push(format!(
                    "last login {} → {}",
                    timestamp(before.last_login),
                    timestamp(after.last_login)
                ));
            }
            if before.teams != after.teams {
                what.push(format!(
                    "teams {} → {}",
                    team_roles(before.teams.as_deref()),
                    team_roles(after.teams.as_deref())
                ));
            }
            if before.name != after.name || before.email != after.email {
                what.push(format!(
                    "name/email {} <{}> → {} <{}>",
                    before.name, before.email, after.name, after.email
                ));
            }
            format!("~ {who}: {}", what.join("; "))
        }
        (ChangeKind::Updated, None) => format!("~ {who}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_and_bidi_overrides_are_escaped_for_the_terminal() {
        let name = "Mallory\u{1b}]0;owned\u{7}\u{1b}[2J\r\n\u{9b}31m \u{202e}gnp.exe";
        let safe = super::terminal_safe(name);
        assert!(!safe.chars().any(|c| c.is_control()), "{safe:?}");
        assert!(!safe.contains('\u{202e}'));
        assert!(safe.starts_with("Mallory\\u{1b}]0;owned"), "{safe}");
        assert_eq!(super::terminal_safe("José Ñúñez 山田"), "José Ñúñez 山田");
    }

    use super::*;

    #[test]
    fn columns_line_up_with_wide_characters() {
        let text = table(
            &["NAME", "X"],
            &[
                vec!["李雷".into(), "1".into()],
                vec!["Ada".into(), "2".into()],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        let column = |line: &str| {
            line[..line
                .rfind(|c: char| c.is_ascii_digit() || c == 'X')
                .unwrap()]
                .width()
        };
        assert_eq!(column(lines[0]), column(lines[1]));
        assert_eq!(column(lines[1]), column(lines[2]));
    }
}
