//! A cluster-file document as a plain tree that remembers source lines, and the checked readers
//! that turn its nodes into typed values while recording every problem with its field path.
//!
//! Owns: `YamlNode`/`Value` (built from serde-saphyr's events with `deserialize_any`, so the
//! error messages are Ginger's and name the field, not serde's) and `Problems`/`MapReader`, the
//! small vocabulary the per-kind decoders use (`string`, `boolean`, `asn`, `cidr`, …). Must not:
//! know any resource kind (that is `decode`) or read files (that is `file`). Data enters as a
//! `YamlNode` per document and leaves as typed values plus a list of `Problem`s; nothing here
//! stops at the first problem.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::duration::parse_go_duration;
use super::{DocRef, Problem};
use crate::selector::Selector;

/// One node of a document: its value and the 1-based line it starts on (0 when unknown, e.g.
/// for a tree built from JSON).
#[derive(Clone, Debug, PartialEq)]
pub struct YamlNode {
    /// Where the value starts in the file.
    pub line: u32,
    /// The value.
    pub value: Value,
}

/// A YAML value with the scalar type YAML's core schema gave it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `~`, `null` or an empty value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A plain integer scalar.
    Int(i128),
    /// A plain floating-point scalar.
    Float(f64),
    /// A string (quoted, or plain and not a number/bool/null).
    Str(String),
    /// A sequence.
    Seq(Vec<YamlNode>),
    /// A mapping, in file order; keys are strings (numeric keys are kept as their text).
    Map(Vec<(Key, YamlNode)>),
}

/// A mapping key and the line it is on.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// The key text.
    pub name: String,
    /// Where the key is.
    pub line: u32,
}

impl Value {
    /// How the value is described in an error ("got …").
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "nothing (null)".to_string(),
            Value::Bool(b) => format!("the boolean {b}"),
            Value::Int(i) => format!("the number {i}"),
            Value::Float(f) => format!("the number {f}"),
            Value::Str(s) => format!("{s:?}"),
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        }
    }
}

fn line_of(loc: &serde_saphyr::Location) -> u32 {
    u32::try_from(loc.line()).unwrap_or(u32::MAX)
}

impl<'de> Deserialize<'de> for YamlNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        Ok(YamlNode {
            line: line_of(&spanned.referenced),
            value: spanned.value,
        })
    }
}

/// A mapping key as YAML wrote it: strings, and numbers or booleans kept as their text.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Str(s) => Ok(KeyText(s)),
            Value::Int(i) => Ok(KeyText(i.to_string())),
            Value::Bool(b) => Ok(KeyText(b.to_string())),
            Value::Float(f) => Ok(KeyText(f.to_string())),
            Value::Null => Ok(KeyText(String::new())),
            Value::Seq(_) | Value::Map(_) => {
                Err(de::Error::custom("a mapping key must be a plain value"))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(i128::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(i128::from(v)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i128::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<YamlNode>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<YamlNode>()?;
            entries.push((
                Key {
                    name: key.value.0,
                    line: line_of(&key.referenced),
                },
                value,
            ));
        }
        Ok(Value::Map(entries))
    }
}

/// The problems found in one document, each tagged with that document.
pub struct Problems {
    doc: DocRef,
    /// What was found so far.
    pub list: Vec<Problem>,
}

impl Problems {
    /// An empty list for `doc`.
    pub fn new(doc: DocRef) -> Problems {
        Problems {
            doc,
            list: Vec::new(),
        }
    }

    /// Name the document's kind and name once they are known (they head every message).
    pub fn set_doc(&mut self, doc: DocRef) {
        for p in &mut self.list {
            p.document = Some(doc.clone());
        }
        self.doc = doc;
    }

    /// The document these problems belong to.
    pub fn doc(&self) -> &DocRef {
        &self.doc
    }

