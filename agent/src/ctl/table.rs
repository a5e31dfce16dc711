//! Text table layouts that reproduce, byte for byte, the two Go printers calicoctl uses.
//!
//! Owns: `BoxTable`, the bordered table of `olekukonko/tablewriter` v0.0.5 with its defaults
//! (centred upper-cased headers, cells wrapped at 30 columns with minimal raggedness, numbers
//! right-aligned), as used by `calicoctl node status`; and `TabTable`, Go's `text/tabwriter` as
//! calicoctl's `get` configures it (`minwidth 5, tabwidth 1, padding 3, ' '`, every cell
//! tab-terminated, so the last column is padded too). Must not: know what the cells mean.
//! Data enters as rows of strings and leaves as one `String`. Widths count characters: the
//! Go originals count terminal columns, which differ only for East Asian wide characters.

/// tablewriter's `MAX_ROW_WIDTH`: longer cells are wrapped.
const WRAP_WIDTH: usize = 30;
/// tablewriter's penalty for a line longer than the limit (`defaultPenalty`).
const OVERLONG_PENALTY: i64 = 100_000;

/// A bordered table as tablewriter v0.0.5 renders it with default settings.
#[derive(Debug, Default)]
pub struct BoxTable {
    widths: Vec<usize>,
    header: Vec<Vec<String>>,
    rows: Vec<Vec<Vec<String>>>,
}

impl BoxTable {
    /// A table with these header cells (upper-cased and centred when rendered).
    pub fn new(header: &[&str]) -> BoxTable {
        let mut table = BoxTable::default();
        table.header = header
            .iter()
            .enumerate()
            .map(|(col, h)| table.measure(col, h))
            .collect();
        table
    }

    /// Append one row; it must have as many cells as the header.
    pub fn push_row<S: AsRef<str>>(&mut self, cells: &[S]) {
        let row = cells
            .iter()
            .enumerate()
            .map(|(col, c)| self.measure(col, c.as_ref()))
            .collect();
        self.rows.push(row);
    }

    /// Wrap a cell into lines and widen its column to fit (tablewriter `parseDimension`).
    fn measure(&mut self, col: usize, text: &str) -> Vec<String> {
        let raw_width = text.split('\n').map(width).max().unwrap_or(0);
        let limit = raw_width.min(WRAP_WIDTH);
        let lines = wrap(&text.split('\n').collect::<Vec<_>>().join(" "), limit);
        let needed = lines.iter().map(|l| width(l)).max().unwrap_or(0).max(limit);
        if self.widths.len() <= col {
            self.widths.resize(col + 1, 0);
        }
        self.widths[col] = self.widths[col].max(needed);
        lines
    }

    /// The table, each line ending in `\n`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.separator(&mut out);
        let height = self.header.iter().map(Vec::len).max().unwrap_or(0);
        for line in 0..height {
            out.push('|');
            for (col, cell) in self.header.iter().enumerate() {
                let text = title(cell.get(line).map(String::as_str).unwrap_or(""));
                out.push(' ');
                out.push_str(&pad_centre(&text, self.widths[col]));
                out.push_str(" |");
            }
            out.push('\n');
        }
        self.separator(&mut out);
        for row in &self.rows {
            let height = row.iter().map(Vec::len).max().unwrap_or(0);
            for line in 0..height {
                out.push('|');
                for (col, cell) in row.iter().enumerate() {
                    // tablewriter fills the missing lines of shorter cells with two spaces.
                    let text = cell.get(line).map(String::as_str).unwrap_or("  ");
                    out.push(' ');
                    if is_decimal(text.trim()) {
                        out.push_str(&pad_left(text, self.widths[col]));
                    } else {
                        out.push_str(&pad_right(text, self.widths[col]));
                    }
                    out.push_str(" |");
                }
                out.push('\n');
            }
        }
        self.separator(&mut out);
        out
    }

    fn separator(&self, out: &mut String) {
        out.push('+');
        for w in &self.widths {
            out.push_str(&"-".repeat(w + 2));
            out.push('+');
        }
        out.push('\n');
    }
}

