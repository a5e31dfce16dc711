//! Plain HTTP/1.1 GETs from inside a lab namespace and a reader of the Prometheus text
//! format, for the node's `/liveness`, `/readiness` and `/metrics`.
//!
//! Owns: one request per connection (`Connection: close`), the status line, headers and body;
//! parsing samples with their labels (escapes undone). Must not: open sockets outside the
//! namespace it is given.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::setns::thread_in_netns;

/// An HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Header lines as received (`Content-Type: text/plain; charset=utf-8`).
    pub headers: Vec<String>,
    /// Body.
    pub body: String,
}

/// `GET path` on `addr` over a plain TCP connection made inside `ns`.
pub fn http_get(ns: &Netns, addr: SocketAddr, path: &str) -> Result<HttpReply> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let raw = thread_in_netns(ns, move || -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        s.write_all(request.as_bytes())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(out)
    })?
    .map_err(|e| Error::io(format!("GET http://{addr}{path} in {}", ns.name()), e))?;
    parse_http(&String::from_utf8_lossy(&raw)).ok_or_else(|| {
        Error::parse(
            "ginger-node",
            format!("HTTP answer to GET {path}"),
            raw_text(&raw),
        )
    })
}

fn raw_text(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

fn parse_http(text: &str) -> Option<HttpReply> {
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    Some(HttpReply {
        status,
        headers: lines.map(str::to_string).collect(),
        body: body.to_string(),
    })
}

/// One sample of a Prometheus text exposition.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Every sample of one scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricSamples {
    /// Samples in exposition order.
    pub samples: Vec<Sample>,
}

impl MetricSamples {
    /// Parse Prometheus text format 0.0.4 (comments skipped, label values unescaped).
    pub fn parse(text: &str) -> Result<MetricSamples> {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            samples.push(
                parse_sample(line)
                    .ok_or_else(|| Error::parse("ginger-node", "a metrics line", line))?,
            );
        }
        Ok(MetricSamples { samples })
    }

    /// Samples named `name` whose labels include every `(key, value)` of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The one sample named `name` with `labels` (None if none; panics if several match,
    /// which means the test's labels are not specific enough).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self.matching(name, labels).collect();
        assert!(
            found.len() <= 1,
            "{name} {labels:?} matches several samples: {found:?}"
        );
        found.first().map(|s| s.value)
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        let end;
        loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => {
                    end = i + 1;
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
        rest = &inner[end..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_parse() {
        let r = parse_http(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nnot ready\n",
        )
        .unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.headers, vec!["Content-Type: text/plain"]);
        assert_eq!(r.body, "not ready\n");
        assert!(parse_http("garbage").is_none());
        assert!(parse_http("SIP/2.0 200 OK\r\n\r\n").is_none());
    }

    #[test]
    fn prometheus_samples_parse_with_escapes() {
        let text = "# HELP x y\n# TYPE x counter\n\
                    ginger_build_info{version=\"0.1.0\"} 1\n\
                    ginger_bgp_peer_notifications_sent_total{address=\"10.0.0.3\",code=\"3\",name=\"UPDATE Message Error/Invalid Network Field\",peer=\"Global_10_0_0_3\",subcode=\"10\",type=\"global\"} 2\n\
                    odd{l=\"a \\\"q\\\" \\\\ b\"} -1.5\n\
                    plain 7\n";
        let m = MetricSamples::parse(text).unwrap();
        assert_eq!(m.samples.len(), 4);
        assert_eq!(
            m.value(
                "ginger_bgp_peer_notifications_sent_total",
                &[("code", "3"), ("subcode", "10")]
            ),
            Some(2.0)
        );
        assert_eq!(m.samples[2].labels["l"], "a \"q\" \\ b");
        assert_eq!(m.value("odd", &[]), Some(-1.5));
        assert_eq!(m.value("plain", &[]), Some(7.0));
        assert_eq!(m.value("plain", &[("x", "y")]), None);
        assert!(MetricSamples::parse("broken{a=\"b\" 1\n").is_err());
        assert!(MetricSamples::parse("name notanumber\n").is_err());
    }
}