    /// Record a problem with `field` (a path such as `spec.asNumber`) at `line`.
    pub fn push(&mut self, field: &str, line: u32, message: impl Into<String>) {
        self.list.push(Problem {
            document: Some(self.doc.clone()),
            field: (!field.is_empty()).then(|| field.to_string()),
            message: message.into(),
            line: (line > 0).then_some(line),
        });
    }

    /// Record "expected X, got Y" for `node`.
    pub fn expected(&mut self, field: &str, node: &YamlNode, what: &str) {
        self.push(
            field,
            node.line,
            format!("expected {what}, got {}", node.value.describe()),
        );
    }
}

/// Join a parent path and a field name (`spec` + `asNumber` → `spec.asNumber`).
pub fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_string()
    } else {
        format!("{parent}.{field}")
    }
}

/// A field of a mapping that Calico defines but Ginger does not implement, with the reason the
/// user sees instead of a bare "unknown field".
pub type Unsupported = (&'static str, &'static str);

/// The fields of one mapping, checked against the names the schema allows.
pub struct MapReader<'a> {
    path: String,
    entries: &'a [(Key, YamlNode)],
}

impl<'a> MapReader<'a> {
    /// Read `node` as a mapping whose keys must be in `allowed`. Unknown keys are reported (with
    /// the close match or the valid names); keys in `unsupported` are reported with their
    /// reason. Returns `None` (after reporting) when `node` is not a mapping.
    pub fn new(
        node: &'a YamlNode,
        path: &str,
        allowed: &[&str],
        unsupported: &[Unsupported],
        problems: &mut Problems,
    ) -> Option<MapReader<'a>> {
        let Value::Map(entries) = &node.value else {
            let what = if path.is_empty() {
                "a mapping (a Kubernetes-style resource)".to_string()
            } else {
                format!("a mapping with the fields {}", allowed.join(", "))
            };
            problems.expected(path, node, &what);
            return None;
        };
        for (key, _) in entries {
            if allowed.contains(&key.name.as_str()) {
                continue;
            }
            let field = join(path, &key.name);
            if let Some((_, why)) = unsupported.iter().find(|(name, _)| *name == key.name) {
                problems.push(&field, key.line, format!("not supported by Ginger: {why}"));
            } else {
                problems.push(&field, key.line, unknown_field_message(&key.name, allowed));
            }
        }
        Some(MapReader {
            path: path.to_string(),
            entries,
        })
    }

    /// The value of `field`, if present and not null.
    pub fn get(&self, field: &str) -> Option<&'a YamlNode> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == field)
            .map(|(_, v)| v)
            .filter(|v| v.value != Value::Null)
    }

    /// The full path of `field` (`spec` + `asNumber`).
    pub fn path(&self, field: &str) -> String {
        join(&self.path, field)
    }

    /// Read `field` with `read` when it is present.
    pub fn read<T>(
        &self,
        field: &str,
        problems: &mut Problems,
        read: impl FnOnce(&YamlNode, &str, &mut Problems) -> Option<T>,
    ) -> Option<T> {
        let node = self.get(field)?;
        read(node, &self.path(field), problems)
    }

    /// The line of `field`'s key, or 0.
    pub fn line_of(&self, field: &str) -> u32 {
        self.entries
            .iter()
            .find(|(k, _)| k.name == field)
            .map_or(0, |(k, _)| k.line)
    }
}

/// "unknown field; did you mean …" or "unknown field; valid fields are …".
pub fn unknown_field_message(name: &str, allowed: &[&str]) -> String {
    match closest(name, allowed) {
        Some(close) => format!("unknown field; did you mean {close:?}?"),
        None if allowed.is_empty() => "unknown field; this mapping takes no fields".to_string(),
        None => format!("unknown field; valid fields are {}", allowed.join(", ")),
    }
}