/// Go's `text/tabwriter` with calicoctl's settings, fed `cell\t…cell\t\n` lines.
#[derive(Debug, Default)]
pub struct TabTable {
    rows: Vec<Vec<String>>,
}

impl TabTable {
    /// tabwriter `minwidth`.
    const MIN_WIDTH: usize = 5;
    /// tabwriter `padding`.
    const PADDING: usize = 3;

    /// A table whose first line is `header`.
    pub fn new(header: &[&str]) -> TabTable {
        TabTable {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Append one line of cells.
    pub fn push_row<S: AsRef<str>>(&mut self, cells: &[S]) {
        self.rows
            .push(cells.iter().map(|c| c.as_ref().to_string()).collect());
    }

    /// The lines, each cell padded to its column width (trailing spaces included).
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|col| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(col))
                    .map(|c| width(c) + Self::PADDING)
                    .fold(Self::MIN_WIDTH, usize::max)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            for (col, cell) in row.iter().enumerate() {
                out.push_str(&pad_right(cell, widths[col]));
            }
            out.push('\n');
        }
        out
    }
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// tablewriter `Title`: `_` becomes a space, `.` too unless between digits, then upper case.
fn title(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let num_or_space = |c: char| c.is_ascii_digit() || c == ' ';
    let replaced: String = chars
        .iter()
        .enumerate()
        .map(|(i, &c)| match c {
            '_' => ' ',
            '.' if (i != 0 && !num_or_space(chars[i - 1]))
                || (i + 1 != chars.len() && !num_or_space(chars[i + 1])) =>
            {
                ' '
            }
            c => c,
        })
        .collect();
    let trimmed = replaced.trim();
    if trimmed.is_empty() && !name.is_empty() {
        return " ".to_string();
    }
    trimmed.to_uppercase()
}

/// tablewriter `Pad`: centred, the odd space on the right (left gap = floor(gap / 2)).
fn pad_centre(s: &str, w: usize) -> String {
    let gap = w.saturating_sub(width(s));
    let left = gap / 2;
    format!("{}{}{}", " ".repeat(left), s, " ".repeat(gap - left))
}

fn pad_right(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

fn pad_left(s: &str, w: usize) -> String {
    format!("{}{s}", " ".repeat(w.saturating_sub(width(s))))
}

/// tablewriter's `decimal` regexp: `^-?(?:\d{1,3}(?:,\d{3})*|\d+)(?:\.\d+)?$`.
fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if frac.is_some_and(|f| !digits(f)) {
        return false;
    }
    if digits(int) {
        return true;
    }
    // Thousands groups: 1-3 digits, then groups of exactly three.
    let mut groups = int.split(',');
    let first = groups.next().unwrap_or("");
    digits(first) && first.len() <= 3 && groups.all(|g| g.len() == 3 && digits(g))
}

/// tablewriter `WrapString`: split on spaces and break into lines of at most `limit` columns
/// (raised to the longest word) with minimal raggedness.
fn wrap(s: &str, limit: usize) -> Vec<String> {
    let words: Vec<&str> = s.split(' ').collect();
    let limit = words.iter().map(|w| width(w)).fold(limit, usize::max);
    wrap_words(&words, limit)
        .into_iter()
        .map(|line| line.join(" "))
        .collect()
}

