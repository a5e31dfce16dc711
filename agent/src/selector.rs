//! Calico label selectors (`libcalico-go/lib/selector`): the parser and the evaluator over a
//! node's labels.
//!
//! Owns: the grammar (`all()`, `k == 'v'`, `k != 'v'`, `has(k)`, `k in {…}`, `k not in {…}`,
//! `contains`, `starts with`, `ends with`, `!`, `&&`, `||`, parentheses; `&&` binds tighter than
//! `||`, `!` tighter than both) and Calico's evaluation rules (`!=` and `not in` are true when the
//! label is absent). Must not: know about resources. A selector enters as text and leaves as a
//! `Selector` whose `matches(labels)` is pure; parse errors carry the 1-based column.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Calico's limit on a label name inside a selector.
const MAX_LABEL_LEN: usize = 512;

/// A parsed selector. Equality and display use the text as written.
#[derive(Clone, Debug)]
pub struct Selector {
    source: String,
    expr: Expr,
}

impl PartialEq for Selector {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}
impl Eq for Selector {}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    All,
    Has(String),
    Eq(String, String),
    Ne(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Contains(String, String),
    StartsWith(String, String),
    EndsWith(String, String),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// Why a selector does not parse, and where (1-based character column).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at column {column}: {message}")]
pub struct SelectorError {
    /// 1-based character column of the offending token (one past the end for "unexpected end").
    pub column: usize,
    /// What was expected.
    pub message: String,
}

impl Selector {
    /// `all()`: matches every node (also what an empty selector means).
    pub fn all() -> Selector {
        Selector {
            source: "all()".to_string(),
            expr: Expr::All,
        }
    }

    /// Parse Calico selector syntax. An empty (or all-blank) selector is `all()`, as in Calico.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, pos: 0 };
        let expr = if parser.peek().kind == Tok::Eof {
            Expr::All
        } else {
            let expr = parser.or_expr()?;
            let next = parser.peek();
            if next.kind != Tok::Eof {
                return Err(SelectorError {
                    column: next.column,
                    message: format!(
                        "unexpected {} after a complete expression (missing && or ||?)",
                        next.describe()
                    ),
                });
            }
            expr
        };
        Ok(Selector {
            source: text.to_string(),
            expr,
        })
    }

    /// The selector as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Does a node with these labels match?
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        eval(&self.expr, labels)
    }
}

