//! The checked-in generated Thrift code must match what `hack/gen-thrift.sh` produces from the IDL.

use std::path::Path;
use std::process::Command;

#[test]
fn generated_thrift_code_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if Command::new("thrift").arg("--version").output().is_err() {
        println!(
            "SKIPPED generated_thrift_code_is_current: the `thrift` compiler is not installed \
             (apt-get install -y thrift-compiler); CI installs it"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("storm.rs");
    let status = Command::new("bash")
        .arg(root.join("hack/gen-thrift.sh"))
        .arg(&out)
        .status()
        .expect("run hack/gen-thrift.sh");
    assert!(status.success(), "hack/gen-thrift.sh failed: {status}");
    let fresh = std::fs::read_to_string(&out).expect("read regenerated code");
    let checked_in = std::fs::read_to_string(root.join("src/nimbus/generated/storm.rs"))
        .expect("read src/nimbus/generated/storm.rs");
    assert!(
        fresh == checked_in,
        "src/nimbus/generated/storm.rs is stale relative to src/nimbus/storm.thrift; run `hack/gen-thrift.sh` and commit the result"
    );
}