/// tablewriter `WrapWords` (one space between words): the cost of a line is the square of its
/// shortfall from `limit`; the last line is free.
fn wrap_words<'a>(words: &[&'a str], limit: usize) -> Vec<Vec<&'a str>> {
    let n = words.len();
    let limit = limit as i64;
    // span(i, j): width of words[i..=j] joined by single spaces.
    let mut prefix = vec![0i64; n + 1];
    for (i, w) in words.iter().enumerate() {
        prefix[i + 1] = prefix[i] + width(w) as i64;
    }
    let span = |i: usize, j: usize| prefix[j + 1] - prefix[i] + (j - i) as i64;
    let mut cost = vec![i64::MAX; n];
    let mut next_break = vec![n; n];
    for i in (0..n).rev() {
        if span(i, n - 1) <= limit {
            cost[i] = 0;
            next_break[i] = n;
            continue;
        }
        for j in i + 1..n {
            let len = span(i, j - 1);
            let shortfall = limit - len;
            let mut c = shortfall * shortfall + cost[j];
            if len > limit {
                c += OVERLONG_PENALTY;
            }
            if c < cost[i] {
                cost[i] = c;
                next_break[i] = j;
            }
        }
    }
    let mut lines = Vec::new();
    let mut i = 0;
    while i < n {
        lines.push(words[i..next_break[i]].to_vec());
        i = next_break[i];
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_table_centres_headers_with_the_odd_space_right() {
        let mut t = BoxTable::new(&["Peer address", "Since"]);
        t.push_row(&["172.17.8.102", "23:30:04"]);
        assert_eq!(
            t.render(),
            "+--------------+----------+\n\
             | PEER ADDRESS |  SINCE   |\n\
             +--------------+----------+\n\
             | 172.17.8.102 | 23:30:04 |\n\
             +--------------+----------+\n"
        );
    }

    #[test]
    fn box_table_wraps_long_cells_at_thirty_columns() {
        // The wrapped column is as wide as the limit (30), not as its longest line (25).
        let mut t = BoxTable::new(&["Info"]);
        t.push_row(&["Active Socket: Connection refused"]);
        t.push_row(&["Established"]);
        let rule = format!("+{}+\n", "-".repeat(32));
        let expected = format!(
            "{rule}| {:^30} |\n{rule}| {:<30} |\n| {:<30} |\n| {:<30} |\n{rule}",
            "INFO", "Active Socket: Connection", "refused", "Established"
        );
        assert_eq!(t.render(), expected);
    }

    #[test]
    fn box_table_right_aligns_numbers_only() {
        let mut t = BoxTable::new(&["Value"]);
        t.push_row(&["1,234"]);
        t.push_row(&["10.0.0.1"]);
        t.push_row(&["3.5"]);
        let out = t.render();
        assert!(out.contains("|    1,234 |"), "{out}");
        assert!(out.contains("| 10.0.0.1 |"), "{out}");
        assert!(out.contains("|      3.5 |"), "{out}");
    }

    #[test]
    fn wrapping_minimises_raggedness_not_greedy() {
        // Greedy filling would give "aaa bb" / "cc" / "ddddd".
        assert_eq!(wrap("aaa bb cc ddddd", 6), vec!["aaa", "bb cc", "ddddd"]);
        assert_eq!(wrap("short", 30), vec!["short"]);
        assert_eq!(wrap("", 0), vec![""]);
        // A word longer than the limit raises the limit instead of being cut.
        assert_eq!(wrap("2001:db8:1234:5678:9abc:def0:1234:5678", 30).len(), 1);
    }

    #[test]
    fn decimal_matches_go_regexp() {
        for yes in ["0", "-12", "1,234,567", "12345", "3.14", "1,234.5"] {
            assert!(is_decimal(yes), "{yes}");
        }
        for no in [
            "", "10.0.0.1", "1,23", "12:00", "abc", "1.", "-", "1234,567",
        ] {
            assert!(!is_decimal(no), "{no}");
        }
    }

    #[test]
    fn title_replaces_separators() {
        assert_eq!(title("peer_type"), "PEER TYPE");
        assert_eq!(title("v1.2"), "V1.2");
        assert_eq!(title("a.b"), "A B");
    }

    #[test]
    fn tab_table_pads_every_column_including_the_last() {
        let mut t = TabTable::new(&["NAME", "ASN"]);
        t.push_row(&["node-1", "64512"]);
        assert_eq!(t.render(), "NAME     ASN     \nnode-1   64512   \n");
        // minwidth 5 applies to narrow columns.
        let t = TabTable::new(&["A"]);
        assert_eq!(t.render(), "A    \n");
    }
}
