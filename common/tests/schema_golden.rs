//! The schema contracts as golden files: any change to a column's name, type or nullability
//! shows up here as a diff (run with UPDATE_GOLDEN=1 to accept a deliberate one). Earlier versions
//! are frozen: their files are what such a recording holds, and what readers still require of one.

use arrow::datatypes::Field;

fn describe<'a>(fields: impl Iterator<Item = &'a Field>) -> String {
    fields
        .map(|f| format!("{} {} {}\n", f.name(), f.data_type(), if f.is_nullable() { "nullable" } else { "not null" }))
        .collect()
}

fn check(text: &str, file: &str) {
    let path = format!("{}/tests/golden/{file}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() && file == CURRENT {
        std::fs::write(&path, text).unwrap();
    }
    let golden = std::fs::read_to_string(&path).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(text, golden, "{file} changed: that breaks every reader of recordings");
}

const CURRENT: &str = "schema_v3.txt";

#[test]
fn schema_v3_matches_the_golden_file() {
    assert_eq!(gespann_common::schema::SCHEMA_VERSION, 3);
    check(&describe(gespann_common::schema::schema().fields().iter().map(|f| f.as_ref())), CURRENT);
}

#[test]
fn a_version_2_file_is_still_required_to_have_exactly_the_v2_columns() {
    check(&describe(gespann_common::schema::required_fields(2).iter()), "schema_v2.txt");
}

#[test]
fn a_version_1_file_is_still_required_to_have_exactly_the_v1_columns() {
    check(&describe(gespann_common::schema::required_fields(1).iter()), "schema_v1.txt");
}
