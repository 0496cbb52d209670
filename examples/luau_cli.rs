//! A minimal Lua command line on Luau (the interpreter jobtop embeds), for the process-spawn
//! baseline of `cargo bench --bench load` on machines without `lua5.4`:
//! `luau_cli -e 'return true'` starts an interpreter, runs the chunk and exits, as a
//! cron-style scheduler that spawns one interpreter per run would.
//!
//! Build it with `cargo build --release --example luau_cli`.

use std::process::ExitCode;

use mlua::Lua;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (name, source) = match args.as_slice() {
        [flag, chunk] if flag == "-e" => ("=(command line)".to_string(), chunk.clone()),
        [file] => match std::fs::read_to_string(file) {
            Ok(text) => (format!("@{file}"), text),
            Err(e) => {
                eprintln!("luau_cli: cannot read {file}: {e}");
                return ExitCode::from(1);
            }
        },
        _ => {
            eprintln!("usage: luau_cli -e CHUNK | luau_cli FILE");
            return ExitCode::from(2);
        }
    };
    let lua = Lua::new();
    match lua.load(source.as_str()).set_name(name).exec() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("luau_cli: {e}");
            ExitCode::from(1)
        }
    }
}