/// The candidate closest to `name` (case-insensitive equality, or a small edit distance).
pub fn closest<'c>(name: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let lower = name.to_ascii_lowercase();
    if let Some(c) = candidates.iter().find(|c| c.to_ascii_lowercase() == lower) {
        return Some(c);
    }
    let limit = (name.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---- typed readers: each reports its own problem and returns None on failure ----

/// A string value. Numbers and booleans are refused with a hint to quote them, because
/// Kubernetes would refuse them too.
pub fn string(node: &YamlNode, path: &str, problems: &mut Problems) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
            problems.push(
                path,
                node.line,
                format!(
                    "expected a string, got {} (quote it to make it a string)",
                    node.value.describe()
                ),
            );
            None
        }
        _ => {
            problems.expected(path, node, "a string");
            None
        }
    }
}

/// A boolean (`true`/`false`).
pub fn boolean(node: &YamlNode, path: &str, problems: &mut Problems) -> Option<bool> {
    match &node.value {
        Value::Bool(b) => Some(*b),
        _ => {
            problems.expected(path, node, "true or false");
            None
        }
    }
}

/// An integer in `min..=max`, written as a number.
pub fn int_in(
    node: &YamlNode,
    path: &str,
    problems: &mut Problems,
    min: i128,
    max: i128,
    what: &str,
) -> Option<i128> {
    match &node.value {
        Value::Int(i) if (min..=max).contains(i) => Some(*i),
        _ => {
            problems.expected(path, node, &format!("{what} ({min}-{max})"));
            None
        }
    }
}

/// A TCP port (1-65535).
pub fn port(node: &YamlNode, path: &str, problems: &mut Problems) -> Option<u16> {
    int_in(node, path, problems, 1, 65535, "a TCP port").and_then(|p| u16::try_from(p).ok())
}

/// An AS number: a number or a string of digits (Calico's numorstring), or `high.low` asdot
/// notation (RFC 5396), 1-4294967295.
pub fn asn(node: &YamlNode, path: &str, problems: &mut Problems) -> Option<u32> {
    let parsed = match &node.value {
        Value::Int(i) => u32::try_from(*i).ok(),
        Value::Str(s) => parse_asn(s),
        _ => None,
    };
    match parsed {
        Some(a) if a != 0 => Some(a),
        _ => {
            problems.expected(path, node, "an AS number (1-4294967295)");
            None
        }
    }
}

/// Parse `64512` or asdot `1.10` (= 65546).
pub fn parse_asn(s: &str) -> Option<u32> {
    let s = s.trim();
    if let Some((high, low)) = s.split_once('.') {
        let high: u16 = digits(high)?;
        let low: u16 = digits(low)?;
        return Some((u32::from(high) << 16) | u32::from(low));
    }
    digits(s)
}

fn digits<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One of a fixed set of words (exact spelling); a wrong case gets a "did you mean".
pub fn one_of<T: Copy>(
    node: &YamlNode,
    path: &str,
    problems: &mut Problems,
    choices: &[(&str, T)],
) -> Option<T> {
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    if let Value::Str(s) = &node.value {
        if let Some((_, v)) = choices.iter().find(|(n, _)| n == s) {
            return Some(*v);
        }
        if let Some(close) = closest(s, &names) {
            problems.push(
                path,
                node.line,
                format!(
                    "expected one of {}, got {s:?}; did you mean {close:?}?",
                    names.join(", ")
                ),
            );
            return None;
        }
    }
    problems.expected(path, node, &format!("one of {}", names.join(", ")));
    None
}

/// A Go duration (`90s`, `1m30s`), as Kubernetes' `metav1.Duration` writes it.
pub fn duration(node: &YamlNode, path: &str, problems: &mut Problems) -> Option<Duration> {
    let parsed = match &node.value {
        Value::Str(s) => parse_go_duration(s),
        _ => Err("not a string".to_string()),
    };
    match parsed {
        Ok(d) => Some(d),
        Err(why) => {
            let hint = if let Value::Int(_) = node.value {
                " (add a unit, e.g. \"90s\")"
            } else {
                ""
            };
            problems.push(
                path,
                node.line,
                format!(
                    "expected a duration like \"90s\" or \"1m30s\", got {}{hint}: {why}",
                    node.value.describe()
                ),
            );
            None
        }
    }
}

