//! Kubernetes names for network addresses, from what `kubectl get pods,services -A -o json`
//! (or `-o yaml`) prints: a Service's cluster IPs and ports name its servers, a Pod's IPs
//! name its workload (a ReplicaSet's pods by their Deployment). Host-network pods share
//! their node's address and are left out, so they never name each other's traffic.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

/// A dump that is not one: neither JSON nor YAML of Kubernetes objects.
#[derive(Debug, thiserror::Error)]
#[error("not a kubectl dump (JSON or YAML of a List or an object): {0}")]
pub struct DumpError(String);

/// A side of a connection, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub namespace: String,
    /// `orders` (a Service or a workload), shown as `namespace/name`.
    pub name: String,
}

impl Named {
    pub fn display(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Addresses to names.
#[derive(Debug, Default)]
pub struct Names {
    services: HashMap<(IpAddr, u16), Named>,
    pods: HashMap<IpAddr, Named>,
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    items: Vec<Object>,
}

#[derive(Deserialize)]
struct Object {
    #[serde(default)]
    kind: String,
    metadata: Meta,
    #[serde(default)]
    spec: Spec,
    #[serde(default)]
    status: Status,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default, rename = "ownerReferences")]
    owners: Vec<Owner>,
}

#[derive(Deserialize)]
struct Owner {
    kind: String,
    name: String,
    #[serde(default)]
    controller: bool,
}

#[derive(Deserialize, Default)]
struct Spec {
    #[serde(default, rename = "clusterIPs")]
    cluster_ips: Vec<String>,
    #[serde(default, rename = "clusterIP")]
    cluster_ip: Option<String>,
    #[serde(default)]
    ports: Vec<Port>,
    #[serde(default, rename = "hostNetwork")]
    host_network: bool,
}

#[derive(Deserialize)]
struct Port {
    port: u16,
}

#[derive(Deserialize, Default)]
struct Status {
    #[serde(default, rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(default, rename = "podIPs")]
    pod_ips: Vec<PodIp>,
}

#[derive(Deserialize)]
struct PodIp {
    ip: String,
}

impl Names {
    /// Reads a kubectl dump (JSON or YAML: a `List`, or one object).
    pub fn parse(text: &str) -> Result<Names, DumpError> {
        let fail = |e: &dyn std::fmt::Display| DumpError(e.to_string());
        let value: serde_json::Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| fail(&e))?
        } else {
            serde_norway::from_str(text).map_err(|e| fail(&e))?
        };
        let list = from_value(value).map_err(|e| fail(&e))?;
        let mut names = Names::default();
        for o in list.items {
            match o.kind.as_str() {
                "Service" => names.add_service(o),
                "Pod" => names.add_pod(o),
                _ => {}
            }
        }
        Ok(names)
    }

    fn add_service(&mut self, o: Object) {
        let named = Named {
            namespace: o.metadata.namespace,
            name: o.metadata.name,
        };
        let ips = o.spec.cluster_ips.iter().chain(o.spec.cluster_ip.iter());
        for ip in ips.filter_map(|ip| ip.parse::<IpAddr>().ok()) {
            for p in &o.spec.ports {
                self.services.insert((ip, p.port), named.clone());
            }
        }
    }

    fn add_pod(&mut self, o: Object) {
        if o.spec.host_network {
            return;
        }
        let named = Named {
            name: workload(&o.metadata),
            namespace: o.metadata.namespace,
        };
        let ips = o.status.pod_ips.iter().map(|p| &p.ip);
        for ip in ips
            .chain(o.status.pod_ip.iter())
            .filter_map(|ip| ip.parse::<IpAddr>().ok())
        {
            self.pods.insert(ip, named.clone());
        }
    }

    /// The name of a server: the Service at that address and port, or the pod's workload.
    pub fn server(&self, addr: SocketAddr) -> Option<&Named> {
        self.services
            .get(&(addr.ip(), addr.port()))
            .or_else(|| self.pods.get(&addr.ip()))
    }

    /// The name of a client: its pod's workload.
    pub fn client(&self, addr: SocketAddr) -> Option<&Named> {
        self.pods.get(&addr.ip())
    }
}

