//! Prints the findings for paths (used to write the fixture expectations and in bench runs
//! without the CLI): `cargo run -p pedigree-hygiene --example dump -- [--allow F] PATH…`
fn main() {
    let mut args: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    let mut opts = pedigree_hygiene::Options::default();
    if args.first().is_some_and(|a| a.as_os_str() == "--allow") {
        let f = args.remove(1);
        args.remove(0);
        opts.allow = Some(pedigree_hygiene::AllowList::from_file(&f).expect("allow-list"));
    }
    for r in pedigree_hygiene::check_paths(&args, &opts) {
        if let Some(e) = &r.error {
            println!("{}: ERROR {e}", r.path);
        }
        for f in &r.findings {
            println!("{} {} {}", f.location.display(), f.rule, f.message);
        }
    }
}
