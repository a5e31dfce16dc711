//! `gingerctl` as an operator runs it (any user, any environment) and a strict reader of
//! `gingerctl node status` that checks calicoctl's released layout (calico.md §5.1) line by
//! line before it hands back the rows.
//!
//! Owns: the runner and the layout rules (borders, centred titles, left-aligned cells, INFO
//! wrapped at 30 columns, the section and blank-line structure). Must not: know which peers a
//! scenario configured.

use std::path::Path;
use std::process::Command;

use crate::bins::bin_path;
use crate::error::{Error, Result};

/// What a `gingerctl` run printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtlRun {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

/// Run `gingerctl --run-dir <run_dir> args…` with extra environment `env`, as user `uid` (via
/// `setpriv`) when given. It only opens the unix socket, so it needs no namespace.
pub fn gingerctl(
    run_dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    uid: Option<u32>,
) -> Result<CtlRun> {
    let bin = bin_path("gingerctl")?;
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    cmd.arg("--run-dir").arg(run_dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .map_err(|e| Error::io(format!("running {}", bin.display()), e))?;
    Ok(CtlRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The column titles of `calicoctl node status` as tablewriter prints them.
pub const STATUS_TITLES: [&str; 5] = ["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"];
/// tablewriter's wrap width: longer cells are broken into lines of at most this many columns.
pub const STATUS_WRAP: usize = 30;

/// One peer row of `gingerctl node status`, its wrapped cells joined with single spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusRow {
    /// PEER ADDRESS.
    pub address: String,
    /// PEER TYPE.
    pub peer_type: String,
    /// STATE.
    pub state: String,
    /// SINCE.
    pub since: String,
    /// INFO.
    pub info: String,
}

/// `gingerctl node status` read back: the IPv4 and IPv6 sections (`None`: "No IPvN peers
/// found.").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatusText {
    /// IPv4 rows.
    pub v4: Option<Vec<StatusRow>>,
    /// IPv6 rows.
    pub v6: Option<Vec<StatusRow>>,
}

/// Parse `gingerctl node status` output and check it against calicoctl's released layout
/// (calico.md §5.1): the banner, `IPv4 BGP status` / `IPv6 BGP status` sections separated by
/// blank lines and a final blank line, and per section either `No IPvN peers found.` or a
/// tablewriter box: identical `+---+` borders as wide as each column's widest line, centred
/// upper-case titles (odd space right), left-aligned cells, INFO wrapped at 30 columns with
/// the other cells blank on continuation lines. Returns the rows, or the first deviation.
pub fn parse_node_status(text: &str) -> std::result::Result<NodeStatusText, String> {
    let mut lines = text.split('\n').peekable();
    let expect =
        |want: &str, lines: &mut std::iter::Peekable<std::str::Split<'_, char>>| match lines.next()
        {
            Some(l) if l == want => Ok(()),
            other => Err(format!("expected {want:?}, found {other:?}")),
        };
    expect("Ginger process is running.", &mut lines)?;
    expect("", &mut lines)?;
    expect("IPv4 BGP status", &mut lines)?;
    let v4 = parse_section(&mut lines, 4)?;
    expect("", &mut lines)?;
    expect("IPv6 BGP status", &mut lines)?;
    let v6 = parse_section(&mut lines, 6)?;
    // calicoctl ends with an empty line after the last table; the text ends with a newline.
    expect("", &mut lines)?;
    expect("", &mut lines)?;
    match lines.next() {
        None => Ok(NodeStatusText { v4, v6 }),
        Some(l) => Err(format!("unexpected trailing line {l:?}")),
    }
}

fn parse_section<'a>(
    lines: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
    version: u8,
) -> std::result::Result<Option<Vec<StatusRow>>, String> {
    let first = lines.next().ok_or("missing section body")?;
    if first == format!("No IPv{version} peers found.") {
        return Ok(None);
    }
    // Column widths from the top border; every other border must equal it.
    let widths: Vec<usize> = first
        .strip_prefix('+')
        .and_then(|b| b.strip_suffix('+'))
        .ok_or_else(|| format!("IPv{version}: not a border: {first:?}"))?
        .split('+')
        .map(|dashes| {
            if dashes.len() >= 2 && dashes.bytes().all(|b| b == b'-') {
                Ok(dashes.len() - 2)
            } else {
                Err(format!("IPv{version}: not a border: {first:?}"))
            }
        })
        .collect::<std::result::Result<_, _>>()?;
    if widths.len() != STATUS_TITLES.len() {
        return Err(format!(
            "IPv{version}: {} columns in {first:?}",
            widths.len()
        ));
    }
    let border = first.to_string();
    let header = lines.next().ok_or("missing header")?;
    let cells = split_cells(header, &widths)
        .ok_or_else(|| format!("IPv{version}: header {header:?} does not fit the border"))?;
    for ((cell, title), w) in cells.iter().zip(STATUS_TITLES).zip(&widths) {
        let gap = w - title.len().min(*w);
        let centred = format!(
            "{}{title}{}",
            " ".repeat(gap / 2),
            " ".repeat(gap - gap / 2)
        );
        if *cell != centred {
            return Err(format!(
                "IPv{version}: header cell {cell:?}, want {centred:?}"
            ));
        }
    }
    if lines.next() != Some(border.as_str()) {
        return Err(format!("IPv{version}: no border under the header"));
    }
    let mut rows: Vec<Vec<Vec<String>>> = Vec::new();
    loop {
        let line = lines.next().ok_or("table not closed")?;
        if line == border {
            break;
        }
        let cells = split_cells(line, &widths)
            .ok_or_else(|| format!("IPv{version}: row {line:?} does not fit the border"))?;
        let mut content = Vec::new();
        for cell in &cells {
            let text = cell.trim_end();
            if text.starts_with(' ') {
                return Err(format!(
                    "IPv{version}: cell {cell:?} is not left-aligned in {line:?}"
                ));
            }
            content.push(text.to_string());
        }
        let continuation = content[0].is_empty();
        match rows.last_mut() {
            Some(row) if continuation => {
                for (col, text) in content.into_iter().enumerate() {
                    if !text.is_empty() {
                        if col != 4 {
                            return Err(format!(
                                "IPv{version}: only INFO may wrap, column {col} did in {line:?}"
                            ));
                        }
                        row[col].push(text);
                    }
                }
            }
            None if continuation => {
                return Err(format!("IPv{version}: first row has no address: {line:?}"));
            }
            _ => rows.push(content.into_iter().map(|t| vec![t]).collect()),
        }
    }
    // Each column is exactly as wide as its widest line (or the wrap width once INFO wrapped).
    for (col, w) in widths.iter().enumerate() {
        let widest = rows
            .iter()
            .flat_map(|r| r[col].iter())
            .map(|l| l.chars().count())
            .chain([STATUS_TITLES[col].len()])
            .max()
            .unwrap_or(0);
        let wrapped = rows.iter().any(|r| r[col].len() > 1);
        let want = if wrapped {
            widest.max(STATUS_WRAP)
        } else {
            widest
        };
        if *w != want {
            return Err(format!(
                "IPv{version}: column {col} is {w} wide, want {want}"
            ));
        }
        if wrapped && widest > STATUS_WRAP {
            return Err(format!(
                "IPv{version}: a wrapped line of column {col} exceeds {STATUS_WRAP}"
            ));
        }
    }
    Ok(Some(
        rows.into_iter()
            .map(|r| {
                let mut joined = r.into_iter().map(|lines| lines.join(" "));
                let mut next = || joined.next().unwrap_or_default();
                StatusRow {
                    address: next(),
                    peer_type: next(),
                    state: next(),
                    since: next(),
                    info: next(),
                }
            })
            .collect(),
    ))
}

