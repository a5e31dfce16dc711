//! Host MTU detection (calico.md §3.7): the smallest MTU among operationally-up links whose
//! name matches `MTUIfacePattern`, 1460 when none does. The pattern is a small regular
//! expression (Go `regexp` search semantics for the subset Calico's patterns use: literals, `.`,
//! `[...]` classes with ranges and negation, `(...)`, `|`, `*`, `+`, `?`, `^`, `$`, `\d\w\s` and
//! escaped literals), matched by a tiny backtracking engine so felix needs no regex crate.

use crate::dataplane::Dataplane;
use crate::dataplane::netlink::NetlinkDataplane;
use crate::model::Link;

/// Calico's default `MTUIfacePattern`.
pub const DEFAULT_MTU_IFACE_PATTERN: &str = "^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)";
/// Calico's fallback when no link matches.
pub const FALLBACK_MTU: u32 = 1460;

/// The pattern is not a regular expression this matcher understands.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid interface pattern {pattern:?} at character {position}: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub position: usize,
    pub reason: &'static str,
}

/// MTU detection failed.
#[derive(Debug, thiserror::Error)]
pub enum MtuError {
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error("cannot list links: {0}")]
    Links(#[from] crate::dataplane::DataplaneError),
    #[error("cannot open netlink: {0}")]
    Netlink(#[from] crate::nlsock::NetlinkError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Char(char),
    Any,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Start,
    End,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: usize,
        max: Option<usize>,
    },
}

struct Parser<'a> {
    pattern: &'a str,
    chars: Vec<char>,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, reason: &'static str) -> PatternError {
        PatternError {
            pattern: self.pattern.to_string(),
            position: self.pos,
            reason,
        }
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn alt(&mut self) -> Result<Node, PatternError> {
        let mut alts = vec![self.concat()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            alts.push(self.concat()?);
        }
        Ok(if alts.len() == 1 {
            alts.pop().unwrap_or(Node::Concat(Vec::new()))
        } else {
            Node::Alt(alts)
        })
    }
    fn concat(&mut self) -> Result<Node, PatternError> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.repeats(atom)?);
        }
        Ok(Node::Concat(items))
    }
    fn repeats(&mut self, mut node: Node) -> Result<Node, PatternError> {
        while let Some(c @ ('*' | '+' | '?')) = self.peek() {
            if matches!(node, Node::Start | Node::End) {
                return Err(self.err("repetition of an anchor"));
            }
            self.pos += 1;
            let (min, max) = match c {
                '*' => (0, None),
                '+' => (1, None),
                _ => (0, Some(1)),
            };
            node = Node::Repeat {
                node: Box::new(node),
                min,
                max,
            };
        }
        Ok(node)
    }
    fn escape_class(c: char) -> Option<Vec<(char, char)>> {
        match c {
            'd' => Some(vec![('0', '9')]),
            'w' => Some(vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')]),
            's' => Some(vec![(' ', ' '), ('\t', '\t'), ('\n', '\n'), ('\r', '\r')]),
            _ => None,
        }
    }
    fn atom(&mut self) -> Result<Node, PatternError> {
        let Some(c) = self.peek() else {
            return Err(self.err("unexpected end"));
        };
        self.pos += 1;
        Ok(match c {
            '(' => {
                if self.chars.get(self.pos..self.pos + 2) == Some(&['?', ':']) {
                    self.pos += 2;
                }
                let inner = self.alt()?;
                if self.peek() != Some(')') {
                    return Err(self.err("missing ')'"));
                }
                self.pos += 1;
                inner
            }
            '[' => self.class()?,
            '.' => Node::Any,
            '^' => Node::Start,
            '$' => Node::End,
            '*' | '+' | '?' => return Err(self.err("repetition without an operand")),
            '\\' => {
                let Some(e) = self.peek() else {
                    return Err(self.err("trailing backslash"));
                };
                self.pos += 1;
                match Self::escape_class(e) {
                    Some(ranges) => Node::Class {
                        negated: false,
                        ranges,
                    },
                    None => Node::Char(e),
                }
            }
            other => Node::Char(other),
        })
    }
    fn class(&mut self) -> Result<Node, PatternError> {
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("missing ']'"));
            };
            self.pos += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = if c == '\\' {
                let Some(e) = self.peek() else {
                    return Err(self.err("trailing backslash"));
                };
                self.pos += 1;
                if let Some(r) = Self::escape_class(e) {
                    ranges.extend(r);
                    continue;
                }
                e
            } else {
                c
            };
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|n| *n != ']') {
                let hi = self.chars[self.pos + 1];
                self.pos += 2;
                if hi < lo {
                    return Err(self.err("range out of order"));
                }
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        Ok(Node::Class { negated, ranges })
    }
}

fn match_node(node: &Node, s: &[char], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match node {
        Node::Char(c) => s.get(pos) == Some(c) && k(pos + 1),
        Node::Any => pos < s.len() && k(pos + 1),
        Node::Class { negated, ranges } => match s.get(pos) {
            Some(c) => {
                ranges.iter().any(|(lo, hi)| (lo..=hi).contains(&c)) != *negated && k(pos + 1)
            }
            None => false,
        },
        Node::Start => pos == 0 && k(pos),
        Node::End => pos == s.len() && k(pos),
        Node::Concat(items) => match_seq(items, s, pos, k),
        Node::Alt(alts) => alts.iter().any(|a| match_node(a, s, pos, k)),
        Node::Repeat { node, min, max } => match_repeat(node, *min, *max, 0, s, pos, k),
    }
}

