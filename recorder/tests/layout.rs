//! The Rust mirrors in `gespann_common::raw` against the BTF of the committed object: the C
//! header is the one definition, and this test is what keeps the mirror honest. Every struct in
//! [`MIRRORED_STRUCTS`] is compared field by field (name, byte offset, size) and every enum in
//! [`MIRRORED_ENUMS`] name by name and value by value. The object's `.BTF` section is read here,
//! in process: no root, no bpftool.
//!
//! (aya-obj parses BTF too, but keeps struct members and enum values private; the format is
//! small: `include/uapi/linux/btf.h`.)

use std::collections::HashMap;

use gespann_common::raw::{Field, MIRRORED_ENUMS, MIRRORED_STRUCTS};
use object::{Object, ObjectSection};

static OBJECT: &[u8] = include_bytes!("../../recorder-ebpf/gespann.bpf.o");

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// One BTF type: what the test needs of it.
#[derive(Debug)]
enum Type {
    Sized(u32),
    /// Typedef, const, volatile, restrict, type tag: the type they qualify.
    Alias(u32),
    Array {
        elem: u32,
        len: u32,
    },
    Struct {
        name: String,
        size: u32,
        members: Vec<(String, u32, u32)>,
    },
    Enum {
        name: String,
        values: Vec<(String, i64)>,
    },
    Other,
}

struct Btf {
    types: Vec<Type>,
}

impl Btf {
    fn parse(data: &[u8]) -> Btf {
        let u16_at = |o: usize| u16::from_le_bytes(data[o..o + 2].try_into().unwrap());
        let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
        assert_eq!(u16_at(0), 0xeb9f, "BTF magic (a little-endian object)");
        let hdr_len = u32_at(4) as usize;
        let (type_off, type_len) = (hdr_len + u32_at(8) as usize, u32_at(12) as usize);
        let str_off = hdr_len + u32_at(16) as usize;
        let name = |off: u32| {
            let s = &data[str_off + off as usize..];
            String::from_utf8(s[..s.iter().position(|&b| b == 0).unwrap()].to_vec()).unwrap()
        };
        let mut types = vec![Type::Other]; // id 0 is void
        let mut o = type_off;
        while o < type_off + type_len {
            let (name_off, info, size_or_type) = (u32_at(o), u32_at(o + 4), u32_at(o + 8));
            let (kind, vlen, kind_flag) = ((info >> 24) & 0x1f, (info & 0xffff) as usize, info >> 31 == 1);
            o += 12;
            let t = match kind {
                KIND_INT => {
                    o += 4;
                    Type::Sized(size_or_type)
                }
                KIND_FLOAT => Type::Sized(size_or_type),
                KIND_PTR => Type::Sized(8),
                KIND_ARRAY => {
                    let t = Type::Array { elem: u32_at(o), len: u32_at(o + 8) };
                    o += 12;
                    t
                }
                KIND_STRUCT | KIND_UNION => {
                    let members = (0..vlen)
                        .map(|i| {
                            let m = o + 12 * i;
                            // With kind_flag the offset holds the bitfield size in its top byte.
                            let bits = if kind_flag { u32_at(m + 8) & 0xff_ffff } else { u32_at(m + 8) };
                            (name(u32_at(m)), u32_at(m + 4), bits)
                        })
                        .collect();
                    o += 12 * vlen;
                    if kind == KIND_STRUCT {
                        Type::Struct { name: name(name_off), size: size_or_type, members }
                    } else {
                        Type::Sized(size_or_type)
                    }
                }
                KIND_ENUM => {
                    let signed = kind_flag;
                    let values = (0..vlen)
                        .map(|i| {
                            let raw = u32_at(o + 8 * i + 4);
                            (name(u32_at(o + 8 * i)), if signed { i64::from(raw as i32) } else { i64::from(raw) })
                        })
                        .collect();
                    o += 8 * vlen;
                    Type::Enum { name: name(name_off), values }
                }
                KIND_ENUM64 => {
                    let values = (0..vlen)
                        .map(|i| {
                            let e = o + 12 * i;
                            (name(u32_at(e)), ((u64::from(u32_at(e + 8)) << 32) | u64::from(u32_at(e + 4))) as i64)
                        })
                        .collect();
                    o += 12 * vlen;
                    Type::Enum { name: name(name_off), values }
                }
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => Type::Alias(size_or_type),
                KIND_FWD | KIND_FUNC => Type::Other,
                KIND_FUNC_PROTO => {
                    o += 8 * vlen;
                    Type::Other
                }
                KIND_VAR | KIND_DECL_TAG => {
                    o += 4;
                    Type::Other
                }
                KIND_DATASEC => {
                    o += 12 * vlen;
                    Type::Other
                }
                k => panic!("unknown BTF kind {k}"),
            };
            types.push(t);
        }
        Btf { types }
    }

