//! Writes the three-tier scenario's captures (one pcapng per attempt, frames on the
//! interface named after the port they arrive on):
//! `cargo run -p mgmt --example three_tier_captures [DIR]`.

#[path = "../tests/support/three_tier.rs"]
mod three_tier;

use std::path::PathBuf;

use dataplane::port::pcap::PcapNgWriter;

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(three_tier::CAPTURES));
    std::fs::create_dir_all(&dir)?;
    let mut table = Vec::new();
    for a in three_tier::attempts() {
        let path = dir.join(format!("{}.pcapng", a.file));
        let mut w = PcapNgWriter::create(&path)?;
        for f in &a.frames {
            w.write(f.port, (three_tier::EPOCH_MS + f.at_ms) * 1_000_000, &f.frame)?;
        }
        w.finish()?;
        println!("row {:>3}  {:<28} -> {}", a.row, a.what, path.display());
        let (expect, hop) = match a.expect {
            three_tier::Expect::Connects => ("connects", None),
            three_tier::Expect::Refused(h) => ("refused", Some(h)),
        };
        table.push(serde_json::json!({"row": a.row, "what": a.what, "capture": format!("{}.pcapng", a.file), "expect": expect, "hop": hop}));
    }
    // The scenario table for scripts (demo, live tests): the single source is tests/support/three_tier.rs.
    let json = serde_json::to_string_pretty(&table).expect("table serialises");
    std::fs::write(dir.join("../scenario.json"), json + "\n")?;
    Ok(())
}
