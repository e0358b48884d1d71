//! The schema-v1 contract as a golden file: any change to a column's name, type or
//! nullability shows up here as a diff (run with UPDATE_GOLDEN=1 to accept a deliberate one).

#[test]
fn schema_v1_matches_the_golden_file() {
    let text: String = gespann_common::schema::schema()
        .fields()
        .iter()
        .map(|f| format!("{} {} {}\n", f.name(), f.data_type(), if f.is_nullable() { "nullable" } else { "not null" }))
        .collect();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/schema_v1.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(path).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(text, golden, "schema v1 changed: that breaks every reader of recordings");
}
