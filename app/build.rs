//! Rebuild when migrations or error pages change (they are embedded at compile time).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=pages");
}
