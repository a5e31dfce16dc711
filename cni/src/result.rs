//! CNI results (ADD's output, and `prevResult` on input) in every supported version.
//!
//! Owns: `CniResult`, one version-neutral model holding the 1.1.0 fields, and its JSON form per
//! version (CNI spec §5 "ADD Success" of each release):
//! - 0.3.0, 0.3.1, 0.4.0: `ips[]` carry `"version": "4"|"6"`; interfaces have `name`, `mac`,
//!   `sandbox`; routes `dst`, `gw`; `dns` is always present (`{}` when empty), as libcni's Go
//!   types print it.
//! - 1.0.0: no `version` in `ips`; `dns` left out when empty.
//! - 1.1.0: adds interface `mtu`, `socketPath`, `pciID` and route `mtu`, `advmss`, `priority`,
//!   `table`, `scope`.
//!
//! Converting is printing the model in another version (fields the target lacks are dropped, as
//! libcni's converters do). Parsing accepts any supported version and ignores unknown keys. Must
//! not: decide what a result contains — the plugin builds it.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CniError, ErrorCode};
use crate::version::CniVersion;

/// One interface of an attachment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    /// Hardware address, `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
    /// MTU (1.1.0 only).
    pub mtu: Option<u32>,
    /// The network namespace path for a container-side interface; `None` on the host.
    pub sandbox: Option<String>,
    /// 1.1.0 only.
    pub socket_path: Option<String>,
    /// 1.1.0 only.
    pub pci_id: Option<String>,
}

/// One address of an attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpConfig {
    /// The address with its prefix length (host bits kept: `10.0.0.5/32`).
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    pub interface: Option<usize>,
}

/// One route of an attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    /// 1.1.0 only (as are the fields below).
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u32>,
}