/// A duration in whole seconds (rounded as confd does) within `min..=max` seconds.
pub fn seconds_in(
    node: &YamlNode,
    path: &str,
    problems: &mut Problems,
    min: u64,
    max: u64,
) -> Option<u16> {
    let d = duration(node, path, problems)?;
    // confd renders math.Round(d.Seconds()).
    let secs = (d.as_millis() + 500) / 1000;
    if u128::from(min) <= secs && secs <= u128::from(max) {
        u16::try_from(secs).ok()
    } else {
        problems.push(
            path,
            node.line,
            format!("expected a duration between {min}s and {max}s, got {secs}s"),
        );
        None
    }
}

/// A network prefix with its host bits zero (`10.0.0.0/16`); a prefix of length 0 is refused
/// when `allow_default` is false, since Ginger never exports or allocates the default route.
pub fn cidr(
    node: &YamlNode,
    path: &str,
    problems: &mut Problems,
    allow_default: bool,
) -> Option<IpNet> {
    let s = string(node, path, problems)?;
    let net = match IpNet::from_str(s.trim()) {
        Ok(net) => net,
        Err(_) => {
            let hint = if IpAddr::from_str(s.trim()).is_ok() {
                " (add the prefix length, e.g. /32)"
            } else {
                ""
            };
            problems.push(
                path,
                node.line,
                format!("expected a CIDR like \"10.96.0.0/12\", got {s:?}{hint}"),
            );
            return None;
        }
    };
    if net.addr() != net.network() {
        problems.push(
            path,
            node.line,
            format!("{s:?} has host bits set; the network is {}", net.trunc()),
        );
        return None;
    }
    if net.prefix_len() == 0 && !allow_default {
        problems.push(
            path,
            node.line,
            format!("{s:?} is the default route, which Ginger never exports; use a smaller prefix"),
        );
        return None;
    }
    Some(net)
}

/// A Calico selector; parse errors point at the column.
pub fn selector(node: &YamlNode, path: &str, problems: &mut Problems) -> Option<Selector> {
    let s = string(node, path, problems)?;
    match Selector::parse(&s) {
        Ok(sel) => Some(sel),
        Err(e) => {
            problems.push(path, node.line, format!("invalid selector {s:?}: {e}"));
            None
        }
    }
}

