//! The Rust mirrors in `gespann_common::raw` against the BTF of the committed object: the C
//! header is the one definition, and this test is what keeps the mirror honest.

use std::collections::HashMap;
use std::process::Command;

use gespann_common::raw::{MIRRORED_SIZES, RAW_EVENT_FIELDS};

/// A struct's size and its fields' byte offsets, in order.
type Layout = (usize, Vec<(String, usize)>);

/// Struct name -> (size, [(field, byte offset)]) from `bpftool btf dump file OBJ` (raw format).
fn btf_structs() -> HashMap<String, Layout> {
    let obj = concat!(env!("CARGO_MANIFEST_DIR"), "/../recorder-ebpf/gespann.bpf.o");
    let out = Command::new("bpftool")
        .args(["btf", "dump", "file", obj])
        .output()
        .expect("bpftool (apt-get install bpftool) reads the object's BTF");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut structs = HashMap::new();
    let mut current: Option<(String, Layout)> = None;
    for line in text.lines() {
        if line.starts_with('[') {
            if let Some((n, l)) = current.take() {
                structs.insert(n, l);
            }
            if let Some(rest) = line.split("] STRUCT '").nth(1) {
                let name = rest.split('\'').next().unwrap().to_owned();
                let size = rest.split("size=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
                current = Some((name, (size, Vec::new())));
            }
        } else if let Some((_, (_, fields))) = current.as_mut() {
            let name = line.trim().split('\'').nth(1).unwrap_or_default().to_owned();
            if let Some(bits) = line.split("bits_offset=").nth(1) {
                let bits: usize = bits.split_whitespace().next().unwrap().parse().unwrap();
                fields.push((name, bits / 8));
            }
        }
    }
    if let Some((n, l)) = current.take() {
        structs.insert(n, l);
    }
    structs
}

#[test]
fn raw_event_matches_struct_gsp_event_in_the_object() {
    let structs = btf_structs();
    let (size, fields) = structs.get("gsp_event").expect("struct gsp_event in the object's BTF");
    assert_eq!(*size, gespann_common::raw::RawEvent::SIZE, "size of struct gsp_event");
    let rust: Vec<(String, usize)> = RAW_EVENT_FIELDS.iter().map(|(n, o)| ((*n).to_owned(), *o)).collect();
    assert_eq!(fields, &rust, "fields and offsets of struct gsp_event, in order");
}

#[test]
fn map_types_user_space_reads_have_the_same_sizes() {
    let structs = btf_structs();
    for (name, rust_size) in MIRRORED_SIZES {
        let (size, _) = structs.get(*name).unwrap_or_else(|| panic!("struct {name} in the object's BTF"));
        assert_eq!(size, rust_size, "size of struct {name}");
    }
}
