//! `nitejar`: the Nitejar server and its command line (see the library for all of it).

fn main() -> std::process::ExitCode {
    nitejar_server::main()
}