fn eval(expr: &Expr, labels: &BTreeMap<String, String>) -> bool {
    match expr {
        Expr::All => true,
        Expr::Has(k) => labels.contains_key(k),
        Expr::Eq(k, v) => labels.get(k) == Some(v),
        // Calico: true when the label is absent.
        Expr::Ne(k, v) => labels.get(k) != Some(v),
        Expr::In(k, set) => labels.get(k).is_some_and(|v| set.contains(v)),
        // Calico: true when the label is absent.
        Expr::NotIn(k, set) => labels.get(k).is_none_or(|v| !set.contains(v)),
        Expr::Contains(k, s) => labels.get(k).is_some_and(|v| v.contains(s.as_str())),
        Expr::StartsWith(k, s) => labels.get(k).is_some_and(|v| v.starts_with(s.as_str())),
        Expr::EndsWith(k, s) => labels.get(k).is_some_and(|v| v.ends_with(s.as_str())),
        Expr::Not(e) => !eval(e, labels),
        Expr::And(es) => es.iter().all(|e| eval(e, labels)),
        Expr::Or(es) => es.iter().any(|e| eval(e, labels)),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Label(String),
    Str(String),
    LBrace,
    RBrace,
    Comma,
    Eq,
    Ne,
    In,
    Not,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
    All,
    Has(String),
    LParen,
    RParen,
    And,
    Or,
    Eof,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Tok,
    column: usize,
}

impl Token {
    fn describe(&self) -> String {
        match &self.kind {
            Tok::Label(l) => format!("label {l:?}"),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::LBrace => "'{'".into(),
            Tok::RBrace => "'}'".into(),
            Tok::Comma => "','".into(),
            Tok::Eq => "'=='".into(),
            Tok::Ne => "'!='".into(),
            Tok::In => "'in'".into(),
            Tok::Not => "'!'".into(),
            Tok::NotIn => "'not in'".into(),
            Tok::Contains => "'contains'".into(),
            Tok::StartsWith => "'starts with'".into(),
            Tok::EndsWith => "'ends with'".into(),
            Tok::All => "'all()'".into(),
            Tok::Has(l) => format!("'has({l})'"),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::And => "'&&'".into(),
            Tok::Or => "'||'".into(),
            Tok::Eof => "end of selector".into(),
        }
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

/// Tokenizer over chars, tracking columns. Word operators (`contains`, `starts with`, `ends with`,
/// `in`, `not in`) are only recognised right after a label, as Calico does, so labels may use
/// those words as names.
fn tokenize(text: &str) -> Result<Vec<Token>, SelectorError> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut out: Vec<Token> = Vec::new();
    let err = |column: usize, message: String| SelectorError { column, message };
    loop {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let column = i + 1;
        let Some(&c) = chars.get(i) else {
            out.push(Token {
                kind: Tok::Eof,
                column,
            });
            return Ok(out);
        };
        let rest: String = chars[i..].iter().collect();
        let after_label = matches!(out.last().map(|t| &t.kind), Some(Tok::Label(_)));
        let (kind, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '{' => (Tok::LBrace, 1),
            '}' => (Tok::RBrace, 1),
            ',' => (Tok::Comma, 1),
            '"' | '\'' => {
                let Some(end) = chars[i + 1..].iter().position(|&x| x == c) else {
                    return Err(err(
                        column,
                        format!("unterminated string (missing closing {c})"),
                    ));
                };
                let value: String = chars[i + 1..i + 1 + end].iter().collect();
                (Tok::Str(value), end + 2)
            }
            '=' if rest.starts_with("==") => (Tok::Eq, 2),
            '=' => {
                return Err(err(
                    column,
                    "expected '==' (a single '=' is not an operator)".into(),
                ));
            }
            '!' if rest.starts_with("!=") => (Tok::Ne, 2),
            '!' => (Tok::Not, 1),
            '&' if rest.starts_with("&&") => (Tok::And, 2),
            '&' => return Err(err(column, "expected '&&'".into())),
            '|' if rest.starts_with("||") => (Tok::Or, 2),
            '|' => return Err(err(column, "expected '||'".into())),
            _ if after_label => match word_operator(&chars[i..]) {
                Some(found) => found,
                None => {
                    let label = match out.last().map(|t| &t.kind) {
                        Some(Tok::Label(l)) => l.clone(),
                        _ => String::new(),
                    };
                    return Err(err(
                        column,
                        format!(
                            "expected an operator after label {label:?} (==, !=, in, not in, \
                             contains, starts with, ends with)"
                        ),
                    ));
                }
            },
            _ if rest.starts_with("has(") => {
                let mut j = i + 4;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let start = j;
                while j < chars.len() && is_ident_char(chars[j]) {
                    j += 1;
                }
                if start == j {
                    return Err(err(start + 1, "expected a label name inside has()".into()));
                }
                let label: String = chars[start..j].iter().collect();
                check_label_len(&label, start + 1)?;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                if chars.get(j) != Some(&')') {
                    return Err(err(j + 1, "expected ')' to close has(".into()));
                }
                (Tok::Has(label), j + 1 - i)
            }
            _ if rest.starts_with("all(") => {
                let mut j = i + 4;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                if chars.get(j) != Some(&')') {
                    return Err(err(j + 1, "expected ')' to close all(".into()));
                }
                (Tok::All, j + 1 - i)
            }
            _ if rest.starts_with("global(") => {
                return Err(err(
                    column,
                    "global() selects namespaces and is not valid in a node selector".into(),
                ));
            }
            _ if is_ident_char(c) => {
                let len = chars[i..].iter().take_while(|&&x| is_ident_char(x)).count();
                let label: String = chars[i..i + len].iter().collect();
                check_label_len(&label, column)?;
                (Tok::Label(label), len)
            }
            _ => return Err(err(column, format!("unexpected character {c:?}"))),
        };
        out.push(Token { kind, column });
        i += len;
    }
}

fn check_label_len(label: &str, column: usize) -> Result<(), SelectorError> {
    if label.len() > MAX_LABEL_LEN {
        return Err(SelectorError {
            column,
            message: format!("label name longer than {MAX_LABEL_LEN} characters"),
        });
    }
    Ok(())
}

/// A word operator at the start of `chars` (with a word boundary after it), and its length.
fn word_operator(chars: &[char]) -> Option<(Tok, usize)> {
    let words: &[(&[&str], Tok)] = &[
        (&["contains"], Tok::Contains),
        (&["starts", "with"], Tok::StartsWith),
        (&["ends", "with"], Tok::EndsWith),
        (&["not", "in"], Tok::NotIn),
        (&["in"], Tok::In),
    ];
    'next: for (parts, tok) in words {
        let mut j = 0;
        for (n, part) in parts.iter().enumerate() {
            if n > 0 {
                let ws = chars[j..].iter().take_while(|c| c.is_whitespace()).count();
                if ws == 0 {
                    continue 'next;
                }
                j += ws;
            }
            let p: Vec<char> = part.chars().collect();
            if chars.len() < j + p.len() || chars[j..j + p.len()] != p[..] {
                continue 'next;
            }
            j += p.len();
        }
        if chars.get(j).is_some_and(|&c| is_ident_char(c)) {
            continue;
        }
        return Some((tok.clone(), j));
    }
    None
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        // The tokenizer always ends with Eof, and nothing advances past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if t.kind != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    fn or_expr(&mut self) -> Result<Expr, SelectorError> {
        let mut terms = vec![self.and_expr()?];
        while self.peek().kind == Tok::Or {
            self.next();
            terms.push(self.and_expr()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and_expr(&mut self) -> Result<Expr, SelectorError> {
        let mut terms = vec![self.operation()?];
        while self.peek().kind == Tok::And {
            self.next();
            terms.push(self.operation()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn unexpected(tok: &Token, wanted: &str) -> SelectorError {
        SelectorError {
            column: tok.column,
            message: format!("expected {wanted}, got {}", tok.describe()),
        }
    }

    fn string(&mut self, after: &str) -> Result<String, SelectorError> {
        let t = self.next();
        match t.kind {
            Tok::Str(s) => Ok(s),
            _ => Err(Self::unexpected(
                &t,
                &format!("a quoted string after {after}"),
            )),
        }
    }

    fn operation(&mut self) -> Result<Expr, SelectorError> {
        let mut negated = false;
        while self.peek().kind == Tok::Not {
            self.next();
            negated = !negated;
        }
        let t = self.next();
        let expr = match t.kind {
            Tok::All => Expr::All,
            Tok::Has(label) => Expr::Has(label),
            Tok::LParen => {
                let inner = self.or_expr()?;
                let close = self.next();
                if close.kind != Tok::RParen {
                    return Err(Self::unexpected(&close, "')'"));
                }
                inner
            }
            Tok::Label(label) => {
                let op = self.next();
                match op.kind {
                    Tok::Eq => Expr::Eq(label, self.string("==")?),
                    Tok::Ne => Expr::Ne(label, self.string("!=")?),
                    Tok::Contains => Expr::Contains(label, self.string("contains")?),
                    Tok::StartsWith => Expr::StartsWith(label, self.string("starts with")?),
                    Tok::EndsWith => Expr::EndsWith(label, self.string("ends with")?),
                    Tok::In | Tok::NotIn => {
                        let set = self.set_literal()?;
                        if op.kind == Tok::In {
                            Expr::In(label, set)
                        } else {
                            Expr::NotIn(label, set)
                        }
                    }
                    _ => return Err(Self::unexpected(&op, "an operator (==, !=, in, …)")),
                }
            }
            _ => {
                return Err(Self::unexpected(&t, "a label, has(…), all(), '(' or '!'"));
            }
        };
        Ok(if negated {
            Expr::Not(Box::new(expr))
        } else {
            expr
        })
    }

    /// `{'a', 'b'}`; `{}` is the empty set and a trailing comma is accepted, as in Calico.
    fn set_literal(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let open = self.next();
        if open.kind != Tok::LBrace {
            return Err(Self::unexpected(&open, "'{' to start a set of strings"));
        }
        let mut set = BTreeSet::new();
        loop {
            let t = self.next();
            match t.kind {
                Tok::RBrace => return Ok(set),
                Tok::Str(s) => {
                    set.insert(s);
                    let sep = self.next();
                    match sep.kind {
                        Tok::Comma => {}
                        Tok::RBrace => return Ok(set),
                        _ => return Err(Self::unexpected(&sep, "',' or '}'")),
                    }
                }
                _ => return Err(Self::unexpected(&t, "a quoted string or '}'")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn evaluation_table() {
        let rack_a = labels(&[("rack", "a"), ("role", "worker"), ("zone", "eu-west-1a")]);
        let rr = labels(&[("route-reflector", "true"), ("rack", "b")]);
        let none = labels(&[]);
        // (selector, matches rack_a, matches rr, matches none)
        let table: &[(&str, bool, bool, bool)] = &[
            ("", true, true, true),
            ("all()", true, true, true),
            ("rack == 'a'", true, false, false),
            ("rack == \"a\"", true, false, false),
            ("rack != 'a'", false, true, true),
            ("has(rack)", true, true, false),
            ("has( rack )", true, true, false),
            ("!has(rack)", false, false, true),
            ("rack in {'a', 'c'}", true, false, false),
            ("rack in {}", false, false, false),
            ("rack in {'a',}", true, false, false),
            ("rack not in {'a'}", false, true, true),
            ("zone contains 'west'", true, false, false),
            ("zone starts with 'eu-'", true, false, false),
            ("zone ends with '1a'", true, false, false),
            ("zone   starts   with 'eu'", true, false, false),
            ("!(rack == 'a')", false, true, true),
            ("!!has(rack)", true, true, false),
            ("route-reflector == 'true'", false, true, false),
            ("has(rack) && rack != 'b'", true, false, false),
            ("rack == 'x' || role == 'worker'", true, false, false),
            // && binds tighter than ||: a || (b && c)
            (
                "rack == 'a' || rack == 'b' && has(zone)",
                true,
                false,
                false,
            ),
            (
                "(rack == 'a' || rack == 'b') && has(zone)",
                true,
                false,
                false,
            ),
            (
                "rack == 'b' && has(route-reflector) || role == 'worker'",
                true,
                true,
                false,
            ),
            (
                "rack == 'b' && (has(route-reflector) || role == 'worker')",
                false,
                true,
                false,
            ),
            // ! binds to one operation only.
            ("!has(zone) && has(rack)", false, true, false),
            // Word operators are only operators after a label, so labels may use the words.
            ("in == 'x' || contains != 'y'", true, true, true),
            ("kubernetes.io/hostname == 'n1'", false, false, false),
        ];
        for (text, a, b, c) in table {
            let sel = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(sel.matches(&rack_a), *a, "{text} on rack_a");
            assert_eq!(sel.matches(&rr), *b, "{text} on rr");
            assert_eq!(sel.matches(&none), *c, "{text} on none");
            assert_eq!(sel.as_str(), *text);
        }
    }

    #[test]
    fn errors_point_at_the_column() {
        let table: &[(&str, usize, &str)] = &[
            ("rack = 'a'", 6, "'=='"),
            ("rack == a", 9, "quoted string after =="),
            ("rack == 'a", 9, "unterminated"),
            ("rack 'a'", 6, "expected an operator"),
            ("rack 42", 6, "operator after label \"rack\""),
            ("rack == 'a' rack == 'b'", 13, "missing && or ||"),
            ("(rack == 'a'", 13, "expected ')'"),
            ("has(rack", 9, "')' to close has("),
            ("has()", 5, "label name inside has()"),
            ("rack in 'a'", 9, "'{'"),
            ("rack in {'a' 'b'}", 14, "',' or '}'"),
            ("rack == 'a' &", 13, "'&&'"),
            ("rack == 'a' |", 13, "'||'"),
            ("rack == 'a' &&", 15, "end of selector"),
            ("global()", 1, "global()"),
            ("rack == 'a' @", 13, "unexpected character '@'"),
            ("&& x", 1, "a label"),
        ];
        for (text, column, want) in table {
            let e = Selector::parse(text).expect_err(text);
            assert_eq!(e.column, *column, "{text}: {e}");
            assert!(e.message.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn all_is_all() {
        assert!(Selector::all().matches(&labels(&[])));
        assert_eq!(Selector::all().to_string(), "all()");
        assert_eq!(
            Selector::parse("has(a)").unwrap(),
            Selector::parse("has(a)").unwrap()
        );
    }
}