    fn size_of(&self, id: u32) -> usize {
        match &self.types[id as usize] {
            Type::Sized(n) => *n as usize,
            Type::Alias(t) => self.size_of(*t),
            Type::Array { elem, len } => self.size_of(*elem) * *len as usize,
            Type::Struct { size, .. } => *size as usize,
            Type::Enum { .. } => 4,
            Type::Other => panic!("type {id} has no size"),
        }
    }

    /// Struct name -> (size, its fields).
    fn structs(&self) -> HashMap<&str, (usize, Vec<Field>)> {
        let mut out = HashMap::new();
        for t in &self.types {
            if let Type::Struct { name, size, members } = t {
                let fields = members
                    .iter()
                    .map(|(n, ty, bits)| {
                        assert_eq!(bits % 8, 0, "struct {name}: {n} is a bitfield");
                        Field { name: leak(n), offset: (bits / 8) as usize, size: self.size_of(*ty) }
                    })
                    .collect();
                out.insert(name.as_str(), (*size as usize, fields));
            }
        }
        out
    }

    fn enums(&self) -> HashMap<&str, &[(String, i64)]> {
        self.types
            .iter()
            .filter_map(|t| match t {
                Type::Enum { name, values } if !name.is_empty() => Some((name.as_str(), values.as_slice())),
                _ => None,
            })
            .collect()
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn object_btf() -> Btf {
    let file = object::File::parse(OBJECT).expect("recorder-ebpf/gespann.bpf.o is an ELF object");
    let section = file.section_by_name(".BTF").expect("the object has a .BTF section");
    Btf::parse(section.data().expect(".BTF data"))
}

#[test]
fn every_mirrored_struct_matches_the_object_field_by_field() {
    let btf = object_btf();
    let structs = btf.structs();
    for s in MIRRORED_STRUCTS {
        let (size, fields) = structs.get(s.c_name).unwrap_or_else(|| panic!("struct {} in the object's BTF", s.c_name));
        assert_eq!(*size, s.size, "size of struct {}", s.c_name);
        assert_eq!(fields.as_slice(), s.fields, "fields (name, offset, size) of struct {}, in order", s.c_name);
    }
}

#[test]
fn every_mirrored_enum_matches_the_object_value_by_value() {
    let btf = object_btf();
    let enums = btf.enums();
    for e in MIRRORED_ENUMS {
        let values = enums.get(e.c_name).unwrap_or_else(|| panic!("enum {} in the object's BTF", e.c_name));
        let got: Vec<(&str, i64)> = values.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        assert_eq!(got, e.values, "enumerators of enum {}, in order", e.c_name);
    }
}

/// The reader itself: a known kernel type of the object, read through every path it takes
/// (nested structs, arrays, typedef'd integers).
#[test]
fn the_btf_reader_sees_nested_and_array_fields() {
    let btf = object_btf();
    let structs = btf.structs();
    let (size, fields) = &structs["udp_flow"];
    assert_eq!(*size, 88);
    let owner = fields.iter().find(|f| f.name == "owner").unwrap();
    assert_eq!((owner.offset, owner.size), (56, 32));
    let (_, owner_fields) = &structs["owner"];
    assert_eq!(owner_fields.last().unwrap(), &Field { name: "comm", offset: 16, size: 16 });
    assert!(btf.enums().contains_key("sk_rst_reason"));
}
