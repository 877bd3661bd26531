//! The analysis of `pedigree hygiene` without the CLI around it, for `bench/hygiene/run.sh`
//! (a release build of this example is much smaller than one of the whole CLI). Analyses the
//! paths, serializes the reports as the JSON reporter would, and prints one summary line:
//! `files=N errors=E findings=F PDG601=… …`.
use std::collections::BTreeMap;

fn main() {
    let paths: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    let reports = pedigree_hygiene::check_paths(&paths, &pedigree_hygiene::Options::default());
    let json = serde_json::to_string(&reports).expect("serialize");
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for f in reports.iter().flat_map(|r| &r.findings) {
        *by_rule.entry(f.rule).or_default() += 1;
    }
    let rules: Vec<String> = by_rule.iter().map(|(r, n)| format!("{r}={n}")).collect();
    println!(
        "files={} errors={} findings={} json_bytes={} {}",
        reports.len(),
        reports.iter().filter(|r| r.error.is_some()).count(),
        by_rule.values().sum::<usize>(),
        json.len(),
        rules.join(" ")
    );
}