/// Accepts a `List` or a single object.
fn from_value(value: serde_json::Value) -> Result<List, serde_json::Error> {
    if value.get("items").is_some() {
        serde_json::from_value(value)
    } else {
        Ok(List {
            items: vec![serde_json::from_value(value)?],
        })
    }
}

/// A pod's workload: its controller, with a ReplicaSet named by its Deployment (the
/// ReplicaSet's name less `-<pod-template-hash>`); a pod of no controller by itself.
fn workload(meta: &Meta) -> String {
    let Some(owner) = meta
        .owners
        .iter()
        .find(|o| o.controller)
        .or(meta.owners.first())
    else {
        return meta.name.clone();
    };
    if owner.kind == "ReplicaSet" {
        if let Some(hash) = meta.labels.get("pod-template-hash") {
            if let Some(deployment) = owner.name.strip_suffix(&format!("-{hash}")) {
                return deployment.to_string();
            }
        }
    }
    owner.name.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = r#"{"apiVersion":"v1","kind":"List","items":[
      {"kind":"Service","metadata":{"name":"orders","namespace":"shop"},
       "spec":{"clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10","fd00::10"],"ports":[{"port":80,"targetPort":8080}]}},
      {"kind":"Pod","metadata":{"name":"orders-5d8f7c9b6-x2x4z","namespace":"shop",
        "labels":{"pod-template-hash":"5d8f7c9b6"},
        "ownerReferences":[{"kind":"ReplicaSet","name":"orders-5d8f7c9b6","controller":true}]},
       "spec":{},"status":{"podIP":"10.244.1.7","podIPs":[{"ip":"10.244.1.7"}]}},
      {"kind":"Pod","metadata":{"name":"db-0","namespace":"shop",
        "ownerReferences":[{"kind":"StatefulSet","name":"db","controller":true}]},
       "spec":{},"status":{"podIP":"10.244.2.3"}},
      {"kind":"Pod","metadata":{"name":"node-exporter-abcde","namespace":"monitoring"},
       "spec":{"hostNetwork":true},"status":{"podIP":"192.168.1.5"}},
      {"kind":"ConfigMap","metadata":{"name":"x","namespace":"shop"}}
    ]}"#;

    #[test]
    fn services_pods_and_workloads_are_named_and_host_network_is_not() {
        let n = Names::parse(DUMP).unwrap();
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        let name = |x: Option<&Named>| x.map(Named::display);
        assert_eq!(
            name(n.server(at("10.96.0.10:80"))),
            Some("shop/orders".into())
        );
        assert_eq!(
            name(n.server(at("[fd00::10]:80"))),
            Some("shop/orders".into())
        );
        assert_eq!(name(n.server(at("10.96.0.10:81"))), None, "no such port");
        assert_eq!(
            name(n.server(at("10.244.1.7:8080"))),
            Some("shop/orders".into())
        );
        assert_eq!(
            name(n.client(at("10.244.2.3:41000"))),
            Some("shop/db".into())
        );
        assert_eq!(name(n.client(at("192.168.1.5:5000"))), None);
    }

    #[test]
    fn yaml_and_single_objects_are_read_and_garbage_is_refused() {
        let yaml =
            "kind: Pod\nmetadata:\n  name: solo\n  namespace: dev\nstatus:\n  podIP: 10.0.0.9\n";
        let n = Names::parse(yaml).unwrap();
        let client = n.client("10.0.0.9:1".parse().unwrap()).unwrap();
        assert_eq!(client.display(), "dev/solo");
        assert!(Names::parse("{\"items\": 3}").is_err());
        assert!(Names::parse("[1, 2").is_err());
    }
}