impl Route {
    /// A route with only a destination and an optional gateway.
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Route {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// DNS settings (the same shape in every version, and in network configs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// A version-neutral CNI result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

// ---- wire form -------------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct WireResult {
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<WireInterface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<WireIp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<WireRoute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dns: Option<Dns>,
}

#[derive(Serialize, Deserialize)]
struct WireInterface {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sandbox: Option<String>,
    #[serde(
        rename = "socketPath",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    socket_path: Option<String>,
    #[serde(rename = "pciID", default, skip_serializing_if = "Option::is_none")]
    pci_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WireIp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
    address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WireRoute {
    dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<u32>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Go's `int` fields with `omitempty`: zero means unset.
fn non_zero(v: Option<u32>) -> Option<u32> {
    v.filter(|v| *v != 0)
}

fn decode_error(what: impl std::fmt::Display) -> CniError {
    CniError::new(
        ErrorCode::DecodingFailure,
        "cannot decode prevResult",
        what.to_string(),
    )
}

fn parse_cidr(field: &str, s: &str) -> Result<IpNet, CniError> {
    s.parse::<IpNet>()
        .map_err(|_| decode_error(format!("{field} {s:?} is not an address in CIDR notation")))
}

fn parse_ip(field: &str, s: &str) -> Result<IpAddr, CniError> {
    s.parse::<IpAddr>()
        .map_err(|_| decode_error(format!("{field} {s:?} is not an IP address")))
}

impl CniResult {
    /// The JSON value of this result in `version`.
    pub fn to_value(&self, version: CniVersion) -> Value {
        let ext = version.has_extended_fields();
        let wire = WireResult {
            cni_version: version.as_str().to_string(),
            interfaces: self
                .interfaces
                .iter()
                .map(|i| WireInterface {
                    name: i.name.clone(),
                    mac: i.mac.clone(),
                    mtu: i.mtu.filter(|_| ext),
                    sandbox: i.sandbox.clone(),
                    socket_path: i.socket_path.clone().filter(|_| ext),
                    pci_id: i.pci_id.clone().filter(|_| ext),
                })
                .collect(),
            ips: self
                .ips
                .iter()
                .map(|ip| WireIp {
                    version: version.ips_carry_version().then(|| {
                        if ip.address.addr().is_ipv4() {
                            "4"
                        } else {
                            "6"
                        }
                        .to_string()
                    }),
                    interface: ip.interface,
                    address: ip.address.to_string(),
                    gateway: ip.gateway.map(|g| g.to_string()),
                })
                .collect(),
            routes: self
                .routes
                .iter()
                .map(|r| WireRoute {
                    dst: r.dst.to_string(),
                    gw: r.gw.map(|g| g.to_string()),
                    mtu: r.mtu.filter(|_| ext),
                    advmss: r.advmss.filter(|_| ext),
                    priority: r.priority.filter(|_| ext),
                    table: r.table.filter(|_| ext),
                    scope: r.scope.filter(|_| ext),
                })
                .collect(),
            // libcni's 0.x types always print "dns" (an empty object when unset); 1.x omits it.
            dns: (!self.dns.is_empty() || version.ips_carry_version()).then(|| self.dns.clone()),
        };
        // Plain strings, numbers and arrays: serialising cannot fail.
        serde_json::to_value(wire).unwrap_or(Value::Null)
    }

    /// The JSON text of this result in `version` (what ADD prints).
    pub fn to_json(&self, version: CniVersion) -> String {
        self.to_value(version).to_string()
    }

    /// Reads a result of any supported version (a `prevResult`); unknown keys are ignored and
    /// a missing `cniVersion` is allowed (results before 1.0.0 may omit it).
    pub fn from_value(value: &Value) -> Result<CniResult, CniError> {
        let wire: WireResult = serde_json::from_value(value.clone()).map_err(decode_error)?;
        if !wire.cni_version.is_empty() {
            CniVersion::parse(&wire.cni_version).map_err(|e| {
                CniError::new(
                    ErrorCode::IncompatibleVersion,
                    format!("prevResult has {}", e.msg),
                    e.details,
                )
            })?;
        }
        let interfaces: Vec<Interface> = wire
            .interfaces
            .into_iter()
            .map(|i| Interface {
                name: i.name,
                mac: non_empty(i.mac),
                mtu: non_zero(i.mtu),
                sandbox: non_empty(i.sandbox),
                socket_path: non_empty(i.socket_path),
                pci_id: non_empty(i.pci_id),
            })
            .collect();
        let mut ips = Vec::with_capacity(wire.ips.len());
        for ip in wire.ips {
            let address = parse_cidr("ips[].address", &ip.address)?;
            if let Some(v) = ip.version.as_deref() {
                let family = if address.addr().is_ipv4() { "4" } else { "6" };
                if v != family {
                    return Err(decode_error(format!(
                        "ips[] entry {} says version {v:?}",
                        ip.address
                    )));
                }
            }
            if let Some(i) = ip.interface
                && i >= interfaces.len()
            {
                return Err(decode_error(format!(
                    "ips[] entry {} points at interface {i}, but there are {}",
                    ip.address,
                    interfaces.len()
                )));
            }
            let gateway = match non_empty(ip.gateway) {
                Some(g) => Some(parse_ip("ips[].gateway", &g)?),
                None => None,
            };
            ips.push(IpConfig {
                address,
                gateway,
                interface: ip.interface,
            });
        }
        let mut routes = Vec::with_capacity(wire.routes.len());
        for r in wire.routes {
            let gw = match non_empty(r.gw) {
                Some(g) => Some(parse_ip("routes[].gw", &g)?),
                None => None,
            };
            routes.push(Route {
                dst: parse_cidr("routes[].dst", &r.dst)?,
                gw,
                mtu: non_zero(r.mtu),
                advmss: non_zero(r.advmss),
                priority: non_zero(r.priority),
                table: r.table,
                scope: r.scope,
            });
        }
        Ok(CniResult {
            interfaces,
            ips,
            routes,
            dns: wire.dns.unwrap_or_default(),
        })
    }

    /// Appends another attachment's result (a later plugin's), shifting its interface indices
    /// past ours; DNS settings are taken from `other` only where ours are empty.
    pub fn append(&mut self, other: CniResult) {
        let offset = self.interfaces.len();
        self.interfaces.extend(other.interfaces);
        self.ips.extend(other.ips.into_iter().map(|mut ip| {
            ip.interface = ip.interface.map(|i| i + offset);
            ip
        }));
        self.routes.extend(other.routes);
        if self.dns.is_empty() {
            self.dns = other.dns;
        }
    }

    /// The index of the interface `name` inside `sandbox`.
    pub fn container_interface(&self, name: &str, sandbox: &str) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.name == name && i.sandbox.as_deref() == Some(sandbox))
    }