fn match_seq(items: &[Node], s: &[char], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match items.split_first() {
        None => k(pos),
        Some((first, rest)) => match_node(first, s, pos, &mut |p| match_seq(rest, s, p, k)),
    }
}

/// Greedy repetition; an iteration that consumes nothing ends the loop (no infinite recursion).
fn match_repeat(
    node: &Node,
    min: usize,
    max: Option<usize>,
    count: usize,
    s: &[char],
    pos: usize,
    k: &mut dyn FnMut(usize) -> bool,
) -> bool {
    if max.is_none_or(|m| count < m)
        && match_node(node, s, pos, &mut |p| {
            p != pos && match_repeat(node, min, max, count + 1, s, p, k)
        })
    {
        return true;
    }
    count >= min && k(pos)
}

/// A compiled interface-name pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfacePattern {
    root: Node,
}

impl IfacePattern {
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        let mut p = Parser {
            pattern,
            chars: pattern.chars().collect(),
            pos: 0,
        };
        let root = p.alt()?;
        if p.pos != p.chars.len() {
            return Err(p.err("unbalanced ')'"));
        }
        Ok(IfacePattern { root })
    }

    /// True when the pattern matches anywhere in `name` (Go's `MatchString`).
    pub fn is_match(&self, name: &str) -> bool {
        let s: Vec<char> = name.chars().collect();
        (0..=s.len()).any(|start| match_node(&self.root, &s, start, &mut |_| true))
    }
}

impl Default for IfacePattern {
    fn default() -> Self {
        IfacePattern::new(DEFAULT_MTU_IFACE_PATTERN).unwrap_or(IfacePattern {
            root: Node::Concat(Vec::new()),
        })
    }
}

/// The smallest MTU among up and running links matching `pattern`, else `FALLBACK_MTU`.
pub fn host_mtu(links: &[Link], pattern: &IfacePattern) -> u32 {
    links
        .iter()
        .filter(|l| l.up && l.running && l.mtu > 0 && pattern.is_match(&l.name))
        .map(|l| l.mtu)
        .min()
        .unwrap_or(FALLBACK_MTU)
}

/// `host_mtu` over the links of the calling thread's network namespace.
pub fn detect_host_mtu(pattern: &str) -> Result<u32, MtuError> {
    let pattern = IfacePattern::new(pattern)?;
    let links = NetlinkDataplane::open()?.list_links()?;
    Ok(host_mtu(&links, &pattern))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pattern_matches_like_go_regexp() {
        let p = IfacePattern::default();
        for yes in [
            "eth0",
            "ens3",
            "enp0s3",
            "eno1",
            "wlp2s0",
            "wlan0",
            "wwan0",
            "ibp1s0",
            "enx001122",
            "eth",
        ] {
            assert!(p.is_match(yes), "{yes} should match");
        }
        for no in [
            "lo",
            "cali1234",
            "docker0",
            "tunl0",
            "en0",
            "vxlan.calico",
            "bond0",
            "veth12",
            "ib0",
            "e",
        ] {
            assert!(!p.is_match(no), "{no} should not match");
        }
    }

    #[test]
    fn matcher_features() {
        let m = |pat: &str, s: &str| IfacePattern::new(pat).unwrap().is_match(s);
        assert!(m("bond", "xbond0"), "unanchored search");
        assert!(!m("^bond$", "bond0"));
        assert!(m("^bond[0-9]+$", "bond12"));
        assert!(!m("^bond[0-9]+$", "bond"));
        assert!(m("^eth[^0]$", "eth1"));
        assert!(!m("^eth[^0]$", "eth0"));
        assert!(m("^a?b$", "b") && m("^a?b$", "ab") && !m("^a?b$", "aab"));
        assert!(m(r"^vxlan\.calico$", "vxlan.calico") && !m(r"^vxlan\.calico$", "vxlanXcalico"));
        assert!(m(r"^en\d+$", "en42"));
        assert!(m("^(a*)*$", "aaaa"), "nested stars terminate");
        assert!(m("^(?:ab|cd)+$", "abcdab"));
        for bad in ["(", "a)", "[abc", "*a", "^*", "a\\", "[z-a]"] {
            assert!(IfacePattern::new(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn smallest_matching_up_link_wins() {
        let link = |name: &str, mtu, up| Link {
            index: 1,
            name: name.into(),
            up,
            running: up,
            mtu,
            mac: None,
        };
        let p = IfacePattern::default();
        let links = vec![
            link("lo", 65536, true),
            link("eth0", 9000, true),
            link("ens4", 1500, true),
            link("eth1", 1200, false),
        ];
        assert_eq!(
            host_mtu(&links, &p),
            1500,
            "down links and non-matching links are ignored"
        );
        assert_eq!(host_mtu(&[link("lo", 65536, true)], &p), FALLBACK_MTU);
    }
}