/// A list whose items are read with `item`; a bad item does not hide the others.
pub fn list<T>(
    node: &YamlNode,
    path: &str,
    problems: &mut Problems,
    mut item: impl FnMut(&YamlNode, &str, &mut Problems) -> Option<T>,
) -> Option<Vec<T>> {
    let Value::Seq(items) = &node.value else {
        problems.expected(path, node, "a list");
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, n) in items.iter().enumerate() {
        match item(n, &format!("{path}[{i}]"), problems) {
            Some(v) => out.push(v),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// A mapping of string keys to string values (labels, annotations).
pub fn string_map(
    node: &YamlNode,
    path: &str,
    problems: &mut Problems,
) -> Option<BTreeMap<String, String>> {
    let Value::Map(entries) = &node.value else {
        problems.expected(path, node, "a mapping of strings");
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in entries {
        let field = join(path, &k.name);
        let value = match &v.value {
            Value::Null => Some(String::new()),
            _ => string(v, &field, problems),
        };
        match value {
            Some(s) => {
                out.insert(k.name.clone(), s);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> YamlNode {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn problems() -> Problems {
        Problems::new(DocRef {
            index: 1,
            kind: Some("BGPPeer".into()),
            name: Some("p".into()),
        })
    }

    #[test]
    fn tree_keeps_types_and_lines() {
        let n = parse("a: 1\nb: \"1\"\nc:\n  - x\n  - true\nd: ~\n");
        let Value::Map(entries) = &n.value else {
            panic!("not a map: {n:?}")
        };
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].0.name, "a");
        assert_eq!(entries[0].1.value, Value::Int(1));
        assert_eq!(entries[1].1.value, Value::Str("1".into()));
        assert_eq!(entries[1].0.line, 2);
        let Value::Seq(items) = &entries[2].1.value else {
            panic!("not a seq")
        };
        assert_eq!(items[0].value, Value::Str("x".into()));
        assert_eq!(items[0].line, 4);
        assert_eq!(items[1].value, Value::Bool(true));
        assert_eq!(entries[3].1.value, Value::Null);
    }

    #[test]
    fn unknown_fields_suggest_or_list() {
        let n = parse("asnumber: 1\nbogus: 2\npassword: x\n");
        let mut p = problems();
        let r = MapReader::new(
            &n,
            "spec",
            &["asNumber", "peerIP"],
            &[("password", "BGP passwords are not implemented")],
            &mut p,
        )
        .unwrap();
        assert!(r.get("asNumber").is_none());
        let msgs: Vec<String> = p.list.iter().map(|p| p.to_string()).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(msgs[0].contains("spec.asnumber: unknown field; did you mean \"asNumber\"?"));
        assert!(msgs[0].ends_with("(line 1)"), "{}", msgs[0]);
        assert!(msgs[1].contains("spec.bogus: unknown field; valid fields are asNumber, peerIP"));
        assert!(msgs[2].contains("spec.password: not supported by Ginger: BGP passwords"));
    }

    #[test]
    fn asn_forms() {
        assert_eq!(parse_asn("64512"), Some(64512));
        assert_eq!(parse_asn("1.10"), Some(65546));
        assert_eq!(parse_asn("4294967295"), Some(u32::MAX));
        assert_eq!(parse_asn("4294967296"), None);
        assert_eq!(parse_asn("abc"), None);
        assert_eq!(parse_asn("1.70000"), None);
        let mut p = problems();
        assert_eq!(asn(&parse("0"), "spec.asNumber", &mut p), None);
        assert_eq!(
            asn(&parse("\"65001\""), "spec.asNumber", &mut p),
            Some(65001)
        );
        assert_eq!(p.list.len(), 1);
        assert!(
            p.list[0]
                .message
                .contains("expected an AS number (1-4294967295), got the number 0")
        );
    }

    #[test]
    fn cidr_checks_host_bits_and_default() {
        let mut p = problems();
        assert_eq!(
            cidr(&parse("10.0.0.0/16"), "f", &mut p, false),
            Some("10.0.0.0/16".parse().unwrap())
        );
        assert_eq!(cidr(&parse("10.0.0.1/16"), "f", &mut p, false), None);
        assert_eq!(cidr(&parse("0.0.0.0/0"), "f", &mut p, false), None);
        assert_eq!(cidr(&parse("10.0.0.1"), "f", &mut p, false), None);
        assert_eq!(p.list.len(), 3);
        assert!(
            p.list[0]
                .message
                .contains("host bits set; the network is 10.0.0.0/16")
        );
        assert!(p.list[1].message.contains("default route"));
        assert!(p.list[2].message.contains("add the prefix length"));
    }

    #[test]
    fn strings_refuse_numbers_with_a_hint() {
        let mut p = problems();
        assert_eq!(string(&parse("1"), "metadata.labels.rack", &mut p), None);
        assert!(p.list[0].message.contains("quote it"));
    }

    #[test]
    fn closest_match() {
        assert_eq!(closest("bgppeer", &["BGPPeer", "Node"]), Some("BGPPeer"));
        assert_eq!(
            closest("peerIp", &["peerIP", "peerSelector"]),
            Some("peerIP")
        );
        assert_eq!(
            closest("nodeSelectr", &["node", "nodeSelector"]),
            Some("nodeSelector")
        );
        assert_eq!(closest("zzz", &["node", "nodeSelector"]), None);
    }
}