    /// The addresses that `ips` assigns to interface `index`.
    pub fn addresses_of(&self, index: usize) -> Vec<IpNet> {
        self.ips
            .iter()
            .filter(|ip| ip.interface == Some(index))
            .map(|ip| ip.address)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// What Ginger prints for a dual-stack pod (see `plugin::add`).
    fn ginger_result() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "calic440f455693".into(),
                    mac: Some("ee:ee:ee:ee:ee:ee".into()),
                    mtu: Some(1440),
                    ..Interface::default()
                },
                Interface {
                    name: "eth0".into(),
                    mac: Some("9a:3b:00:11:22:33".into()),
                    mtu: Some(1440),
                    sandbox: Some("/var/run/netns/cni-1".into()),
                    ..Interface::default()
                },
            ],
            ips: vec![
                IpConfig {
                    address: "10.244.1.5/32".parse().unwrap(),
                    gateway: None,
                    interface: Some(1),
                },
                IpConfig {
                    address: "fd00:10::5/128".parse().unwrap(),
                    gateway: None,
                    interface: Some(1),
                },
            ],
            routes: vec![
                Route::new("0.0.0.0/0".parse().unwrap(), "169.254.1.1".parse().ok()),
                Route::new(
                    "::/0".parse().unwrap(),
                    "fe80::ecee:eeff:feee:eeee".parse().ok(),
                ),
            ],
            dns: Dns::default(),
        }
    }

    #[test]
    fn golden_1_1_0() {
        // CNI spec 1.1.0 §5: interfaces carry mtu; ips have no version; empty dns is omitted.
        assert_eq!(
            ginger_result().to_value(CniVersion::V1_1_0),
            json!({
                "cniVersion": "1.1.0",
                "interfaces": [
                    {"name": "calic440f455693", "mac": "ee:ee:ee:ee:ee:ee", "mtu": 1440},
                    {"name": "eth0", "mac": "9a:3b:00:11:22:33", "mtu": 1440,
                     "sandbox": "/var/run/netns/cni-1"}
                ],
                "ips": [
                    {"address": "10.244.1.5/32", "interface": 1},
                    {"address": "fd00:10::5/128", "interface": 1}
                ],
                "routes": [
                    {"dst": "0.0.0.0/0", "gw": "169.254.1.1"},
                    {"dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee"}
                ]
            })
        );
    }

    #[test]
    fn golden_1_0_0() {
        // CNI spec 1.0.0 §5: no interface mtu; no ips version.
        assert_eq!(
            ginger_result().to_value(CniVersion::V1_0_0),
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [
                    {"name": "calic440f455693", "mac": "ee:ee:ee:ee:ee:ee"},
                    {"name": "eth0", "mac": "9a:3b:00:11:22:33", "sandbox": "/var/run/netns/cni-1"}
                ],
                "ips": [
                    {"address": "10.244.1.5/32", "interface": 1},
                    {"address": "fd00:10::5/128", "interface": 1}
                ],
                "routes": [
                    {"dst": "0.0.0.0/0", "gw": "169.254.1.1"},
                    {"dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee"}
                ]
            })
        );
    }

    #[test]
    fn golden_0_x() {
        // CNI spec 0.3.0–0.4.0 §"Result": ips carry "version"; libcni prints "dns": {}.
        for v in [CniVersion::V0_3_0, CniVersion::V0_3_1, CniVersion::V0_4_0] {
            assert_eq!(
                ginger_result().to_value(v),
                json!({
                    "cniVersion": v.as_str(),
                    "interfaces": [
                        {"name": "calic440f455693", "mac": "ee:ee:ee:ee:ee:ee"},
                        {"name": "eth0", "mac": "9a:3b:00:11:22:33",
                         "sandbox": "/var/run/netns/cni-1"}
                    ],
                    "ips": [
                        {"version": "4", "address": "10.244.1.5/32", "interface": 1},
                        {"version": "6", "address": "fd00:10::5/128", "interface": 1}
                    ],
                    "routes": [
                        {"dst": "0.0.0.0/0", "gw": "169.254.1.1"},
                        {"dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee"}
                    ],
                    "dns": {}
                }),
                "{v}"
            );
        }
    }

    #[test]
    fn every_version_round_trips_what_it_can_hold() {
        let full = ginger_result();
        for v in CniVersion::SUPPORTED {
            let back = CniResult::from_value(&full.to_value(v)).unwrap();
            let mut expect = full.clone();
            if !v.has_extended_fields() {
                for i in &mut expect.interfaces {
                    i.mtu = None;
                }
            }
            assert_eq!(back, expect, "{v}");
        }
    }

    #[test]
    fn extended_route_fields_only_in_1_1_0() {
        let mut r = CniResult::default();
        r.routes.push(Route {
            mtu: Some(1400),
            advmss: Some(1360),
            priority: Some(10),
            table: Some(100),
            scope: Some(253),
            ..Route::new("10.0.0.0/8".parse().unwrap(), None)
        });
        let v11 = r.to_value(CniVersion::V1_1_0);
        assert_eq!(
            v11["routes"][0],
            json!({"dst": "10.0.0.0/8", "mtu": 1400, "advmss": 1360, "priority": 10,
                   "table": 100, "scope": 253})
        );
        let v10 = r.to_value(CniVersion::V1_0_0);
        assert_eq!(v10["routes"][0], json!({"dst": "10.0.0.0/8"}));
        assert_eq!(CniResult::from_value(&v11).unwrap(), r);
    }

    #[test]
    fn dns_is_carried_when_set() {
        let mut r = ginger_result();
        r.dns.nameservers.push("10.96.0.10".into());
        r.dns.search.push("svc.cluster.local".into());
        let v = r.to_value(CniVersion::V1_0_0);
        assert_eq!(
            v["dns"],
            json!({"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]})
        );
    }

    #[test]
    fn parses_a_bridge_plugin_0_4_0_result() {
        // The spec 0.4.0 example result (bridge + host-local), as libcni caches it.
        let prev = json!({
            "cniVersion": "0.4.0",
            "interfaces": [
                {"name": "cni0", "mac": "00:11:22:33:44:55"},
                {"name": "veth3243", "mac": "55:44:33:22:11:11"},
                {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"}
            ],
            "ips": [
                {"version": "4", "address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2}
            ],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.1.0.1"]}
        });
        let r = CniResult::from_value(&prev).unwrap();
        assert_eq!(r.interfaces.len(), 3);
        assert_eq!(
            r.container_interface("eth0", "/var/run/netns/blue"),
            Some(2)
        );
        assert_eq!(r.addresses_of(2), ["10.1.0.5/16".parse::<IpNet>().unwrap()]);
        assert_eq!(r.ips[0].gateway, "10.1.0.1".parse().ok());
        assert_eq!(r.routes, [Route::new("0.0.0.0/0".parse().unwrap(), None)]);
        assert_eq!(r.dns.nameservers, ["10.1.0.1"]);
        // Printed again in 0.4.0 it is the same document.
        assert_eq!(r.to_value(CniVersion::V0_4_0), prev);
    }

    #[test]
    fn bad_prev_results_are_decoding_errors() {
        for bad in [
            json!({"ips": [{"address": "10.0.0.1"}]}),
            json!({"ips": [{"address": "10.0.0.1/32", "interface": 3}]}),
            json!({"ips": [{"version": "6", "address": "10.0.0.1/32"}]}),
            json!({"routes": [{"dst": "0.0.0.0/0", "gw": "nope"}]}),
            json!({"interfaces": "eth0"}),
            json!([1, 2]),
        ] {
            let e = CniResult::from_value(&bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::DecodingFailure, "{bad}");
        }
        let e = CniResult::from_value(&json!({"cniVersion": "0.2.0"})).unwrap_err();
        assert_eq!(e.code, ErrorCode::IncompatibleVersion);
    }

    #[test]
    fn append_shifts_interface_indices() {
        let mut prev = CniResult {
            interfaces: vec![Interface {
                name: "net1".into(),
                sandbox: Some("/ns".into()),
                ..Interface::default()
            }],
            ips: vec![IpConfig {
                address: "192.168.0.2/24".parse().unwrap(),
                gateway: None,
                interface: Some(0),
            }],
            routes: vec![],
            dns: Dns {
                domain: "example".into(),
                ..Dns::default()
            },
        };
        prev.append(ginger_result());
        assert_eq!(prev.interfaces.len(), 3);
        assert_eq!(prev.ips[0].interface, Some(0));
        assert_eq!(prev.ips[1].interface, Some(2));
        assert_eq!(prev.ips[2].interface, Some(2));
        assert_eq!(prev.dns.domain, "example");
        assert_eq!(
            prev.container_interface("eth0", "/var/run/netns/cni-1"),
            Some(2)
        );
    }
}
