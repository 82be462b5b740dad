//! Prints a CustomResourceDefinition as YAML: `crdgen etcdcluster` (the default) or
//! `crdgen etcdrestore` or `crdgen etcdbackup`. `crds/` is this output, checked for drift.

use kube::CustomResourceExt;

fn main() {
    let kind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "etcdcluster".into());
    let crd = match kind.as_str() {
        "etcdcluster" => oxcd_operator::crd::EtcdCluster::crd(),
        "etcdrestore" => oxcd_operator::crd::EtcdRestore::crd(),
        "etcdbackup" => oxcd_operator::crd::EtcdBackup::crd(),
        other => {
            eprintln!("crdgen: no CRD {other:?}; etcdcluster, etcdrestore or etcdbackup");
            std::process::exit(2);
        }
    };
    print!("{}", serde_yaml::to_string(&crd).expect("a CRD serializes"));
}
