//! The eBPF object is embedded with `include_bytes_aligned!`; rebuild when it changes.
fn main() {
    println!("cargo:rerun-if-changed=../recorder-ebpf/gespann.bpf.o");
}