/// The cells of `| a | b |` for columns `widths` (each ` text ` padded to the width), or
/// `None` when the line does not fit them exactly.
fn split_cells(line: &str, widths: &[usize]) -> Option<Vec<String>> {
    let chars: Vec<char> = line.chars().collect();
    let mut at = 0;
    if chars.first() != Some(&'|') {
        return None;
    }
    at += 1;
    let mut cells = Vec::new();
    for w in widths {
        let cell: String = chars.get(at..at + w + 2)?.iter().collect();
        let inner = cell.strip_prefix(' ')?.strip_suffix(' ')?;
        cells.push(inner.to_string());
        at += w + 2;
        if chars.get(at) != Some(&'|') {
            return None;
        }
        at += 1;
    }
    (at == chars.len()).then_some(cells)
}

/// `HH:MM:SS` of a Unix time in UTC (what `gingerctl` prints with `TZ=UTC` within 20 hours).
pub fn utc_clock(unix: u64) -> String {
    let day = unix % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_status_parses_calicos_own_example() {
        // calico.md §5.1, with Ginger's banner and calicoctl's final empty line.
        let text = "Ginger process is running.\n\nIPv4 BGP status\n\
+--------------+-------------------+-------+----------+-------------+\n\
| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |\n\
+--------------+-------------------+-------+----------+-------------+\n\
| 172.17.8.102 | node-to-node mesh | up    | 23:30:04 | Established |\n\
+--------------+-------------------+-------+----------+-------------+\n\
\nIPv6 BGP status\nNo IPv6 peers found.\n\n";
        let parsed = parse_node_status(text).unwrap();
        assert_eq!(parsed.v6, None);
        assert_eq!(
            parsed.v4.unwrap(),
            vec![StatusRow {
                address: "172.17.8.102".into(),
                peer_type: "node-to-node mesh".into(),
                state: "up".into(),
                since: "23:30:04".into(),
                info: "Established".into(),
            }]
        );
        // Layout faults are reported, not glossed over.
        let faults = [
            text.replace("|     PEER TYPE     |", "|    PEER TYPE      |"),
            text.replace("| up    |", "|    up |"),
            text.replace("\n\nIPv6", "\nIPv6"),
            text.replace("found.\n\n", "found.\n"),
            text.replace("Established |", "Established  |"),
            text.replace("-------------+\n|", "------------+\n|"),
        ];
        for bad in faults {
            assert!(parse_node_status(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_status_joins_wrapped_info() {
        let rule = format!(
            "+-----------+-------------------+-------+----------+{}+",
            "-".repeat(32)
        );
        let text = format!(
            "Ginger process is running.\n\nIPv4 BGP status\nNo IPv4 peers found.\n\nIPv6 BGP status\n\
{rule}\n\
| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   | {:^30} |\n\
{rule}\n\
| fd00::2      | node-to-node mesh | start | 01:02:03 | {:<30} |\n\
|              |                   |       |          | {:<30} |\n\
{rule}\n\n",
            "INFO", "Active Socket: Connection", "refused"
        )
        .replace("+-----------+", "+--------------+");
        let parsed = parse_node_status(&text).unwrap();
        assert_eq!(parsed.v4, None);
        let rows = parsed.v6.unwrap();
        assert_eq!(rows[0].info, "Active Socket: Connection refused");
        assert_eq!(rows[0].peer_type, "node-to-node mesh");
        // Not wrapped, INFO must not be padded to 30.
        let unwrapped = text
            .replace("| Active Socket: Connection      |", "| Active                         |")
            .replace("|              |                   |       |          | refused                        |\n", "");
        assert!(
            parse_node_status(&unwrapped)
                .unwrap_err()
                .contains("column 4")
        );
    }

    #[test]
    fn utc_clock_is_time_of_day() {
        assert_eq!(utc_clock(1_479_771_004), "23:30:04");
        assert_eq!(utc_clock(0), "00:00:00");
    }
}
