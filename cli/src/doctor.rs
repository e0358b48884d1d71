//! `gespann doctor`: prints the recorder's prerequisite checks, then what it found of container
//! runtimes, their API sockets, Kubernetes pods and the cgroup layout (which workload columns
//! rows will get; they do not decide whether a recording can be made).

use anyhow::Result;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
}

/// Exit status: 0 if a recording can be made here, 1 otherwise.
pub fn run(args: DoctorArgs) -> Result<bool> {
    let (checks, can_record) = gespann_recorder::doctor::run(true);
    if args.format == "json" {
        let rows: Vec<_> = checks
            .iter()
            .map(|c| serde_json::json!({"check": c.name, "status": c.status.as_str(), "detail": c.detail}))
            .collect();
        println!("{}", serde_json::json!({"can_record": can_record, "checks": rows}));
    } else {
        let mut t = Table::new();
        // The details are sentences: wrapped to the terminal's width (on a terminal only).
        t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
        t.set_header(vec!["check", "status", "detail"]);
        for c in &checks {
            t.add_row(vec![c.name.as_str(), c.status.as_str(), c.detail.as_str()]);
        }
        println!("{t}");
        println!(
            "{}",
            if can_record {
                "A recording can be made here."
            } else {
                "A recording cannot be made here: see FAIL above."
            }
        );
    }
    Ok(can_record)
}
