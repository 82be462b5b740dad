//! Prints the CustomResourceDefinitions as YAML: `crds/` is this output, checked for drift.

use kube::CustomResourceExt;

fn main() {
    let crd = oxcd_operator::crd::EtcdCluster::crd();
    print!("{}", serde_yaml::to_string(&crd).expect("a CRD serializes"));
}
