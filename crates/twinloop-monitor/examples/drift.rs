//! `drift REF CUR OUT.json`: the library call `twinloop monitor drift` makes, without the rest
//! of the twinloop binary, so bench/monitoring can time a release build that takes minutes to
//! compile instead of the whole platform's half hour.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: drift REFERENCE CURRENT OUT.json");
        return std::process::ExitCode::FAILURE;
    }
    let run = || -> Result<(), twinloop_monitor::Error> {
        let (r, c) = std::thread::scope(|s| {
            let r = s.spawn(|| twinloop_monitor::io::read_table(args[1].as_ref()));
            let c = twinloop_monitor::io::read_table(args[2].as_ref());
            (r.join().expect("reader thread"), c)
        });
        let report = twinloop_monitor::run_drift(&r?, &c?, &twinloop_monitor::Options::default())?;
        std::fs::write(&args[3], report.to_json())
            .map_err(|e| twinloop_monitor::Error::input(e.to_string()))
    };
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
