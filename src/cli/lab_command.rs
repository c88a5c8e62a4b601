//! `mirrorctl lab`: runs the lab ([`crate::harness::lab`]) and prints its story as it happens
//! (the headings and each step, as `apply` prints them), then its report; `-o json` prints one
//! document instead. Exit 0 when the verification passes, 1 otherwise.

use std::path::Path;

use tokio::sync::mpsc::unbounded_channel;

use super::{CliError, Output};
use crate::execute::{Event, Progress};
use crate::harness::lab::{self, Lab, LabOptions};

/// Runs `mirrorctl lab`.
pub async fn run(state_dir: &Path, options: LabOptions, output: Output) -> Result<u8, CliError> {
    let lab = Lab::new(state_dir, options)?;
    let text = output == Output::Text;
    let start = lab.epoch();
    let (tx, mut rx) = unbounded_channel::<Event>();
    let printer = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            if text {
                if let Some(l) = super::apply::render_event(&e, start) {
                    println!("{l}");
                }
            } else {
                events.push(super::apply::event_json(&e, start));
            }
        }
        events
    });
    let say = |line: &str| {
        if text {
            println!("{line}");
        }
    };
    let report = lab::run(lab, Progress::to(tx), &say).await?;
    let events = printer.await.unwrap_or_default();
    if text {
        print!("{}", lab::report_text(&report));
    } else {
        let doc = report.json(events);
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| CliError::caused("rendering the lab's report", e))?
        );
    }
    Ok(u8::from(!report.passed()))
}
